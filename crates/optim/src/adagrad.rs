//! Adagrad (PyTorch's `torch.optim.Adagrad`).

use std::collections::BTreeMap;

use strata_tensor::Element;

use crate::error::{check_non_negative, Result};
use crate::optimizer::{
    config_pairs, forward_core, group_constructors, Core, GroupConfig, Optimizer, ParamState,
};

/// Hyperparameters of [`Adagrad`]; `Default` matches `torch.optim.Adagrad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate. Default `1e-2`.
    pub lr: f64,
    /// Learning-rate decay: step `t` uses `lr / (1 + (t - 1) * lr_decay)`. Default `0`.
    pub lr_decay: f64,
    /// L2 penalty: `weight_decay * param` is added to the gradient. Default `0`.
    pub weight_decay: f64,
    /// Starting value of the sum of squared gradients. Default `0`.
    pub initial_accumulator_value: f64,
    /// Added to the denominator for numerical stability. Default `1e-10`.
    pub eps: f64,
    /// Maximize the objective instead of minimizing it. Default `false`.
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

/// Adagrad (Duchi et al.), as PyTorch's `torch.optim.Adagrad`.
///
/// For each parameter `p` with gradient `g`, at step `t = 1, 2, ...`:
///
/// ```text
/// g   = -g if maximize
/// g   = g + weight_decay * p                  if weight_decay != 0
/// clr = lr / (1 + (t - 1) * lr_decay)
/// s   = s + g * g                             (s starts at initial_accumulator_value)
/// p   = p - clr * g / (sqrt(s) + eps)
/// ```
#[derive(Debug, Clone)]
pub struct Adagrad<T: Element> {
    core: Core<T, AdagradConfig, AdagradState<T>>,
}

group_constructors!(
    Adagrad,
    AdagradConfig,
    "Adagrad",
    errors: [
        "[`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if",
        "`params` is empty or holds a parameter twice, or a hyperparameter is negative.",
    ]
);

impl<T: Element> Optimizer<T> for Adagrad<T> {
    fn step(&mut self) -> Result<()> {
        self.core.step(adagrad_update)
    }

    forward_core!();
}

impl GroupConfig for AdagradConfig {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        check_non_negative("Adagrad", "lr", self.lr)?;
        check_non_negative("Adagrad", "lr_decay", self.lr_decay)?;
        check_non_negative("Adagrad", "weight_decay", self.weight_decay)?;
        check_non_negative(
            "Adagrad",
            "initial_accumulator_value",
            self.initial_accumulator_value,
        )?;
        check_non_negative("Adagrad", "eps", self.eps)
    }

    config_pairs!(
        lr,
        lr_decay,
        weight_decay,
        initial_accumulator_value,
        eps,
        maximize
    );
}

/// Per-parameter state: step count and sum of squared gradients.
#[derive(Debug, Clone)]
struct AdagradState<T> {
    step: u64,
    sum: Vec<T>,
}

impl<T: Element> ParamState<T> for AdagradState<T> {
    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["sum"]
    }

    fn buffer(&self, _name: &str) -> &[T] {
        &self.sum
    }

    fn step_count(&self) -> Option<u64> {
        Some(self.step)
    }

    fn from_saved(
        buffers: &mut BTreeMap<&'static str, Vec<T>>,
        step: Option<u64>,
    ) -> std::result::Result<Self, String> {
        Ok(Self {
            step: step.ok_or("step is missing")?,
            sum: buffers.remove("sum").ok_or("sum is missing")?,
        })
    }

    fn all_buffer_names() -> &'static [&'static str] {
        &["sum"]
    }
}

/// One Adagrad step of one parameter, in a single pass over its elements.
fn adagrad_update<T: Element>(
    c: &AdagradConfig,
    p: &mut [T],
    g: &[T],
    state: &mut Option<AdagradState<T>>,
) {
    let init = T::from_f64(c.initial_accumulator_value);
    let st = state.get_or_insert_with(|| AdagradState {
        step: 0,
        sum: vec![init; p.len()],
    });
    st.step += 1;

    let clr = c.lr / (1.0 + (st.step - 1) as f64 * c.lr_decay);
    let neg_clr = T::from_f64(-clr);
    let eps = T::from_f64(c.eps);
    let l2 = T::from_f64(c.weight_decay);
    for ((w, &grad), s) in p.iter_mut().zip(g).zip(st.sum.iter_mut()) {
        let mut grad = if c.maximize { -grad } else { grad };
        if c.weight_decay != 0.0 {
            grad += l2 * *w;
        }
        *s += grad * grad;
        let std = s.sqrt() + eps;
        *w += neg_clr * grad / std;
    }
}

#[cfg(test)]
mod tests {
    use strata_autograd::Var;
    use strata_tensor::Tensor;

    use super::*;

    #[test]
    fn lr_decay_shrinks_later_steps() {
        let w = Var::parameter(Tensor::from_vec(vec![0.0f64], &[1]).unwrap());
        let config = AdagradConfig {
            lr: 1.0,
            lr_decay: 1.0,
            eps: 0.0,
            ..Default::default()
        };
        let mut opt = Adagrad::new(vec![w.clone()], config).unwrap();
        w.set_grad(Some(Tensor::ones(&[1])));

        opt.step().unwrap();
        opt.step().unwrap();

        // Step 1: -1 / sqrt(1); step 2: -(1 / 2) / sqrt(2).
        let want = -1.0 - 0.5 / 2f64.sqrt();
        assert!((w.value().to_vec()[0] - want).abs() < 1e-12);
    }
}
