//! `Bilinear`: the bilinear map `y = x1^T A x2 + b` of PyTorch's `nn.Bilinear`.

use strata_autograd::Var;
use strata_tensor::{Element, Generator};

use crate::error::{NnError, Result};
use crate::linear::LinearConfig;
use crate::module::{prefixed, Module};

/// A bilinear layer, PyTorch's `nn.Bilinear(in1_features, in2_features, out_features)`.
///
/// ```text
/// y_o = sum_ij x1_i A_oij x2_j + b_o       A: (out, in1, in2), b: (out)
/// ```
///
/// `A` and `b` start from `U(-k, k)` with `k = 1 / sqrt(in1_features)`, as in PyTorch. It
/// runs as one matrix product of `x1` with `A` laid out as `(in1, out * in2)`, then a product
/// with `x2` summed over `in2`.
///
/// # Shapes
/// - `x1`: `(*, in1_features)`; `x2`: `(*, in2_features)` with the same leading dims
/// - output: `(*, out_features)`
#[derive(Debug)]
pub struct Bilinear<T: Element> {
    weight: Var<T>,
    bias: Option<Var<T>>,
}

impl<T: Element> Bilinear<T> {
    /// A layer with bias, initialised from `gen` as PyTorch does.
    pub fn new(in1: usize, in2: usize, out: usize, gen: &mut Generator) -> Self {
        Self::with_config(in1, in2, out, LinearConfig::default(), gen)
    }

    /// A layer with the options of `config` (whether it has a bias).
    pub fn with_config(
        in1: usize,
        in2: usize,
        out: usize,
        config: LinearConfig,
        gen: &mut Generator,
    ) -> Self {
        let k = if in1 == 0 {
            0.0
        } else {
            1.0 / (in1 as f64).sqrt()
        };
        let k = T::from_f64(k);
        let weight = Var::parameter(gen.uniform(&[out, in1, in2], -k, k));
        let bias = config
            .bias
            .then(|| Var::parameter(gen.uniform(&[out], -k, k)));
        Self { weight, bias }
    }

    /// The weight, of shape `(out_features, in1_features, in2_features)`.
    pub fn weight(&self) -> &Var<T> {
        &self.weight
    }

    /// The bias, of shape `(out_features)`, if the layer has one.
    pub fn bias(&self) -> Option<&Var<T>> {
        self.bias.as_ref()
    }

    /// Computes `x1^T A x2 + b` for each pair of rows.
    ///
    /// # Errors
    /// [`NnError::Input`] if the feature sizes are wrong or the leading dims differ.
    pub fn forward(&self, x1: &Var<T>, x2: &Var<T>) -> Result<Var<T>> {
        let (out, in1, in2) = (
            self.weight.shape()[0],
            self.weight.shape()[1],
            self.weight.shape()[2],
        );
        let (s1, s2) = (x1.shape(), x2.shape());
        let fits = s1.last() == Some(&in1)
            && s2.last() == Some(&in2)
            && s1[..s1.len() - 1] == s2[..s2.len() - 1];
        if !fits {
            return Err(NnError::Input {
                layer: "Bilinear",
                reason: format!(
                    "expected inputs (*, {in1}) and (*, {in2}) with equal leading dims, got \
                     {s1:?} and {s2:?}"
                ),
            });
        }
        let lead = s1[..s1.len() - 1].to_vec();
        let rows: usize = lead.iter().product();
        let a = self
            .weight
            .permute(&[1, 0, 2])?
            .reshape(&[in1, out * in2])?;
        let left = x1
            .reshape(&[rows, in1])?
            .matmul(&a)?
            .reshape(&[rows, out, in2])?;
        let right = x2.reshape(&[rows, 1, in2])?;
        let mut ys = left.mul(&right)?.sum(&[-1])?;
        if let Some(b) = &self.bias {
            ys = ys.add(b)?;
        }
        let mut out_shape = lead;
        out_shape.push(out);
        Ok(ys.reshape(&out_shape)?)
    }
}

impl<T: Element> Module<T> for Bilinear<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        f(&prefixed(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&prefixed(prefix, "bias"), b);
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::Tensor;

    use super::*;

    #[test]
    fn one_output_is_the_quadratic_form() {
        let layer =
            Bilinear::<f64>::with_config(2, 3, 1, LinearConfig::no_bias(), &mut Generator::new(0));
        let a = layer.weight().value().to_vec();
        let x1 = Var::new(Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
        let x2 = Var::new(Tensor::from_vec(vec![0.5, -1.0, 3.0], &[3]).unwrap());

        let y = layer.forward(&x1, &x2).unwrap().value().to_vec();

        let (u, v) = ([1.0, 2.0], [0.5, -1.0, 3.0]);
        let want: f64 = (0..2)
            .flat_map(|i| (0..3).map(move |j| (i, j)))
            .map(|(i, j)| u[i] * a[i * 3 + j] * v[j])
            .sum();
        assert_eq!(layer.forward(&x1, &x2).unwrap().shape(), &[1]);
        assert!((y[0] - want).abs() < 1e-12);
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let layer = Bilinear::<f32>::new(2, 3, 4, &mut Generator::new(0));
        let x1 = Var::new(Tensor::zeros(&[5, 2]));

        assert!(layer
            .forward(&x1, &Var::new(Tensor::zeros(&[5, 2])))
            .is_err());
        assert!(layer
            .forward(&x1, &Var::new(Tensor::zeros(&[4, 3])))
            .is_err());
        assert_eq!(
            layer
                .forward(&x1, &Var::new(Tensor::zeros(&[5, 3])))
                .unwrap()
                .shape(),
            &[5, 4]
        );
    }
}
