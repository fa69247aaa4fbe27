//! The error type shared by every fallible tensor operation.

/// Errors raised by tensor construction and shape-checked operations.
///
/// Every variant names the operation that failed first, so a message alone locates the fault:
/// `matmul: inner dims differ (lhs [2, 3], rhs [4, 5])`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    /// Two operands cannot be broadcast to a common shape.
    #[error("{op}: cannot broadcast {lhs:?} with {rhs:?}")]
    Broadcast {
        /// The operation that failed.
        op: &'static str,
        /// Shape of the left operand.
        lhs: Vec<usize>,
        /// Shape of the right operand.
        rhs: Vec<usize>,
    },
    /// A dimension index is outside `-rank..rank`.
    #[error("{op}: dim {dim} out of range for rank {rank}")]
    Dim {
        /// The operation that failed.
        op: &'static str,
        /// The dimension as given by the caller.
        dim: isize,
        /// Rank of the tensor it was applied to.
        rank: usize,
    },
    /// The number of elements does not match the shape asked for.
    #[error("{op}: {len} elements cannot take shape {shape:?}")]
    ElementCount {
        /// The operation that failed.
        op: &'static str,
        /// Number of elements available.
        len: usize,
        /// Shape requested.
        shape: Vec<usize>,
    },
    /// A shape does not satisfy what the operation needs.
    #[error("{op}: expected {expected}, got shape {got:?}")]
    Shape {
        /// The operation that failed.
        op: &'static str,
        /// What the operation expected, in words.
        expected: String,
        /// The shape it received.
        got: Vec<usize>,
    },
    /// Two shapes that must agree do not.
    #[error("{op}: {what} (lhs {lhs:?}, rhs {rhs:?})")]
    ShapeMismatch {
        /// The operation that failed.
        op: &'static str,
        /// What disagrees, in words.
        what: String,
        /// Shape of the first operand.
        lhs: Vec<usize>,
        /// Shape of the second operand.
        rhs: Vec<usize>,
    },
    /// An index is outside the range of the axis it addresses.
    #[error("{op}: index {index} out of range for size {size}")]
    Index {
        /// The operation that failed.
        op: &'static str,
        /// The offending index.
        index: i64,
        /// Size of the axis it indexes.
        size: usize,
    },
    /// An argument value is invalid (a zero stride, a negative count, an empty list).
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The operation that failed.
        op: &'static str,
        /// What is wrong with the argument.
        reason: String,
    },
    /// The operation exists but this case is not implemented.
    #[error("{op}: unsupported: {reason}")]
    Unsupported {
        /// The operation that failed.
        op: &'static str,
        /// Which case is unsupported.
        reason: &'static str,
    },
}

/// Result alias for tensor operations.
pub type Result<T> = std::result::Result<T, TensorError>;
