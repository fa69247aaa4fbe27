//! Adam and AdamW (PyTorch's `torch.optim.Adam` and `torch.optim.AdamW`), sharing one fused
//! update that follows PyTorch's single-tensor implementation operation for operation.

use std::collections::BTreeMap;

use rayon::prelude::*;
use strata_autograd::Var;
use strata_tensor::parallel::{CHUNK, PAR_THRESHOLD};
use strata_tensor::Element;

use crate::error::{check_non_negative, check_unit, Result};
use crate::optimizer::{
    config_pairs, forward_core, group_constructors, lerp, maximum, single_group, Core, GroupConfig,
    Optimizer, ParamGroup, ParamState,
};

/// Hyperparameters of [`Adam`]; `Default` matches `torch.optim.Adam`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate. Default `1e-3`.
    pub lr: f64,
    /// Decay rates `(beta1, beta2)` of the first and second moment estimates, each in
    /// `[0, 1)`. Default `(0.9, 0.999)`.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability. Default `1e-8`.
    pub eps: f64,
    /// L2 penalty: `weight_decay * param` is added to the gradient. Default `0`.
    pub weight_decay: f64,
    /// Use the running maximum of the second moment (AMSGrad). Default `false`.
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it. Default `false`.
    pub maximize: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// Hyperparameters of [`AdamW`]; `Default` matches `torch.optim.AdamW`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate. Default `1e-3`.
    pub lr: f64,
    /// Decay rates `(beta1, beta2)` of the first and second moment estimates, each in
    /// `[0, 1)`. Default `(0.9, 0.999)`.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability. Default `1e-8`.
    pub eps: f64,
    /// Decoupled weight decay: each step first scales the parameter by
    /// `1 - lr * weight_decay`. Default `1e-2`.
    pub weight_decay: f64,
    /// Use the running maximum of the second moment (AMSGrad). Default `false`.
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it. Default `false`.
    pub maximize: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// The Adam optimizer (Kingma and Ba), with L2 weight decay (PyTorch's `torch.optim.Adam`).
///
/// For each parameter `p` with gradient `g`, at step `t = 1, 2, ...`:
///
/// ```text
/// g  = -g if maximize
/// g  = g + weight_decay * p                            if weight_decay != 0
/// m  = lerp(m, g, 1 - beta1)                           (m = beta1 m + (1 - beta1) g)
/// v  = beta2 * v + (1 - beta2) * g * g
/// v_max = max(v_max, v)                                if amsgrad (used in place of v below)
/// step_size = lr / (1 - beta1^t)
/// denom = sqrt(v) / sqrt(1 - beta2^t) + eps
/// p  = p - step_size * m / denom
/// ```
///
/// `m`, `v` (and `v_max`) start at zero. Scalars are computed in `f64` and rounded to the
/// element type once, tensor arithmetic runs in the element type, in PyTorch's order, over
/// each parameter in one pass.
#[derive(Debug, Clone)]
pub struct Adam<T: Element> {
    core: Core<T, AdamConfig, AdamState<T>>,
}

/// The AdamW optimizer (Loshchilov and Hutter), Adam with decoupled weight decay (PyTorch's
/// `torch.optim.AdamW`).
///
/// As [`Adam`], except that weight decay does not touch the gradient; each step first does
///
/// ```text
/// p = p * (1 - lr * weight_decay)
/// ```
///
/// ```
/// use strata_autograd::Var;
/// use strata_optim::{AdamW, AdamWConfig, Optimizer};
/// use strata_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::from_vec(vec![1.0f32, -2.0], &[2])?);
/// let mut opt = AdamW::new(vec![w.clone()], AdamWConfig { lr: 0.1, ..Default::default() })?;
/// for _ in 0..3 {
///     opt.zero_grad();
///     w.mul(&w)?.sum_all().backward()?;
///     opt.step()?;
/// }
/// assert!(w.value().to_vec()[0] < 0.75);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AdamW<T: Element> {
    core: Core<T, AdamWConfig, AdamState<T>>,
}

group_constructors!(
    Adam,
    AdamConfig,
    "Adam",
    errors: [
        "[`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if",
        "`params` is empty or holds a parameter twice, or a hyperparameter is out of range",
        "(negative `lr`, `eps` or `weight_decay`, a beta outside `[0, 1)`).",
    ]
);

group_constructors!(
    AdamW,
    AdamWConfig,
    "AdamW",
    errors: [
        "[`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) if",
        "`params` is empty or holds a parameter twice, or a hyperparameter is out of range",
        "(negative `lr`, `eps` or `weight_decay`, a beta outside `[0, 1)`).",
    ],
    note: [
        "A GPT typically decays matrices and not biases or norms: two groups differing in",
        "`weight_decay`, as [`AdamW::decay_matrices_only`] builds them.",
    ]
);

