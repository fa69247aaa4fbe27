//! The element trait: the floating-point types a tensor can hold.

use std::fmt::{Debug, Display};
use std::iter::Sum;

use num_traits::{Float, NumAssign};

/// The element types a [`crate::Tensor`] can hold: `f32` for training, `f64` for gradient checks.
///
/// It adds to [`num_traits::Float`] what kernels need and `Float` lacks: conversions to and from
/// `f64` that cannot fail, the error function, and the name of the type.
pub trait Element:
    Float + NumAssign + Sum + Debug + Display + Default + Send + Sync + 'static
{
    /// The type's name as PyTorch and safetensors spell it (`"F32"`, `"F64"`).
    const DTYPE: DType;

    /// Converts from `f64`, rounding to the nearest value of `Self`.
    fn from_f64(value: f64) -> Self;

    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;

    /// Converts from `usize`, rounding to the nearest value of `Self`.
    fn from_usize(value: usize) -> Self {
        Self::from_f64(value as f64)
    }

    /// The Gauss error function, `erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt`.
    fn erf(self) -> Self;
}

/// The element type of a tensor, as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE 754 float.
    F32,
    /// 64-bit IEEE 754 float.
    F64,
}

impl DType {
    /// The name used by safetensors and PyTorch's `dtype` strings (`"F32"`, `"F64"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F64 => "F64",
        }
    }

    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;

    fn from_f64(value: f64) -> Self {
        value as f32
    }

    fn as_f64(self) -> f64 {
        f64::from(self)
    }

    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;

    fn from_f64(value: f64) -> Self {
        value
    }

    fn as_f64(self) -> f64 {
        self
    }

    fn erf(self) -> Self {
        libm::erf(self)
    }
}
