//! Learning-rate schedules (PyTorch's `torch.optim.lr_scheduler`), each a pure function of
//! the step, so a resumed run gets exactly the learning rates of an uninterrupted one.
//!
//! Steps count optimizer steps from 0: `lr(step)` is the learning rate for the `step`-th call
//! of [`Optimizer::step`], which is what PyTorch's scheduler gives after `step` calls of
//! `scheduler.step()` (the usual loop `optimizer.step(); scheduler.step()`). Each schedule is
//! the closed form of its PyTorch counterpart; PyTorch's chainable form multiplies step by
//! step and so differs in the last bits.

use std::f64::consts::PI;

use strata_tensor::Element;

use crate::error::{check_non_negative, invalid, Result};
use crate::optimizer::Optimizer;

/// A learning-rate schedule: the learning rate as a function of the optimizer step.
///
/// ```
/// use strata_optim::{LrScheduler, StepLr};
///
/// let sched = StepLr::new(0.1, 30, 0.1)?;
/// assert_eq!(sched.lr(29), 0.1);
/// assert!((sched.lr(30) - 0.01).abs() < 1e-15);
/// # Ok::<(), strata_optim::OptimError>(())
/// ```
pub trait LrScheduler {
    /// The learning rate for optimizer step `step` (0 for the first step).
    fn lr(&self, step: usize) -> f64;

    /// Sets the learning rate of every group of `optimizer` to `lr(step)` and returns it;
    /// call it before [`Optimizer::step`].
    ///
    /// Groups that should keep different learning rates (PyTorch schedules each group's own
    /// initial lr) can use a schedule built with base lr `1.0` as a factor instead:
    /// `optimizer.set_group_lr(g, base_lr[g] * schedule.lr(step))`.
    ///
    /// ```
    /// use strata_autograd::Var;
    /// use strata_optim::{LrScheduler, Optimizer, Sgd, SgdConfig, WarmupCosineLr};
    /// use strata_tensor::Tensor;
    ///
    /// let w = Var::parameter(Tensor::<f32>::zeros(&[3]));
    /// let mut opt = Sgd::new(vec![w], SgdConfig::default())?;
    /// let sched = WarmupCosineLr::new(6e-4, 6e-5, 10, 100)?;
    /// for step in 0..3 {
    ///     sched.apply(&mut opt, step);
    ///     opt.step()?;
    /// }
    /// assert_eq!(opt.lr(), 6e-4 * 3.0 / 11.0);
    /// # Ok::<(), strata_optim::OptimError>(())
    /// ```
    fn apply<T: Element, O: Optimizer<T> + ?Sized>(&self, optimizer: &mut O, step: usize) -> f64
    where
        Self: Sized,
    {
        let lr = self.lr(step);
        optimizer.set_lr(lr);
        lr
    }
}

/// Decays the learning rate by `gamma` every `step_size` steps (PyTorch's `StepLR`).
///
/// ```text
/// lr(t) = base_lr * gamma^floor(t / step_size)
/// ```
#[doc(alias = "StepLR")]
#[derive(Debug, Clone, PartialEq)]
pub struct StepLr {
    base_lr: f64,
    step_size: usize,
    gamma: f64,
}

impl StepLr {
    /// The schedule; PyTorch's default `gamma` is `0.1`.
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if
    /// `step_size` is 0 or `base_lr` is negative.
    pub fn new(base_lr: f64, step_size: usize, gamma: f64) -> Result<Self> {
        check_non_negative("StepLR", "lr", base_lr)?;
        if step_size == 0 {
            return Err(invalid("StepLR", "step_size", 0, "expected >= 1"));
        }
        Ok(Self {
            base_lr,
            step_size,
            gamma,
        })
    }
}

impl LrScheduler for StepLr {
    fn lr(&self, step: usize) -> f64 {
        self.base_lr * self.gamma.powf((step / self.step_size) as f64)
    }
}

/// Decays the learning rate by `gamma` at each milestone (PyTorch's `MultiStepLR`).
///
/// ```text
/// lr(t) = base_lr * gamma^(number of milestones <= t)
/// ```
///
/// A milestone listed twice counts twice, as in PyTorch.
#[doc(alias = "MultiStepLR")]
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStepLr {
    base_lr: f64,
    milestones: Vec<usize>,
    gamma: f64,
}

impl MultiStepLr {
    /// The schedule; milestones may come in any order. PyTorch's default `gamma` is `0.1`.
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if
    /// `base_lr` is negative.
    pub fn new(base_lr: f64, mut milestones: Vec<usize>, gamma: f64) -> Result<Self> {
        check_non_negative("MultiStepLR", "lr", base_lr)?;
        milestones.sort_unstable();
        Ok(Self {
            base_lr,
            milestones,
            gamma,
        })
    }
}

impl LrScheduler for MultiStepLr {
    fn lr(&self, step: usize) -> f64 {
        let passed = self.milestones.partition_point(|&m| m <= step);
        self.base_lr * self.gamma.powf(passed as f64)
    }
}

