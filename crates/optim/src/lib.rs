//! Optimizers, learning-rate schedules and gradient clipping over `strata-autograd`, after
//! PyTorch's `torch.optim`.
//!
//! An optimizer sees parameters ([`Var`](strata_autograd::Var)s), never modules: build it
//! from `module.parameters()` or from several [`ParamGroup`]s with their own
//! hyperparameters. Every update follows PyTorch's single-tensor (`foreach=False`) formulas in
//! their order of operations, in one pass over each parameter's elements.
//!
//! | PyTorch | strata-optim |
//! | --- | --- |
//! | `torch.optim.SGD(params, lr=0.1, momentum=0.9)` | [`Sgd::new`] with [`SgdConfig`] |
//! | `optim.Adam`, `AdamW`, `RMSprop`, `Adagrad` | [`Adam`], [`AdamW`], [`RmsProp`], [`Adagrad`] |
//! | `optimizer.step()`, `optimizer.zero_grad()` | [`Optimizer::step`], `zero_grad` |
//! | `optimizer.param_groups[g]["lr"] = x` | [`Optimizer::set_group_lr`] |
//! | `optimizer.state_dict()`, `load_state_dict` | [`Optimizer::state_dict`], `load_state_dict` |
//! | `torch.save(optimizer.state_dict(), path)` | [`Optimizer::save`] (safetensors) |
//! | `StepLR(opt, 30)`; `sched.step()` | [`StepLr::new`]; [`LrScheduler::apply`] |
//! | `clip_grad_norm_(params, max_norm)` | [`clip_grad_norm`]`(params, max_norm, 2.0)` |
//!
//! ```
//! use strata_autograd::Var;
//! use strata_optim::{clip_grad_norm, AdamW, AdamWConfig, LrScheduler, Optimizer, WarmupCosineLr};
//! use strata_tensor::Tensor;
//!
//! let w = Var::parameter(Tensor::from_vec(vec![1.0f32, -1.0, 0.5], &[3])?);
//! let mut opt = AdamW::new(vec![w.clone()], AdamWConfig { lr: 1e-2, ..Default::default() })?;
//! let sched = WarmupCosineLr::new(1e-2, 1e-3, 2, 10)?;
//! for step in 0..5 {
//!     sched.apply(&mut opt, step);
//!     opt.zero_grad();
//!     w.mul(&w)?.sum_all().backward()?;
//!     clip_grad_norm([&w], 1.0, 2.0)?;
//!     opt.step()?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adagrad;
mod adam;
mod clip;
mod error;
mod lr_scheduler;
mod optimizer;
mod rmsprop;
mod sgd;
mod state;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_grad_norm_with, clip_grad_value, ClipGradNormConfig};
pub use error::{OptimError, Result};
pub use lr_scheduler::{
    CosineAnnealingLr, ExponentialLr, LrScheduler, MultiStepLr, OneCycleLr, OneCycleLrConfig,
    StepLr, WarmupCosineLr,
};
pub use optimizer::{Optimizer, ParamGroup};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};
pub use state::{StateDict, STATE_FORMAT};
