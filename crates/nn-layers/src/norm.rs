//! `LayerNorm` and `RMSNorm`: normalisation over the trailing dimensions of each sample.

use strata_autograd::Var;
use strata_tensor::{Element, Tensor};

use crate::error::{NnError, Result};
use crate::module::{prefixed, Forward, Module};

/// Options of [`LayerNorm`]; `Default` matches PyTorch 2.x.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNormConfig {
    /// Added to the variance before the square root. Default `1e-5`.
    pub eps: f64,
    /// Whether the layer has a learned per-element weight (and bias). Default `true`.
    pub elementwise_affine: bool,
    /// Whether the affine part has a bias (PyTorch 2.x `bias=False` turns it off); ignored
    /// without `elementwise_affine`. Default `true`.
    pub bias: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }
}

/// Layer normalization, PyTorch's `nn.LayerNorm(normalized_shape)`.
///
/// ```text
/// y = (x - mean) / sqrt(var + eps) * weight + bias
/// ```
///
/// `mean` and the biased `var` are taken over the trailing `normalized_shape` dimensions of
/// each sample; `weight` starts at ones and `bias` at zeros, both of shape `normalized_shape`.
/// It runs as autograd's single fused `layer_norm` op.
///
/// # Shapes
/// - input: `(*, normalized_shape...)`; output: same shape
#[derive(Debug)]
pub struct LayerNorm<T: Element> {
    normalized_shape: Vec<usize>,
    weight: Option<Var<T>>,
    bias: Option<Var<T>>,
    eps: f64,
}

impl<T: Element> LayerNorm<T> {
    /// A layer norm over `normalized_shape` with PyTorch's defaults.
    pub fn new(normalized_shape: &[usize]) -> Self {
        Self::with_config(normalized_shape, LayerNormConfig::default())
    }

    /// A layer norm over `normalized_shape` with the options of `config`.
    pub fn with_config(normalized_shape: &[usize], config: LayerNormConfig) -> Self {
        let affine = config.elementwise_affine;
        Self {
            normalized_shape: normalized_shape.to_vec(),
            weight: affine.then(|| Var::parameter(Tensor::ones(normalized_shape))),
            bias: (affine && config.bias).then(|| Var::parameter(Tensor::zeros(normalized_shape))),
            eps: config.eps,
        }
    }

    /// The trailing shape normalised over.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }

    /// The learned scale, if the layer is affine.
    pub fn weight(&self) -> Option<&Var<T>> {
        self.weight.as_ref()
    }

    /// The learned shift, if the layer has one.
    pub fn bias(&self) -> Option<&Var<T>> {
        self.bias.as_ref()
    }

    /// The epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl<T: Element> Module<T> for LayerNorm<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        if let Some(w) = &self.weight {
            f(&prefixed(prefix, "weight"), w);
        }
        if let Some(b) = &self.bias {
            f(&prefixed(prefix, "bias"), b);
        }
    }
}

impl<T: Element> Forward<T> for LayerNorm<T> {
    /// Normalises each sample over the trailing `normalized_shape` dimensions.
    ///
    /// # Errors
    /// [`NnError::Input`] if the trailing dimensions of `xs` are not `normalized_shape`.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        check_trailing("LayerNorm", xs.shape(), &self.normalized_shape)?;
        Ok(xs.layer_norm(
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )?)
    }
}

/// Options of [`RMSNorm`]; `Default` matches PyTorch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RMSNormConfig {
    /// Added to the mean square; `None` (the default) uses the machine epsilon of the element
    /// type, as PyTorch's `eps=None` does (`f32::EPSILON` for `f32`).
    pub eps: Option<f64>,
    /// Whether the layer has a learned per-element weight. Default `true`.
    pub elementwise_affine: bool,
}

impl Default for RMSNormConfig {
    fn default() -> Self {
        Self {
            eps: None,
            elementwise_affine: true,
        }
    }
}

/// Root-mean-square normalization, PyTorch's `nn.RMSNorm(normalized_shape)`.
///
/// ```text
/// y = x / sqrt(mean(x^2) + eps) * weight
/// ```
///
/// The mean is over the trailing `normalized_shape` dimensions; `weight` starts at ones.
///
/// # Shapes
/// - input: `(*, normalized_shape...)`; output: same shape
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug)]
pub struct RMSNorm<T: Element> {
    normalized_shape: Vec<usize>,
    weight: Option<Var<T>>,
    eps: f64,
}