impl<T: Element> AdamW<T> {
    /// AdamW that decays only parameters of two or more dimensions (weight matrices,
    /// embeddings), not biases or normalization gains: nanoGPT's `configure_optimizers`.
    ///
    /// Group 0 holds the parameters with `ndim >= 2` and `config`; group 1 the others, with
    /// `weight_decay = 0`. Both groups exist even when one is empty, so the layout of the
    /// saved state does not depend on the model.
    ///
    /// # Errors
    /// As [`AdamW::new`].
    pub fn decay_matrices_only(params: Vec<Var<T>>, config: AdamWConfig) -> Result<Self> {
        let (decay, no_decay): (Vec<_>, Vec<_>) = params.into_iter().partition(|p| p.ndim() >= 2);
        if decay.is_empty() && no_decay.is_empty() {
            single_group::<T, _>("AdamW", Vec::new(), config)?;
        }
        let plain = AdamWConfig {
            weight_decay: 0.0,
            ..config
        };
        Self::with_groups(vec![
            ParamGroup::new(decay, config),
            ParamGroup::new(no_decay, plain),
        ])
    }
}

impl<T: Element> Optimizer<T> for Adam<T> {
    fn step(&mut self) -> Result<()> {
        self.core.step(|c, p, g, state| {
            let h = Hyper {
                lr: c.lr,
                betas: c.betas,
                eps: c.eps,
                weight_decay: c.weight_decay,
                decoupled: false,
                amsgrad: c.amsgrad,
                maximize: c.maximize,
            };
            adam_update(&h, p, g, state);
        })
    }

    forward_core!();
}

impl<T: Element> Optimizer<T> for AdamW<T> {
    fn step(&mut self) -> Result<()> {
        self.core.step(|c, p, g, state| {
            let h = Hyper {
                lr: c.lr,
                betas: c.betas,
                eps: c.eps,
                weight_decay: c.weight_decay,
                decoupled: true,
                amsgrad: c.amsgrad,
                maximize: c.maximize,
            };
            adam_update(&h, p, g, state);
        })
    }

    forward_core!();
}

fn validate(op: &'static str, lr: f64, betas: (f64, f64), eps: f64, wd: f64) -> Result<()> {
    check_non_negative(op, "lr", lr)?;
    check_non_negative(op, "eps", eps)?;
    check_unit(op, "betas[0]", betas.0)?;
    check_unit(op, "betas[1]", betas.1)?;
    check_non_negative(op, "weight_decay", wd)
}

impl GroupConfig for AdamConfig {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        validate("Adam", self.lr, self.betas, self.eps, self.weight_decay)
    }

    config_pairs!(lr, betas, eps, weight_decay, amsgrad, maximize);
}

impl GroupConfig for AdamWConfig {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        validate("AdamW", self.lr, self.betas, self.eps, self.weight_decay)
    }

    config_pairs!(lr, betas, eps, weight_decay, amsgrad, maximize);
}

/// Per-parameter state: step count and moment estimates.
#[derive(Debug, Clone)]
struct AdamState<T> {
    step: u64,
    exp_avg: Vec<T>,
    exp_avg_sq: Vec<T>,
    max_exp_avg_sq: Option<Vec<T>>,
}

impl<T: Element> ParamState<T> for AdamState<T> {
    fn buffer_names(&self) -> Vec<&'static str> {
        let mut names = vec!["exp_avg", "exp_avg_sq"];
        if self.max_exp_avg_sq.is_some() {
            names.push("max_exp_avg_sq");
        }
        names
    }

    fn buffer(&self, name: &str) -> &[T] {
        match name {
            "exp_avg" => &self.exp_avg,
            "exp_avg_sq" => &self.exp_avg_sq,
            _ => self
                .max_exp_avg_sq
                .as_deref()
                .expect("bug: listed buffer exists"),
        }
    }

    fn step_count(&self) -> Option<u64> {
        Some(self.step)
    }

    fn from_saved(
        buffers: &mut BTreeMap<&'static str, Vec<T>>,
        step: Option<u64>,
    ) -> std::result::Result<Self, String> {
        let missing = |what: &str| format!("{what} is missing");
        Ok(Self {
            step: step.ok_or_else(|| missing("step"))?,
            exp_avg: buffers
                .remove("exp_avg")
                .ok_or_else(|| missing("exp_avg"))?,
            exp_avg_sq: buffers
                .remove("exp_avg_sq")
                .ok_or_else(|| missing("exp_avg_sq"))?,
            max_exp_avg_sq: buffers.remove("max_exp_avg_sq"),
        })
    }

    fn all_buffer_names() -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    }
}

