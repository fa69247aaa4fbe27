//! The error type of models: configuration, inputs, state dicts and the ops underneath.

use std::path::PathBuf;

use strata_attention::AttentionError;
use strata_autograd::AutogradError;
use strata_nn_layers::NnError;
use strata_optim::OptimError;
use strata_tensor::TensorError;

/// Errors raised while building, running, training or loading a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A layer or loss underneath failed.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// An attention op underneath failed.
    #[error(transparent)]
    Attention(#[from] AttentionError),
    /// An optimizer step failed.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A differentiable op failed (shapes, dims, indices).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// A model was configured with values it cannot use.
    #[error("{model}: invalid config: {reason}")]
    Config {
        /// The model whose config is wrong.
        model: &'static str,
        /// Which value is wrong and why.
        reason: String,
    },
    /// A model got an input it cannot take (wrong rank, token out of range, too long).
    #[error("{model}: {reason}")]
    Input {
        /// The model or method that rejected the input.
        model: &'static str,
        /// What was expected and what came.
        reason: String,
    },
    /// A state dict does not match the model: every problem found, one per entry.
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

impl From<TensorError> for ModelError {
    fn from(err: TensorError) -> Self {
        ModelError::Autograd(AutogradError::Tensor(err))
    }
}

/// Result alias for model operations.
pub type Result<T> = std::result::Result<T, ModelError>;
