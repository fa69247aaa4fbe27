//! The error type of optimizers, schedules, gradient clipping and optimizer state files.

use std::path::PathBuf;

use strata_autograd::AutogradError;

/// Errors raised by optimizers, learning-rate schedules, gradient clipping and state files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptimError {
    /// A hyperparameter is out of its valid range (PyTorch's `ValueError`).
    #[error("{op}: invalid {name} {value} ({expected})")]
    InvalidHyperparameter {
        /// The optimizer, schedule or function that rejected it.
        op: &'static str,
        /// The hyperparameter's PyTorch name (`lr`, `betas[0]`, `T_max`).
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A parameter group index is out of range.
    #[error("{op}: group {index} out of range for {groups} parameter groups")]
    GroupIndex {
        /// The method that was called.
        op: &'static str,
        /// The group asked for.
        index: usize,
        /// How many groups the optimizer has.
        groups: usize,
    },
    /// A parameter's gradient has another shape than the parameter.
    #[error(
        "{op}: gradient shape {grad:?} differs from parameter shape {param:?} (parameter {index})"
    )]
    GradShape {
        /// The optimizer or function that found it.
        op: &'static str,
        /// Index of the parameter over all groups.
        index: usize,
        /// Shape of the parameter.
        param: Vec<usize>,
        /// Shape of its gradient.
        grad: Vec<usize>,
    },
    /// `clip_grad_norm` with `error_if_nonfinite` found a NaN or infinite total norm.
    #[error("clip_grad_norm: the total norm of order {norm_type} of the gradients is {total}")]
    NonFiniteNorm {
        /// The order of the norm.
        norm_type: f64,
        /// The non-finite total norm.
        total: f64,
    },
    /// A saved optimizer state does not fit this optimizer (kind, groups, counts, shapes, keys).
    #[error("load_state_dict: {what}")]
    StateMismatch {
        /// What differs, with the saved and the expected values.
        what: String,
    },
    /// Reading, writing or renaming an optimizer state file failed.
    #[error("{op}: {path}: {source}")]
    Io {
        /// `save` or `load`.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An optimizer state file is not a valid safetensors file, or is truncated.
    #[error("load: {path}: corrupt or truncated optimizer state: {reason}")]
    Corrupt {
        /// The file read.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An autograd operation failed (updating a non-leaf parameter).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
}

/// Result alias for optimizer operations.
pub type Result<T> = std::result::Result<T, OptimError>;

/// An [`OptimError::InvalidHyperparameter`] for `value`.
pub(crate) fn invalid(
    op: &'static str,
    name: &'static str,
    value: impl ToString,
    expected: &'static str,
) -> OptimError {
    OptimError::InvalidHyperparameter {
        op,
        name,
        value: value.to_string(),
        expected,
    }
}

/// Checks `value >= 0` (and that it is not NaN), naming the hyperparameter in the error.
pub(crate) fn check_non_negative(op: &'static str, name: &'static str, value: f64) -> Result<()> {
    if value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(op, name, value, "expected >= 0"))
    }
}

/// Checks `0 <= value < 1`, as PyTorch does for betas and similar coefficients.
pub(crate) fn check_unit(op: &'static str, name: &'static str, value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(op, name, value, "expected 0 <= value < 1"))
    }
}