impl<T: Element> RMSNorm<T> {
    /// An RMS norm over `normalized_shape` with PyTorch's defaults.
    pub fn new(normalized_shape: &[usize]) -> Self {
        Self::with_config(normalized_shape, RMSNormConfig::default())
    }

    /// An RMS norm over `normalized_shape` with the options of `config`.
    pub fn with_config(normalized_shape: &[usize], config: RMSNormConfig) -> Self {
        Self {
            normalized_shape: normalized_shape.to_vec(),
            weight: config
                .elementwise_affine
                .then(|| Var::parameter(Tensor::ones(normalized_shape))),
            eps: config.eps.unwrap_or_else(|| T::epsilon().as_f64()),
        }
    }

    /// The learned scale, if the layer is affine.
    pub fn weight(&self) -> Option<&Var<T>> {
        self.weight.as_ref()
    }

    /// The epsilon added to the mean square.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl<T: Element> Module<T> for RMSNorm<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        if let Some(w) = &self.weight {
            f(&prefixed(prefix, "weight"), w);
        }
    }
}

impl<T: Element> Forward<T> for RMSNorm<T> {
    /// Scales each sample by the reciprocal root mean square of its trailing dimensions.
    ///
    /// # Errors
    /// [`NnError::Input`] if the trailing dimensions of `xs` are not `normalized_shape`.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        check_trailing("RMSNorm", xs.shape(), &self.normalized_shape)?;
        let dims: Vec<isize> = (1..=self.normalized_shape.len() as isize)
            .map(|d| -d)
            .collect();
        let rms_inv = xs
            .square()
            .mean_keepdim(&dims)?
            .add_scalar(T::from_f64(self.eps))
            .rsqrt();
        let normed = xs.mul(&rms_inv)?;
        match &self.weight {
            Some(w) => Ok(normed.mul(w)?),
            None => Ok(normed),
        }
    }
}

fn check_trailing(layer: &'static str, shape: &[usize], normalized: &[usize]) -> Result<()> {
    if shape.len() >= normalized.len() && shape.ends_with(normalized) {
        Ok(())
    } else {
        Err(NnError::Input {
            layer,
            reason: format!(
                "expected input ending in normalized_shape {normalized:?}, got shape {shape:?}"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_rows_have_zero_mean_unit_variance() {
        let ln = LayerNorm::<f64>::new(&[4]);
        let xs = Var::new(
            Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, -1.0, 0.0, 5.0, 2.0], &[2, 4]).unwrap(),
        );

        let ys = ln.forward(&xs).unwrap().value().to_vec();

        for row in ys.chunks(4) {
            let mean: f64 = row.iter().sum::<f64>() / 4.0;
            let var: f64 = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
            assert!(mean.abs() < 1e-12);
            assert!((var - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn layer_norm_options_set_parameters() {
        let no_bias = LayerNormConfig {
            bias: false,
            ..LayerNormConfig::default()
        };
        let plain = LayerNormConfig {
            elementwise_affine: false,
            ..LayerNormConfig::default()
        };

        assert_eq!(LayerNorm::<f32>::new(&[3]).named_parameters().len(), 2);
        assert_eq!(
            LayerNorm::<f32>::with_config(&[3], no_bias)
                .named_parameters()
                .len(),
            1
        );
        assert_eq!(
            LayerNorm::<f32>::with_config(&[3], plain).num_parameters(),
            0
        );
    }

    #[test]
    fn wrong_trailing_shape_is_an_input_error() {
        let xs = Var::new(Tensor::<f32>::zeros(&[2, 5]));

        assert!(LayerNorm::<f32>::new(&[4]).forward(&xs).is_err());
        assert!(RMSNorm::<f32>::new(&[2, 5, 1]).forward(&xs).is_err());
    }

    #[test]
    fn rms_norm_gives_unit_root_mean_square() {
        let norm = RMSNorm::<f64>::with_config(
            &[3],
            RMSNormConfig {
                eps: Some(0.0),
                elementwise_affine: true,
            },
        );
        let xs = Var::new(Tensor::from_vec(vec![3.0, 4.0, 0.0], &[1, 3]).unwrap());

        let ys = norm.forward(&xs).unwrap().value().to_vec();
        let rms = (25.0f64 / 3.0).sqrt();

        assert!((ys[0] - 3.0 / rms).abs() < 1e-12 && (ys[1] - 4.0 / rms).abs() < 1e-12);
        assert_eq!(RMSNorm::<f32>::new(&[3]).eps(), f64::from(f32::EPSILON));
    }
}