/// The hyperparameters one update needs, for both optimizers.
struct Hyper {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    amsgrad: bool,
    maximize: bool,
}

/// One Adam or AdamW step of one parameter, in a single pass over its elements.
fn adam_update<T: Element>(h: &Hyper, p: &mut [T], g: &[T], state: &mut Option<AdamState<T>>) {
    let n = p.len();
    let st = state.get_or_insert_with(|| AdamState {
        step: 0,
        exp_avg: vec![T::zero(); n],
        exp_avg_sq: vec![T::zero(); n],
        max_exp_avg_sq: None,
    });
    if h.amsgrad && st.max_exp_avg_sq.is_none() {
        st.max_exp_avg_sq = Some(vec![T::zero(); n]);
    }
    st.step += 1;

    let (beta1, beta2) = h.betas;
    let t = st.step as f64;
    let bias_correction1 = 1.0 - beta1.powf(t);
    let bias_correction2 = 1.0 - beta2.powf(t);
    let neg_step_size = T::from_f64(-(h.lr / bias_correction1));
    let bias_correction2_sqrt = T::from_f64(bias_correction2.powf(0.5));
    let weight1 = T::from_f64(1.0 - beta1);
    let one_minus_weight1 = T::one() - weight1;
    let weight2 = T::from_f64(1.0 - beta2);
    let beta2 = T::from_f64(beta2);
    let eps = T::from_f64(h.eps);

    let k = Kernel {
        maximize: h.maximize,
        decay: h.weight_decay != 0.0,
        decoupled: h.decoupled,
        l2: T::from_f64(h.weight_decay),
        shrink: T::from_f64(1.0 - h.lr * h.weight_decay),
        weight1,
        one_minus_weight1,
        beta2,
        weight2,
        bias_correction2_sqrt,
        eps,
        neg_step_size,
    };
    let (m, v) = (&mut st.exp_avg[..], &mut st.exp_avg_sq[..]);
    let parallel = n >= PAR_THRESHOLD && rayon::current_num_threads() > 1;
    // A maximum left from an AMSGrad configuration is ignored without AMSGrad, as in PyTorch.
    let max_sq = st.max_exp_avg_sq.as_deref_mut().filter(|_| h.amsgrad);
    match (max_sq, parallel) {
        (None, false) => k.run(p, g, m, v),
        (Some(mx), false) => k.run_amsgrad(p, g, m, v, mx),
        // Elements are independent, so fixed chunks on any threads give the same bits.
        (None, true) => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| k.run(p, g, m, v)),
        (Some(mx), true) => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(mx.par_chunks_mut(CHUNK))
            .for_each(|((((p, g), m), v), mx)| k.run_amsgrad(p, g, m, v, mx)),
    }
}

/// The per-element constants of one Adam step, rounded to the element type.
struct Kernel<T> {
    maximize: bool,
    decay: bool,
    decoupled: bool,
    l2: T,
    shrink: T,
    weight1: T,
    one_minus_weight1: T,
    beta2: T,
    weight2: T,
    bias_correction2_sqrt: T,
    eps: T,
    neg_step_size: T,
}

impl<T: Element> Kernel<T> {
    /// The update over matching slices, without AMSGrad.
    fn run(&self, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) {
        // One loop per variant rather than a branch per element, so that each vectorizes.
        for (((w, &grad), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
            self.moments(w, grad, m, v);
            self.finish(w, *m, *v);
        }
    }

    /// The update over matching slices, with AMSGrad's running maximum `mx`.
    fn run_amsgrad(&self, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], mx: &mut [T]) {
        for ((((w, &grad), m), v), mx) in p.iter_mut().zip(g).zip(m).zip(v).zip(mx) {
            self.moments(w, grad, m, v);
            *mx = maximum(*mx, *v);
            self.finish(w, *m, *mx);
        }
    }

    /// Weight decay and the moment updates of one element.
    #[inline(always)]
    fn moments(&self, w: &mut T, grad: T, m: &mut T, v: &mut T) {
        let mut grad = if self.maximize { -grad } else { grad };
        if self.decay {
            if self.decoupled {
                *w *= self.shrink;
            } else {
                grad += self.l2 * *w;
            }
        }
        *m = lerp(*m, grad, self.weight1, self.one_minus_weight1);
        *v = *v * self.beta2 + self.weight2 * grad * grad;
    }

