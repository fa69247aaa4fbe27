//! The error type of attention ops, layers, positional encodings and the KV cache.

use strata_autograd::AutogradError;
use strata_nn_layers::NnError;
use strata_tensor::TensorError;

/// Errors raised by attention ops and layers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttentionError {
    /// A differentiable op underneath failed (shapes, dims).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// An input has a shape the op cannot take.
    #[error("{op}: {reason}")]
    Shape {
        /// The op or layer that rejected the input.
        op: &'static str,
        /// What was expected and what came, with the shapes.
        reason: String,
    },
    /// An op or layer was configured with values it cannot use.
    #[error("{op}: invalid config: {reason}")]
    Config {
        /// The op or layer whose config is wrong.
        op: &'static str,
        /// Which value is wrong and why.
        reason: String,
    },
    /// The case exists in PyTorch but is not supported here.
    #[error("{op}: unsupported: {reason}")]
    Unsupported {
        /// The op that refused.
        op: &'static str,
        /// Which case is unsupported.
        reason: &'static str,
    },
}

impl From<TensorError> for AttentionError {
    fn from(err: TensorError) -> Self {
        AttentionError::Autograd(AutogradError::Tensor(err))
    }
}

impl From<AttentionError> for NnError {
    /// Lets code built on `strata-nn-layers` (models) use `?` on attention results.
    fn from(err: AttentionError) -> Self {
        match err {
            AttentionError::Autograd(e) => NnError::Autograd(e),
            AttentionError::Config { op, reason } => NnError::Config { layer: op, reason },
            other => NnError::Input {
                layer: "attention",
                reason: other.to_string(),
            },
        }
    }
}

/// Result alias for attention operations.
pub type Result<T> = std::result::Result<T, AttentionError>;

/// A shape error for `op`.
pub(crate) fn shape_err(op: &'static str, reason: impl Into<String>) -> AttentionError {
    AttentionError::Shape {
        op,
        reason: reason.into(),
    }
}

/// A config error for `op`.
pub(crate) fn config_err(op: &'static str, reason: impl Into<String>) -> AttentionError {
    AttentionError::Config {
        op,
        reason: reason.into(),
    }
}
