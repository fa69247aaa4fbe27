//! RMSprop (PyTorch's `torch.optim.RMSprop`), plain or centered, with optional momentum.

use std::collections::BTreeMap;

use strata_tensor::Element;

use crate::error::{check_non_negative, Result};
use crate::optimizer::{
    config_pairs, forward_core, group_constructors, lerp, Core, GroupConfig, Optimizer, ParamState,
};

/// Hyperparameters of [`RmsProp`]; `Default` matches `torch.optim.RMSprop`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate. Default `1e-2`.
    pub lr: f64,
    /// Smoothing constant of the running average of squared gradients. Default `0.99`.
    pub alpha: f64,
    /// Added to the denominator for numerical stability. Default `1e-8`.
    pub eps: f64,
    /// L2 penalty: `weight_decay * param` is added to the gradient. Default `0`.
    pub weight_decay: f64,
    /// Momentum factor; 0 turns momentum off. Default `0`.
    pub momentum: f64,
    /// Normalize by an estimate of the gradient's variance instead of its second moment.
    /// Default `false`.
    pub centered: bool,
    /// Maximize the objective instead of minimizing it. Default `false`.
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// RMSprop (Hinton), as PyTorch's `torch.optim.RMSprop`.
///
/// For each parameter `p` with gradient `g`:
///
/// ```text
/// g   = -g if maximize
/// g   = g + weight_decay * p                          if weight_decay != 0
/// v   = alpha * v + (1 - alpha) * g * g
/// avg = sqrt(v - a * a) + eps, where a = lerp(a, g, 1 - alpha)    if centered
/// avg = sqrt(v) + eps                                 otherwise
/// b   = momentum * b + g / avg;  p = p - lr * b       if momentum > 0
/// p   = p - lr * g / avg                              otherwise
/// ```
///
/// `v`, `a` and `b` start at zero.
#[doc(alias = "RMSprop")]
#[derive(Debug, Clone)]
pub struct RmsProp<T: Element> {
    core: Core<T, RmsPropConfig, RmsPropState<T>>,
}

group_constructors!(
    RmsProp,
    RmsPropConfig,
    "RMSprop",
    errors: [
        "[`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if",
        "`params` is empty or holds a parameter twice, or a hyperparameter is negative.",
    ]
);

impl<T: Element> Optimizer<T> for RmsProp<T> {
    fn step(&mut self) -> Result<()> {
        self.core.step(rmsprop_update)
    }

    forward_core!();
}

impl GroupConfig for RmsPropConfig {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        check_non_negative("RMSprop", "lr", self.lr)?;
        check_non_negative("RMSprop", "eps", self.eps)?;
        check_non_negative("RMSprop", "momentum", self.momentum)?;
        check_non_negative("RMSprop", "weight_decay", self.weight_decay)?;
        check_non_negative("RMSprop", "alpha", self.alpha)
    }

    config_pairs!(lr, alpha, eps, weight_decay, momentum, centered, maximize);
}

/// Per-parameter state: step count, squared-gradient average, and the gradient average and
/// momentum buffer when those options are on.
#[derive(Debug, Clone)]
struct RmsPropState<T> {
    step: u64,
    square_avg: Vec<T>,
    momentum_buffer: Option<Vec<T>>,
    grad_avg: Option<Vec<T>>,
}

impl<T: Element> ParamState<T> for RmsPropState<T> {
    fn buffer_names(&self) -> Vec<&'static str> {
        let mut names = vec!["square_avg"];
        if self.momentum_buffer.is_some() {
            names.push("momentum_buffer");
        }
        if self.grad_avg.is_some() {
            names.push("grad_avg");
        }
        names
    }

    fn buffer(&self, name: &str) -> &[T] {
        match name {
            "square_avg" => &self.square_avg,
            "momentum_buffer" => self.momentum_buffer.as_deref().expect("bug: listed buffer"),
            _ => self.grad_avg.as_deref().expect("bug: listed buffer"),
        }
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
            square_avg: buffers
                .remove("square_avg")
                .ok_or("square_avg is missing")?,
            momentum_buffer: buffers.remove("momentum_buffer"),
            grad_avg: buffers.remove("grad_avg"),
        })
    }

    fn all_buffer_names() -> &'static [&'static str] {
        &["square_avg", "momentum_buffer", "grad_avg"]
    }
}

