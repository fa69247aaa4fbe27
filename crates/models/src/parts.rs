//! Small building blocks the models share: affine maps, layer norm, dropout and the loss.
//!
//! They are thin wrappers over the differentiable ops of `strata-autograd`, kept private to
//! this crate so that each model controls its own parameter layout and initialisation (the
//! GPT-2 recipe differs from PyTorch's layer defaults) and names its parameters itself.

use std::sync::Mutex;

use strata_autograd::Var;
use strata_tensor::{Element, Generator, IndexTensor, Tensor};

use crate::error::{ModelError, Result};

/// An affine map `y = x W^T + b` with PyTorch's `(out_features, in_features)` weight layout.
#[derive(Debug)]
pub(crate) struct Affine<T: Element> {
    pub(crate) weight: Var<T>,
    pub(crate) bias: Option<Var<T>>,
}

impl<T: Element> Affine<T> {
    /// Weight drawn from `normal(0, std)`, bias zero (the GPT-2 recipe).
    pub(crate) fn normal(
        in_features: usize,
        out_features: usize,
        bias: bool,
        std: f64,
        gen: &mut Generator,
    ) -> Self {
        let weight = gen.normal(&[out_features, in_features], T::zero(), T::from_f64(std));
        Self {
            weight: Var::parameter(weight),
            bias: bias.then(|| Var::parameter(Tensor::zeros(&[out_features]))),
        }
    }

    /// The number of input features.
    pub(crate) fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Applies the map to the last dim of `xs` (any leading dims).
    ///
    /// Leading dims are flattened so the product is one 2-D GEMM, whose weight gradient is a
    /// single matrix product rather than a batch of them summed afterwards.
    pub(crate) fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let in_features = self.in_features();
        let shape = xs.shape().to_vec();
        if shape.last() != Some(&in_features) {
            return Err(ModelError::Input {
                model: "linear",
                reason: format!("expected last dim {in_features}, got shape {shape:?}"),
            });
        }
        let rows = shape[..shape.len() - 1].iter().product();
        let flat = if shape.len() == 2 {
            xs.clone()
        } else {
            xs.reshape(&[rows, in_features])?
        };
        let mut ys = flat.matmul(&self.weight.transpose(0, 1)?)?;
        if let Some(bias) = &self.bias {
            ys = ys.add(bias)?;
        }
        if shape.len() == 2 {
            return Ok(ys);
        }
        let mut out_shape = shape;
        *out_shape.last_mut().expect("bug: rank checked above") = self.weight.shape()[0];
        Ok(ys.reshape(&out_shape)?)
    }

    /// Visits `weight` then `bias` under `prefix`.
    pub(crate) fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        f(&strata_nn_layers::prefixed(prefix, "weight"), &self.weight);
        if let Some(bias) = &self.bias {
            f(&strata_nn_layers::prefixed(prefix, "bias"), bias);
        }
    }
}

/// Layer normalization over the last dim, weight one and bias zero (PyTorch's default).
#[derive(Debug)]
pub(crate) struct Norm<T: Element> {
    pub(crate) weight: Var<T>,
    pub(crate) bias: Option<Var<T>>,
    pub(crate) eps: f64,
}

impl<T: Element> Norm<T> {
    /// A layer norm over `dim` features, eps 1e-5 as in PyTorch.
    pub(crate) fn new(dim: usize, bias: bool) -> Self {
        Self {
            weight: Var::parameter(Tensor::ones(&[dim])),
            bias: bias.then(|| Var::parameter(Tensor::zeros(&[dim]))),
            eps: 1e-5,
        }
    }

    /// Normalizes the last dim of `xs` with the fused op.
    pub(crate) fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let dim = self.weight.shape()[0];
        Ok(xs.layer_norm(&[dim], Some(&self.weight), self.bias.as_ref(), self.eps)?)
    }

    /// Visits `weight` then `bias` under `prefix`.
    pub(crate) fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        f(&strata_nn_layers::prefixed(prefix, "weight"), &self.weight);
        if let Some(bias) = &self.bias {
            f(&strata_nn_layers::prefixed(prefix, "bias"), bias);
        }
    }
}

/// Inverted dropout with its own seeded generator, so `forward(&self)` can draw masks.
#[derive(Debug)]
pub(crate) struct Dropout {
    pub(crate) p: f64,
    gen: Mutex<Generator>,
}

impl Dropout {
    /// Drops with probability `p`, drawing masks from a child of `gen`.
    pub(crate) fn new(p: f64, gen: &mut Generator) -> Self {
        Self {
            p,
            gen: Mutex::new(Generator::new(gen.next_u64())),
        }
    }

    /// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)` when
    /// `training`; the identity otherwise.
    pub(crate) fn forward<T: Element>(&self, xs: &Var<T>, training: bool) -> Result<Var<T>> {
        if !training || self.p == 0.0 {
            return Ok(xs.clone());
        }
        let keep = 1.0 - self.p;
        let mask: Tensor<T> = {
            let mut gen = self.gen.lock().unwrap_or_else(|p| p.into_inner());
            gen.bernoulli(xs.shape(), keep)
        };
        let scaled = mask.mul_scalar(T::from_f64(1.0 / keep));
        Ok(xs.mul(&Var::new(scaled))?)
    }
}

/// Mean cross entropy of `(n, classes)` logits against `n` class indices, PyTorch's
/// `F.cross_entropy` with mean reduction.
pub(crate) fn cross_entropy<T: Element>(logits: &Var<T>, targets: &IndexTensor) -> Result<Var<T>> {
    let n = logits.shape()[0];
    if logits.ndim() != 2 || targets.numel() != n {
        return Err(ModelError::Input {
            model: "cross_entropy",
            reason: format!(
                "expected (n, classes) logits and n targets, got {:?} and {:?}",
                logits.shape(),
                targets.shape()
            ),
        });
    }
    let picked = logits
        .log_softmax(-1)?
        .gather(1, &targets.reshape(&[n, 1])?)?;
    Ok(picked.mean_all().neg())
}

/// Checks that every token id is below `vocab_size`.
pub(crate) fn check_tokens(
    model: &'static str,
    idx: &IndexTensor,
    vocab_size: usize,
) -> Result<()> {
    match idx.as_slice().iter().find(|&&t| t >= vocab_size) {
        Some(&bad) => Err(ModelError::Input {
            model,
            reason: format!("token id {bad} out of range for vocab size {vocab_size}"),
        }),
        None => Ok(()),
    }
}
