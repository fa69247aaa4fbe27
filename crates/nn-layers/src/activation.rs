//! Activation functions as modules, for use in [`crate::Sequential`]: PyTorch's `nn.ReLU`,
//! `nn.GELU`, `nn.Softmax` and friends.
//!
//! They hold no parameters and no element type, so one value works for `f32` and `f64`
//! modules alike; each forward is one differentiable op of `strata-autograd`.

use strata_autograd::Var;
use strata_tensor::Element;

use crate::error::Result;
use crate::module::{Forward, Module};

/// Implements `Module` (no parameters) and `Forward` through `$body` for an activation.
macro_rules! activation {
    ($name:ident, |$self_:ident, $xs:ident| $body:expr) => {
        impl<T: Element> Module<T> for $name {
            fn visit_parameters(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Var<T>)) {}
        }

        impl<T: Element> Forward<T> for $name {
            fn forward(&self, $xs: &Var<T>) -> Result<Var<T>> {
                let $self_ = self;
                Ok($body)
            }
        }
    };
}

/// The rectified linear unit, PyTorch's `nn.ReLU`: `y = max(x, 0)`.
///
/// # Shapes
/// - input: any shape; output: same shape
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReLU;

activation!(ReLU, |_s, xs| xs.relu());

/// Leaky ReLU, PyTorch's `nn.LeakyReLU(negative_slope=0.01)`: `y = x` for `x > 0`, else
/// `negative_slope * x`.
///
/// # Shapes
/// - input: any shape; output: same shape
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyReLU {
    /// The slope for negative inputs. Default `0.01`.
    pub negative_slope: f64,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        Self {
            negative_slope: 0.01,
        }
    }
}

impl LeakyReLU {
    /// Leaky ReLU with the given negative slope.
    pub fn new(negative_slope: f64) -> Self {
        Self { negative_slope }
    }
}

activation!(LeakyReLU, |s, xs| xs
    .leaky_relu(T::from_f64(s.negative_slope)));

/// Which form of GELU to compute, PyTorch's `approximate` argument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GeluApproximate {
    /// The exact form with the error function (`approximate="none"`), the default.
    #[default]
    None,
    /// The tanh approximation (`approximate="tanh"`), as in GPT-2.
    Tanh,
}

/// The Gaussian error linear unit, PyTorch's `nn.GELU(approximate="none")`.
///
/// ```text
/// exact: y = x/2 * (1 + erf(x / sqrt(2)))
/// tanh:  y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
/// ```
///
/// # Shapes
/// - input: any shape; output: same shape
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GELU {
    /// Which form to compute. Default [`GeluApproximate::None`].
    pub approximate: GeluApproximate,
}

impl GELU {
    /// The exact GELU.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tanh approximation, PyTorch's `nn.GELU(approximate="tanh")`.
    pub fn tanh() -> Self {
        Self {
            approximate: GeluApproximate::Tanh,
        }
    }
}

activation!(GELU, |s, xs| match s.approximate {
    GeluApproximate::None => xs.gelu(),
    GeluApproximate::Tanh => xs.gelu_tanh(),
});

/// The sigmoid linear unit (swish), PyTorch's `nn.SiLU`: `y = x * sigmoid(x)`.
///
/// # Shapes
/// - input: any shape; output: same shape
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiLU;

activation!(SiLU, |_s, xs| xs.silu());

/// Hyperbolic tangent, PyTorch's `nn.Tanh`.
///
/// # Shapes
/// - input: any shape; output: same shape
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tanh;

activation!(Tanh, |_s, xs| xs.tanh());

/// The logistic sigmoid, PyTorch's `nn.Sigmoid`: `y = 1 / (1 + exp(-x))`.
///
/// # Shapes
/// - input: any shape; output: same shape
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sigmoid;

activation!(Sigmoid, |_s, xs| xs.sigmoid());

/// Softmax along `dim`, PyTorch's `nn.Softmax(dim)`: `y_i = exp(x_i) / sum_j exp(x_j)`.
///
/// # Shapes
/// - input: any shape; output: same shape
///
/// # Errors
/// The forward fails if `dim` is outside `-rank..rank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Softmax {
    /// The dimension the probabilities sum to one along; negative counts from the end.
    pub dim: isize,
}

impl Softmax {
    /// Softmax along `dim`.
    pub fn new(dim: isize) -> Self {
        Self { dim }
    }
}

activation!(Softmax, |s, xs| xs.softmax(s.dim)?);

/// Log-softmax along `dim`, PyTorch's `nn.LogSoftmax(dim)`: `y_i = x_i - logsumexp_j x_j`.
///
/// # Shapes
/// - input: any shape; output: same shape
///
/// # Errors
/// The forward fails if `dim` is outside `-rank..rank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSoftmax {
    /// The dimension normalised over; negative counts from the end.
    pub dim: isize,
}

impl LogSoftmax {
    /// Log-softmax along `dim`.
    pub fn new(dim: isize) -> Self {
        Self { dim }
    }
}

activation!(LogSoftmax, |s, xs| xs.log_softmax(s.dim)?);

#[cfg(test)]
mod tests {
    use strata_tensor::Tensor;

    use super::*;

    fn run(module: &dyn Forward<f64>, data: &[f64]) -> Vec<f64> {
        let xs = Var::new(Tensor::from_vec(data.to_vec(), &[data.len()]).unwrap());
        module.forward(&xs).unwrap().value().to_vec()
    }

    #[test]
    fn pointwise_activations_give_known_values() {
        let xs = [-2.0, 0.5];

        assert_eq!(run(&ReLU, &xs), [0.0, 0.5]);
        assert_eq!(run(&LeakyReLU::default(), &xs), [-0.02, 0.5]);
        assert_eq!(run(&LeakyReLU::new(0.2), &xs), [-0.4, 0.5]);
        assert!((run(&Sigmoid, &[0.0])[0] - 0.5).abs() < 1e-15);
        assert!((run(&Tanh, &[0.5])[0] - 0.5f64.tanh()).abs() < 1e-15);
        assert!((run(&SiLU, &[1.0])[0] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15);
    }

    #[test]
    fn gelu_forms_differ_slightly() {
        let exact = run(&GELU::new(), &[1.0])[0];
        let tanh = run(&GELU::tanh(), &[1.0])[0];

        assert!((exact - 0.841_344_746_068_542_9).abs() < 1e-12);
        assert!((exact - tanh).abs() > 1e-6 && (exact - tanh).abs() < 1e-3);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_log_softmax_matches() {
        let xs =
            Var::new(Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]).unwrap());

        let p = Softmax::new(-1).forward(&xs).unwrap().value().to_vec();
        let lp = LogSoftmax::new(1).forward(&xs).unwrap().value().to_vec();

        assert!((p[0] + p[1] + p[2] - 1.0).abs() < 1e-12);
        assert!((p[3] - 1.0 / 3.0).abs() < 1e-12);
        assert!(p.iter().zip(&lp).all(|(a, b)| (a.ln() - b).abs() < 1e-12));
        assert!(Softmax::new(2).forward(&xs).is_err());
    }
}
