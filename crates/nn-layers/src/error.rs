//! The error type of layers, losses and state dicts.

use std::path::PathBuf;

use strata_autograd::AutogradError;
use strata_tensor::TensorError;

/// Errors raised by layers, losses, initialisers and state dicts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NnError {
    /// A differentiable op failed (shapes, dims, indices).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// A layer got an input it cannot take, e.g. the wrong number of features.
    #[error("{layer}: {reason}")]
    Input {
        /// The layer or loss that rejected the input.
        layer: &'static str,
        /// What was expected and what came.
        reason: String,
    },
    /// A layer or loss was configured with values it cannot use.
    #[error("{layer}: invalid config: {reason}")]
    Config {
        /// The layer or loss whose config is wrong.
        layer: &'static str,
        /// Which value is wrong and why.
        reason: String,
    },
    /// A state dict does not match the module: every problem found, one per entry.
    #[error("load_state_dict: {} mismatch(es): {}", problems.len(), problems.join("; "))]
    StateDict {
        /// Missing names, unexpected names, and shape or dtype differences.
        problems: Vec<String>,
    },
    /// A safetensors file could not be read, parsed or written.
    #[error("{path}: {reason}")]
    File {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl From<TensorError> for NnError {
    fn from(err: TensorError) -> Self {
        NnError::Autograd(AutogradError::Tensor(err))
    }
}

/// Result alias for layer operations.
pub type Result<T> = std::result::Result<T, NnError>;