/// Decays the learning rate by `gamma` every step (PyTorch's `ExponentialLR`).
///
/// ```text
/// lr(t) = base_lr * gamma^t
/// ```
#[doc(alias = "ExponentialLR")]
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialLr {
    base_lr: f64,
    gamma: f64,
}

impl ExponentialLr {
    /// The schedule.
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if
    /// `base_lr` is negative.
    pub fn new(base_lr: f64, gamma: f64) -> Result<Self> {
        check_non_negative("ExponentialLR", "lr", base_lr)?;
        Ok(Self { base_lr, gamma })
    }
}

impl LrScheduler for ExponentialLr {
    fn lr(&self, step: usize) -> f64 {
        self.base_lr * self.gamma.powf(step as f64)
    }
}

/// Cosine annealing from `base_lr` down to `eta_min` over `t_max` steps (PyTorch's
/// `CosineAnnealingLR`, closed form, without restarts).
///
/// ```text
/// lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / t_max)) / 2
/// ```
///
/// Past `t_max` the cosine continues, so the learning rate rises again, as in PyTorch.
#[doc(alias = "CosineAnnealingLR")]
#[derive(Debug, Clone, PartialEq)]
pub struct CosineAnnealingLr {
    base_lr: f64,
    t_max: usize,
    eta_min: f64,
}

impl CosineAnnealingLr {
    /// The schedule; PyTorch's default `eta_min` is `0`.
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if
    /// `t_max` is 0 or `base_lr` is negative.
    pub fn new(base_lr: f64, t_max: usize, eta_min: f64) -> Result<Self> {
        check_non_negative("CosineAnnealingLR", "lr", base_lr)?;
        if t_max == 0 {
            return Err(invalid("CosineAnnealingLR", "T_max", 0, "expected >= 1"));
        }
        Ok(Self {
            base_lr,
            t_max,
            eta_min,
        })
    }
}

impl LrScheduler for CosineAnnealingLr {
    fn lr(&self, step: usize) -> f64 {
        let cos = (PI * step as f64 / self.t_max as f64).cos();
        self.eta_min + (self.base_lr - self.eta_min) * (1.0 + cos) / 2.0
    }
}

/// Linear warm-up, then cosine decay to a floor: the schedule of nanoGPT's `get_lr`.
///
/// ```text
/// lr(t) = lr * (t + 1) / (warmup_iters + 1)                 t < warmup_iters
/// lr(t) = min_lr                                            t > lr_decay_iters
/// lr(t) = min_lr + c * (lr - min_lr)                        otherwise, where
///         c = (1 + cos(pi * r)) / 2,  r = (t - warmup_iters) / (lr_decay_iters - warmup_iters)
/// ```
///
/// So the warm-up never starts from zero, the peak `lr` is reached at `t = warmup_iters`,
/// and `min_lr` at `t = lr_decay_iters`.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmupCosineLr {
    lr: f64,
    min_lr: f64,
    warmup_iters: usize,
    lr_decay_iters: usize,
}

impl WarmupCosineLr {
    /// The schedule with peak `lr`, floor `min_lr`, `warmup_iters` warm-up steps, and the
    /// decay ending at step `lr_decay_iters` (nanoGPT's names).
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if
    /// `lr_decay_iters <= warmup_iters`, or `lr` or `min_lr` is negative.
    pub fn new(lr: f64, min_lr: f64, warmup_iters: usize, lr_decay_iters: usize) -> Result<Self> {
        check_non_negative("WarmupCosineLr", "lr", lr)?;
        check_non_negative("WarmupCosineLr", "min_lr", min_lr)?;
        if lr_decay_iters <= warmup_iters {
            return Err(invalid(
                "WarmupCosineLr",
                "lr_decay_iters",
                lr_decay_iters,
                "expected more than warmup_iters",
            ));
        }
        Ok(Self {
            lr,
            min_lr,
            warmup_iters,
            lr_decay_iters,
        })
    }
}

impl LrScheduler for WarmupCosineLr {
    fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_iters {
            return self.lr * (step + 1) as f64 / (self.warmup_iters + 1) as f64;
        }
        if step > self.lr_decay_iters {
            return self.min_lr;
        }
        let decay_ratio =
            (step - self.warmup_iters) as f64 / (self.lr_decay_iters - self.warmup_iters) as f64;
        let coeff = 0.5 * (1.0 + (PI * decay_ratio).cos());
        self.min_lr + coeff * (self.lr - self.min_lr)
    }
}

/// Options of [`OneCycleLr`]; `Default` matches PyTorch's `OneCycleLR`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneCycleLrConfig {
    /// Fraction of the steps spent raising the learning rate. Default `0.3`.
    pub pct_start: f64,
    /// The starting learning rate is `max_lr / div_factor`. Default `25`.
    pub div_factor: f64,
    /// The final learning rate is `max_lr / div_factor / final_div_factor`. Default `1e4`.
    pub final_div_factor: f64,
}

