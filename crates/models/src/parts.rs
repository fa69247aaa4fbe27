//! Small pieces the models share: GPT-2 initialisation, dropout with a per-call mode and
//! token checks.

use std::sync::{Mutex, MutexGuard};

use strata_autograd::Var;
use strata_nn_layers::Linear;
use strata_tensor::{Element, Generator, IndexTensor, Tensor};

use crate::error::{ModelError, Result};

/// A `Linear` layer with the GPT-2 initialisation: weight from `normal(0, std)`, bias zero.
pub(crate) fn normal_linear<T: Element>(
    in_features: usize,
    out_features: usize,
    bias: bool,
    std: f64,
    gen: &mut Generator,
) -> Result<Linear<T>> {
    let weight = gen.normal(&[out_features, in_features], T::zero(), T::from_f64(std));
    let bias = bias.then(|| Var::parameter(Tensor::zeros(&[out_features])));
    Ok(Linear::from_parts(Var::parameter(weight), bias)?)
}

/// Inverted dropout with its own seeded generator, the mode given per call.
///
/// `strata_nn_layers::Dropout` keeps its mode in the layer; models use this one where a
/// method such as `generate` must run without dropout whatever the model's mode.
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

    /// The probability and the generator to pass to attention's dropout, when `training`.
    pub(crate) fn active(&self, training: bool) -> Option<(f64, MutexGuard<'_, Generator>)> {
        (training && self.p > 0.0)
            .then(|| (self.p, self.gen.lock().unwrap_or_else(|p| p.into_inner())))
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
