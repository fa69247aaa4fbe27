//! `Linear`: the affine map `y = x W^T + b` of PyTorch's `nn.Linear`.

use strata_autograd::Var;
use strata_tensor::{Element, Generator};

use crate::error::{NnError, Result};
use crate::module::{prefixed, Forward, Module};

/// Options of [`Linear`], PyTorch's keyword arguments; `Default` matches PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearConfig {
    /// Whether the layer adds a learned bias (PyTorch's `bias=True`). Default `true`.
    pub bias: bool,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self { bias: true }
    }
}

impl LinearConfig {
    /// The config of a layer without bias (PyTorch's `bias=False`).
    pub fn no_bias() -> Self {
        Self { bias: false }
    }
}

/// A fully connected layer, PyTorch's `nn.Linear(in_features, out_features, bias)`.
///
/// ```text
/// y = x W^T + b       W: (out_features, in_features), b: (out_features)
/// ```
///
/// Both `W` and `b` start from `U(-k, k)` with `k = 1 / sqrt(in_features)`, which is what
/// PyTorch's kaiming-uniform initialisation with `a = sqrt(5)` amounts to.
///
/// # Shapes
/// - input: `(*, in_features)`, any number of leading dimensions, or `(in_features)`
/// - output: `(*, out_features)`
///
/// ```
/// use strata_autograd::Var;
/// use strata_nn_layers::{Forward, Linear, Module};
/// use strata_tensor::{Generator, Tensor};
///
/// let mut gen = Generator::new(0);
/// let layer = Linear::<f32>::new(4, 3, &mut gen);
/// let xs = Var::new(Tensor::ones(&[2, 5, 4]));
/// let ys = layer.forward(&xs)?;
/// assert_eq!(ys.shape(), &[2, 5, 3]);
/// assert_eq!(layer.num_parameters(), 4 * 3 + 3);
/// # Ok::<(), strata_nn_layers::NnError>(())
/// ```
#[derive(Debug)]
pub struct Linear<T: Element> {
    weight: Var<T>,
    bias: Option<Var<T>>,
}

impl<T: Element> Linear<T> {
    /// A layer with bias, initialised from `gen` as PyTorch does.
    pub fn new(in_features: usize, out_features: usize, gen: &mut Generator) -> Self {
        Self::with_config(in_features, out_features, LinearConfig::default(), gen)
    }

    /// A layer with the options of `config`, initialised from `gen` as PyTorch does.
    pub fn with_config(
        in_features: usize,
        out_features: usize,
        config: LinearConfig,
        gen: &mut Generator,
    ) -> Self {
        let bound = T::from_f64(init_bound(in_features));
        let weight = Var::parameter(gen.uniform(&[out_features, in_features], -bound, bound));
        let bias = config
            .bias
            .then(|| Var::parameter(gen.uniform(&[out_features], -bound, bound)));
        Self { weight, bias }
    }

    /// A layer around given parameters: `weight` of shape `(out, in)`, `bias` of shape `(out)`.
    ///
    /// # Errors
    /// [`NnError::Config`] if `weight` is not 2-D or `bias` does not have `out` elements.
    pub fn from_parts(weight: Var<T>, bias: Option<Var<T>>) -> Result<Self> {
        if weight.ndim() != 2 {
            return Err(NnError::Config {
                layer: "Linear",
                reason: format!("weight must be (out, in), got shape {:?}", weight.shape()),
            });
        }
        if let Some(b) = &bias {
            if b.shape() != [weight.shape()[0]] {
                return Err(NnError::Config {
                    layer: "Linear",
                    reason: format!(
                        "bias must have shape [{}], got {:?}",
                        weight.shape()[0],
                        b.shape()
                    ),
                });
            }
        }
        Ok(Self { weight, bias })
    }

    /// The weight, of shape `(out_features, in_features)`.
    pub fn weight(&self) -> &Var<T> {
        &self.weight
    }

    /// The bias, of shape `(out_features)`, if the layer has one.
    pub fn bias(&self) -> Option<&Var<T>> {
        self.bias.as_ref()
    }

    /// The size of each input sample.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The size of each output sample.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

/// `1 / sqrt(fan_in)`, the bound of PyTorch's default weight and bias initialisation.
fn init_bound(fan_in: usize) -> f64 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    }
}

impl<T: Element> Module<T> for Linear<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        f(&prefixed(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&prefixed(prefix, "bias"), b);
        }
    }
}

impl<T: Element> Forward<T> for Linear<T> {
    /// Computes `xs W^T + b` on the last dimension of `xs`.
    ///
    /// # Errors
    /// [`NnError::Input`] if `xs` is 0-d or its last dimension is not `in_features`.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let in_features = self.in_features();
        if xs.shape().last() != Some(&in_features) {
            return Err(NnError::Input {
                layer: "Linear",
                reason: format!(
                    "expected input (*, {in_features}), got shape {:?}",
                    xs.shape()
                ),
            });
        }
        // One product over all leading dims, the bias added inside it.
        Ok(xs.linear(&self.weight, self.bias.as_ref())?)
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::Tensor;

    use super::*;

    #[test]
    fn init_is_within_pytorch_bound_and_names_match() {
        let layer = Linear::<f64>::new(16, 8, &mut Generator::new(3));

        let names: Vec<String> = layer.named_parameters().into_iter().map(|p| p.0).collect();
        let w = layer.weight().value().to_vec();

        assert_eq!(names, ["weight", "bias"]);
        assert!(w.iter().all(|v| v.abs() <= 0.25));
        assert!(w.iter().any(|v| v.abs() > 0.15));
    }

    #[test]
    fn no_bias_has_only_weight() {
        let layer =
            Linear::<f32>::with_config(3, 2, LinearConfig::no_bias(), &mut Generator::new(0));

        assert!(layer.bias().is_none());
        assert_eq!(layer.num_parameters(), 6);
    }

    #[test]
    fn forward_matches_hand_computation_on_1d_2d_and_3d() {
        let w =
            Var::parameter(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap());
        let b = Var::parameter(Tensor::from_vec(vec![0.5, -0.5], &[2]).unwrap());
        let layer = Linear::from_parts(w, Some(b)).unwrap();
        let x1 = Var::new(Tensor::from_vec(vec![1.0f64, 0.0, -1.0], &[3]).unwrap());
        let x3 = Var::new(Tensor::from_vec([1.0f64, 0.0, -1.0].repeat(4), &[2, 2, 3]).unwrap());

        let y1 = layer.forward(&x1).unwrap();
        let y3 = layer.forward(&x3).unwrap();

        assert_eq!(y1.value().to_vec(), [-1.5, -2.5]);
        assert_eq!(y3.shape(), &[2, 2, 2]);
        assert_eq!(y3.value().to_vec(), [-1.5, -2.5].repeat(4));
    }

    #[test]
    fn wrong_feature_count_is_an_input_error() {
        let layer = Linear::<f32>::new(3, 2, &mut Generator::new(0));
        let xs = Var::new(Tensor::zeros(&[4, 5]));

        let err = layer.forward(&xs).unwrap_err();

        assert!(
            err.to_string().contains("Linear: expected input (*, 3)"),
            "{err}"
        );
    }

    #[test]
    fn from_parts_rejects_bad_bias() {
        let w = Var::parameter(Tensor::<f32>::zeros(&[2, 3]));
        let b = Var::parameter(Tensor::zeros(&[3]));

        assert!(Linear::from_parts(w, Some(b)).is_err());
    }
}