impl Default for OneCycleLrConfig {
    fn default() -> Self {
        Self {
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }
}

/// The 1cycle policy (Smith and Topin) with cosine annealing, two phases (PyTorch's
/// `OneCycleLR` with `anneal_strategy="cos"`, `three_phase=False`).
///
/// ```text
/// initial = max_lr / div_factor,  final = initial / final_div_factor
/// e1 = pct_start * total_steps - 1,  e2 = total_steps - 1
/// cos_anneal(a, b, x) = b + (a - b) / 2 * (1 + cos(pi * x))
/// lr(t) = cos_anneal(initial, max_lr, t / e1)                t <= e1
/// lr(t) = cos_anneal(max_lr, final, (t - e1) / (e2 - e1))    otherwise
/// ```
///
/// # Limitations
/// Momentum is not cycled (PyTorch's `cycle_momentum`); the optimizer's momentum or betas
/// stay as configured. Steps past `total_steps - 1` get the final learning rate, where
/// PyTorch raises an error.
#[doc(alias = "OneCycleLR")]
#[derive(Debug, Clone, PartialEq)]
pub struct OneCycleLr {
    max_lr: f64,
    initial_lr: f64,
    min_lr: f64,
    warmup_end: f64,
    total_steps: usize,
}

impl OneCycleLr {
    /// The schedule peaking at `max_lr`, over `total_steps` steps.
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if
    /// `total_steps` is 0, `pct_start` is outside `[0, 1]`, `pct_start * total_steps` is
    /// exactly 1 (a warm-up of length zero: PyTorch divides by zero), or `max_lr` is
    /// negative.
    pub fn new(max_lr: f64, total_steps: usize, config: OneCycleLrConfig) -> Result<Self> {
        let op = "OneCycleLR";
        check_non_negative(op, "max_lr", max_lr)?;
        if total_steps == 0 {
            return Err(invalid(op, "total_steps", 0, "expected >= 1"));
        }
        if !(0.0..=1.0).contains(&config.pct_start) {
            return Err(invalid(
                op,
                "pct_start",
                config.pct_start,
                "expected 0 <= value <= 1",
            ));
        }
        let warmup_end = config.pct_start * total_steps as f64 - 1.0;
        if warmup_end == 0.0 {
            return Err(invalid(
                op,
                "pct_start",
                config.pct_start,
                "pct_start * total_steps must not be 1",
            ));
        }
        let initial_lr = max_lr / config.div_factor;
        let min_lr = initial_lr / config.final_div_factor;
        Ok(Self {
            max_lr,
            initial_lr,
            min_lr,
            warmup_end,
            total_steps,
        })
    }
}

impl LrScheduler for OneCycleLr {
    fn lr(&self, step: usize) -> f64 {
        let last = (self.total_steps - 1) as f64;
        let step = (step as f64).min(last);
        if step <= self.warmup_end {
            annealing_cos(self.initial_lr, self.max_lr, step / self.warmup_end)
        } else {
            let pct = (step - self.warmup_end) / (last - self.warmup_end);
            annealing_cos(self.max_lr, self.min_lr, pct)
        }
    }
}

/// PyTorch's `OneCycleLR._annealing_cos`: cosine from `start` to `end` as `pct` goes 0 to 1.
fn annealing_cos(start: f64, end: f64, pct: f64) -> f64 {
    let cos_out = (PI * pct).cos() + 1.0;
    end + (start - end) / 2.0 * cos_out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_cosine_matches_nanogpt_at_the_corners() {
        let s = WarmupCosineLr::new(1.0, 0.1, 4, 14).unwrap();

        assert_eq!(s.lr(0), 1.0 / 5.0);
        assert_eq!(s.lr(3), 4.0 / 5.0);
        assert_eq!(s.lr(4), 1.0);
        assert!((s.lr(9) - 0.55).abs() < 1e-15);
        assert!((s.lr(14) - 0.1).abs() < 1e-15);
        assert_eq!(s.lr(15), 0.1);
        assert_eq!(s.lr(1_000_000), 0.1);
    }

    #[test]
    fn one_cycle_starts_peaks_and_ends_where_documented() {
        let s = OneCycleLr::new(1.0, 100, OneCycleLrConfig::default()).unwrap();

        assert!((s.lr(0) - 1.0 / 25.0).abs() < 1e-15);
        assert!((s.lr(29) - 1.0).abs() < 1e-15);
        assert!((s.lr(99) - 1.0 / 25.0 / 1e4).abs() < 1e-15);
        assert_eq!(s.lr(500), s.lr(99));
    }

    #[test]
    fn multistep_counts_milestones_in_any_order() {
        let s = MultiStepLr::new(1.0, vec![6, 2, 6], 0.5).unwrap();

        let lrs: Vec<f64> = (0..8).map(|t| s.lr(t)).collect();

        assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.125, 0.125]);
    }

    #[test]
    fn degenerate_schedules_are_rejected() {
        assert!(StepLr::new(0.1, 0, 0.1).is_err());
        assert!(CosineAnnealingLr::new(0.1, 0, 0.0).is_err());
        assert!(WarmupCosineLr::new(0.1, 0.0, 10, 10).is_err());
        let one = OneCycleLrConfig {
            pct_start: 0.1,
            ..Default::default()
        };
        assert!(OneCycleLr::new(0.1, 10, one).is_err());
        assert!(OneCycleLr::new(0.1, 0, OneCycleLrConfig::default()).is_err());
    }
}
