//! The error type of autograd operations.

use strata_tensor::TensorError;

/// Errors raised while recording or differentiating a computation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AutogradError {
    /// A tensor operation failed (shapes, dims, indices).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// `backward()` without an explicit gradient was called on a non-scalar.
    #[error("backward: implicit gradient needs a one-element output, got shape {shape:?}")]
    NotScalar {
        /// Shape of the output `backward` was called on.
        shape: Vec<usize>,
    },
    /// The gradient passed to `backward_with` does not match the output's shape.
    #[error("backward: gradient shape {grad:?} differs from output shape {output:?}")]
    GradShape {
        /// Shape of the output.
        output: Vec<usize>,
        /// Shape of the gradient given.
        grad: Vec<usize>,
    },
    /// Backward reached a node whose graph was already freed by an earlier backward.
    #[error(
        "backward: the graph through `{op}` was freed by an earlier backward; \
         pass retain_graph to keep it"
    )]
    GraphFreed {
        /// The op whose backward record is gone.
        op: &'static str,
    },
    /// `grad` was asked for an input that the outputs do not depend on.
    #[error("grad: input {index} is not part of the graph of the outputs")]
    Unreachable {
        /// Position of the input in the list given to `grad`.
        index: usize,
    },
    /// Anomaly mode found a NaN or an infinity.
    #[error("anomaly: {phase} of `{op}` produced a non-finite value")]
    Anomaly {
        /// The first op whose output or gradient held a non-finite value.
        op: &'static str,
        /// `forward` or `backward`.
        phase: &'static str,
    },
}

/// Result alias for autograd operations.
pub type Result<T> = std::result::Result<T, AutogradError>;