/// One RMSprop step of one parameter, in a single pass over its elements.
fn rmsprop_update<T: Element>(
    c: &RmsPropConfig,
    p: &mut [T],
    g: &[T],
    state: &mut Option<RmsPropState<T>>,
) {
    let n = p.len();
    let st = state.get_or_insert_with(|| RmsPropState {
        step: 0,
        square_avg: vec![T::zero(); n],
        momentum_buffer: None,
        grad_avg: None,
    });
    if c.momentum > 0.0 && st.momentum_buffer.is_none() {
        st.momentum_buffer = Some(vec![T::zero(); n]);
    }
    if c.centered && st.grad_avg.is_none() {
        st.grad_avg = Some(vec![T::zero(); n]);
    }
    st.step += 1;

    let k = Kernel {
        maximize: c.maximize,
        decay: c.weight_decay != 0.0,
        l2: T::from_f64(c.weight_decay),
        alpha: T::from_f64(c.alpha),
        weight: T::from_f64(1.0 - c.alpha),
        one_minus_weight: T::one() - T::from_f64(1.0 - c.alpha),
        eps: T::from_f64(c.eps),
        momentum: T::from_f64(c.momentum),
        neg_lr: T::from_f64(-c.lr),
    };
    let sq = &mut st.square_avg[..];
    // Buffers left from another configuration (after loading a state) are ignored, as in
    // PyTorch, which looks only at `centered` and `momentum`.
    let ga = st.grad_avg.as_deref_mut().filter(|_| c.centered);
    let buf = st
        .momentum_buffer
        .as_deref_mut()
        .filter(|_| c.momentum > 0.0);
    match (ga, buf) {
        (None, None) => k.run::<false, false>(p, g, sq, &mut [], &mut []),
        (Some(ga), None) => k.run::<true, false>(p, g, sq, ga, &mut []),
        (None, Some(buf)) => k.run::<false, true>(p, g, sq, &mut [], buf),
        (Some(ga), Some(buf)) => k.run::<true, true>(p, g, sq, ga, buf),
    }
}

/// The per-element constants of one RMSprop step, rounded to the element type.
struct Kernel<T> {
    maximize: bool,
    decay: bool,
    l2: T,
    alpha: T,
    weight: T,
    one_minus_weight: T,
    eps: T,
    momentum: T,
    neg_lr: T,
}

impl<T: Element> Kernel<T> {
    /// The update over matching slices; `ga` and `buf` are used (and must have the
    /// parameter's length) only when `CENTERED` and `MOMENTUM` are set. One instance per
    /// variant keeps the loop free of per-element branches on the options.
    fn run<const CENTERED: bool, const MOMENTUM: bool>(
        &self,
        p: &mut [T],
        g: &[T],
        sq: &mut [T],
        ga: &mut [T],
        buf: &mut [T],
    ) {
        let n = p.len();
        assert!(
            g.len() == n
                && sq.len() == n
                && (!CENTERED || ga.len() == n)
                && (!MOMENTUM || buf.len() == n),
            "bug: RMSprop buffers have the parameter's length"
        );
        for i in 0..n {
            let mut grad = if self.maximize { -g[i] } else { g[i] };
            if self.decay {
                grad += self.l2 * p[i];
            }
            let v = sq[i] * self.alpha + self.weight * grad * grad;
            sq[i] = v;
            let avg = if CENTERED {
                let a = lerp(ga[i], grad, self.weight, self.one_minus_weight);
                ga[i] = a;
                // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
                (v + -T::one() * a * a).sqrt()
            } else {
                v.sqrt()
            } + self.eps;
            if MOMENTUM {
                // buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
                let b = buf[i] * self.momentum + T::one() * grad / avg;
                buf[i] = b;
                p[i] += self.neg_lr * b;
            } else {
                p[i] += self.neg_lr * grad / avg;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_autograd::Var;
    use strata_tensor::Tensor;

    use super::*;

    #[test]
    fn first_step_divides_by_the_scaled_gradient() {
        // v = (1 - alpha) g^2, so the step is lr * g / (sqrt(1 - alpha) |g| + eps).
        let w = Var::parameter(Tensor::from_vec(vec![0.0f64], &[1]).unwrap());
        let mut opt = RmsProp::new(vec![w.clone()], RmsPropConfig::default()).unwrap();
        w.set_grad(Some(Tensor::from_vec(vec![2.0], &[1]).unwrap()));

        opt.step().unwrap();

        let want = -1e-2 * 2.0 / (0.01f64.sqrt() * 2.0 + 1e-8);
        assert!((w.value().to_vec()[0] - want).abs() < 1e-12);
    }
}
