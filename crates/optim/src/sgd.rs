//! Stochastic gradient descent with momentum (PyTorch's `torch.optim.SGD`).

use std::collections::BTreeMap;

use strata_tensor::Element;

use crate::error::{check_non_negative, invalid, Result};
use crate::optimizer::{
    config_pairs, forward_core, group_constructors, Core, GroupConfig, Optimizer, ParamState,
};

/// Hyperparameters of [`Sgd`]; `Default` matches `torch.optim.SGD`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate. Default `1e-3`.
    pub lr: f64,
    /// Momentum factor; 0 turns momentum off. Default `0`.
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer. Default `0`.
    pub dampening: f64,
    /// L2 penalty: `weight_decay * param` is added to the gradient. Default `0`.
    pub weight_decay: f64,
    /// Nesterov momentum; needs `momentum > 0` and `dampening == 0`. Default `false`.
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing it. Default `false`.
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

/// Stochastic gradient descent, optionally with momentum (PyTorch's `torch.optim.SGD`).
///
/// For each parameter `p` with gradient `g`:
///
/// ```text
/// g = -g if maximize
/// g = g + weight_decay * p                         if weight_decay != 0
/// if momentum != 0:
///     b = g                                        at the first step
///     b = momentum * b + (1 - dampening) * g       afterwards
///     g = g + momentum * b   if nesterov, else   g = b
/// p = p - lr * g
/// ```
#[doc(alias = "SGD")]
#[derive(Debug, Clone)]
pub struct Sgd<T: Element> {
    core: Core<T, SgdConfig, SgdState<T>>,
}

group_constructors!(
    Sgd,
    SgdConfig,
    "SGD",
    errors: [
        "[`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if",
        "`params` is empty or holds a parameter twice, a hyperparameter is negative, or",
        "`nesterov` is set without `momentum > 0` and `dampening == 0`.",
    ]
);

impl<T: Element> Optimizer<T> for Sgd<T> {
    fn step(&mut self) -> Result<()> {
        self.core.step(sgd_update)
    }

    forward_core!();
}

impl GroupConfig for SgdConfig {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        check_non_negative("SGD", "lr", self.lr)?;
        check_non_negative("SGD", "momentum", self.momentum)?;
        check_non_negative("SGD", "dampening", self.dampening)?;
        check_non_negative("SGD", "weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                "SGD",
                "nesterov",
                true,
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(())
    }

    config_pairs!(lr, momentum, dampening, weight_decay, nesterov, maximize);
}

/// Per-parameter state: the momentum buffer (only with momentum).
#[derive(Debug, Clone)]
struct SgdState<T> {
    momentum_buffer: Vec<T>,
}

impl<T: Element> ParamState<T> for SgdState<T> {
    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["momentum_buffer"]
    }

    fn buffer(&self, _name: &str) -> &[T] {
        &self.momentum_buffer
    }

    fn step_count(&self) -> Option<u64> {
        None
    }

    fn from_saved(
        buffers: &mut BTreeMap<&'static str, Vec<T>>,
        _step: Option<u64>,
    ) -> std::result::Result<Self, String> {
        let momentum_buffer = buffers
            .remove("momentum_buffer")
            .ok_or("momentum_buffer is missing")?;
        Ok(Self { momentum_buffer })
    }

    fn all_buffer_names() -> &'static [&'static str] {
        &["momentum_buffer"]
    }
}

/// One SGD step of one parameter, in a single pass over its elements.
fn sgd_update<T: Element>(c: &SgdConfig, p: &mut [T], g: &[T], state: &mut Option<SgdState<T>>) {
    let neg_lr = T::from_f64(-c.lr);
    let decay = c.weight_decay != 0.0;
    let l2 = T::from_f64(c.weight_decay);
    let prepare = |w: T, grad: T| {
        let grad = if c.maximize { -grad } else { grad };
        if decay {
            grad + l2 * w
        } else {
            grad
        }
    };
    if c.momentum == 0.0 {
        for (w, &grad) in p.iter_mut().zip(g) {
            *w += neg_lr * prepare(*w, grad);
        }
        return;
    }

    let fresh = state.is_none();
    let st = state.get_or_insert_with(|| SgdState {
        momentum_buffer: vec![T::zero(); p.len()],
    });
    let momentum = T::from_f64(c.momentum);
    let keep = T::from_f64(1.0 - c.dampening);
    for ((w, &grad), b) in p.iter_mut().zip(g).zip(st.momentum_buffer.iter_mut()) {
        let grad = prepare(*w, grad);
        *b = if fresh {
            grad
        } else {
            *b * momentum + keep * grad
        };
        let dir = if c.nesterov { grad + momentum * *b } else { *b };
        *w += neg_lr * dir;
    }
}

#[cfg(test)]
mod tests {
    use strata_autograd::Var;
    use strata_tensor::Tensor;

    use super::*;
    use crate::ParamGroup;

    #[test]
    fn momentum_buffer_starts_as_the_gradient() {
        let w = Var::parameter(Tensor::from_vec(vec![0.0f64], &[1]).unwrap());
        let config = SgdConfig {
            lr: 1.0,
            momentum: 0.5,
            dampening: 0.5,
            ..Default::default()
        };
        let mut opt = Sgd::new(vec![w.clone()], config).unwrap();

        w.set_grad(Some(Tensor::ones(&[1])));
        opt.step().unwrap();
        let first = w.value().to_vec()[0];
        opt.step().unwrap();

        assert_eq!(first, -1.0);
        assert_eq!(w.value().to_vec()[0], -1.0 - (0.5 + 0.5));
    }

    #[test]
    fn group_learning_rates_are_set_one_by_one_or_all_at_once() {
        let a = Var::parameter(Tensor::<f32>::zeros(&[1]));
        let b = Var::parameter(Tensor::<f32>::zeros(&[2]));
        let groups = vec![
            ParamGroup::new(
                vec![a],
                SgdConfig {
                    lr: 0.1,
                    ..Default::default()
                },
            ),
            ParamGroup::new(
                vec![b],
                SgdConfig {
                    lr: 0.2,
                    ..Default::default()
                },
            ),
        ];
        let mut opt = Sgd::with_groups(groups).unwrap();

        opt.set_group_lr(1, 0.5).unwrap();
        assert_eq!((opt.lr(), opt.group_lr(1).unwrap()), (0.1, 0.5));
        opt.set_lr(0.3);
        assert_eq!(
            (opt.group_lr(0).unwrap(), opt.group_lr(1).unwrap()),
            (0.3, 0.3)
        );
        assert_eq!(opt.group_params(1).unwrap()[0].shape(), &[2]);

        let err = opt.set_group_lr(2, 0.1).unwrap_err();
        assert!(
            err.to_string().contains("group 2 out of range for 2"),
            "{err}"
        );
        assert!(opt.group_lr(5).is_err() && opt.group_params(5).is_err());
    }

    #[test]
    fn a_gradient_of_another_shape_is_an_error() {
        let w = Var::parameter(Tensor::<f32>::zeros(&[2]));
        let mut opt = Sgd::new(vec![w.clone()], SgdConfig::default()).unwrap();
        w.set_grad(Some(Tensor::zeros(&[3])));

        let err = opt.step().unwrap_err();

        assert!(
            matches!(err, crate::OptimError::GradShape { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn nesterov_needs_momentum() {
        let w = Var::parameter(Tensor::<f32>::zeros(&[1]));
        let config = SgdConfig {
            nesterov: true,
            ..Default::default()
        };

        assert!(Sgd::new(vec![w], config).is_err());
    }
}