    /// The parameter update of one element from its first and (maximal) second moment.
    #[inline(always)]
    fn finish(&self, w: &mut T, m: T, second: T) {
        let denom = second.sqrt() / self.bias_correction2_sqrt + self.eps;
        *w += self.neg_step_size * m / denom;
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::Tensor;

    use super::*;

    fn param(values: &[f64]) -> Var<f64> {
        Var::parameter(Tensor::from_vec(values.to_vec(), &[values.len()]).unwrap())
    }

    #[test]
    fn first_adam_step_moves_each_element_by_lr() {
        // At t = 1, m / sqrt(v) = sign(g) after bias correction, so the step is lr (minus eps).
        let w = param(&[1.0, -2.0, 3.0]);
        let mut opt = Adam::new(
            vec![w.clone()],
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        w.set_grad(Some(Tensor::from_vec(vec![0.5, -4.0, 1e-3], &[3]).unwrap()));

        opt.step().unwrap();

        let got = w.value().to_vec();
        for (g, want) in got.iter().zip([0.9, -1.9, 2.9]) {
            assert!((g - want).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn adamw_decays_without_gradient_contribution() {
        // A zero gradient leaves m = v = 0, so only the decoupled decay acts.
        let w = param(&[2.0]);
        let config = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![w.clone()], config).unwrap();
        w.set_grad(Some(Tensor::zeros(&[1])));

        opt.step().unwrap();

        assert_eq!(w.value().to_vec(), vec![2.0 * (1.0 - 0.05)]);
    }

    #[test]
    fn parameters_without_gradient_are_skipped() {
        let a = param(&[1.0]);
        let b = param(&[1.0]);
        let mut opt = Adam::new(vec![a.clone(), b.clone()], AdamConfig::default()).unwrap();
        a.set_grad(Some(Tensor::ones(&[1])));

        opt.step().unwrap();

        assert_ne!(a.value().to_vec(), vec![1.0]);
        assert_eq!(b.value().to_vec(), vec![1.0]);
        assert!(!opt.state_dict().tensors.contains_key("state.1.exp_avg"));
    }

    #[test]
    fn chunked_parallel_update_equals_the_serial_one() {
        // A parameter above the parallel threshold is updated in chunks on rayon's threads;
        // its first elements must match the same elements updated serially in a small one.
        let mut gen = strata_tensor::Generator::new(3);
        let n = PAR_THRESHOLD + 1000;
        let values: Tensor<f32> = gen.randn(&[n]);
        let grads: Tensor<f32> = gen.randn(&[n]);
        let big = Var::parameter(values.clone());
        let small = Var::parameter(values.narrow(0, 0, 100).unwrap().contiguous());
        let config = AdamWConfig {
            lr: 0.1,
            amsgrad: true,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![big.clone(), small.clone()], config).unwrap();

        for _ in 0..3 {
            big.set_grad(Some(grads.clone()));
            small.set_grad(Some(grads.narrow(0, 0, 100).unwrap().contiguous()));
            opt.step().unwrap();
        }

        assert_eq!(big.value().to_vec()[..100], small.value().to_vec()[..]);
    }

    #[test]
    fn decay_matrices_only_splits_by_rank() {
        let matrix = Var::parameter(Tensor::<f32>::zeros(&[2, 3]));
        let bias = Var::parameter(Tensor::<f32>::zeros(&[3]));
        let config = AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        };

        let opt = AdamW::decay_matrices_only(vec![bias.clone(), matrix.clone()], config).unwrap();

        let groups = opt.param_groups();
        assert!(groups[0].params[0].same_as(&matrix) && groups[0].params.len() == 1);
        assert!(groups[1].params[0].same_as(&bias) && groups[1].params.len() == 1);
        assert_eq!(
            (groups[0].config.weight_decay, groups[1].config.weight_decay),
            (0.1, 0.0)
        );
        assert!(AdamW::<f32>::decay_matrices_only(Vec::new(), config).is_err());
    }

    #[test]
    fn invalid_betas_are_rejected() {
        let config = AdamConfig {
            betas: (0.9, 1.0),
            ..Default::default()
        };

        let err = Adam::new(vec![param(&[1.0])], config).unwrap_err();

        assert!(err.to_string().contains("betas[1]"), "{err}");
    }

    #[test]
    fn empty_parameter_list_is_rejected() {
        assert!(AdamW::<f32>::new(Vec::new(), AdamWConfig::default()).is_err());
    }

    #[test]
    fn a_parameter_in_two_groups_is_rejected() {
        let w = param(&[1.0]);
        let groups = vec![
            ParamGroup::new(vec![w.clone()], AdamConfig::default()),
            ParamGroup::new(vec![w], AdamConfig::default()),
        ];

        assert!(Adam::with_groups(groups).is_err());
    }
}
