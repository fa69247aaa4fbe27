//! Reverse-mode automatic differentiation over `strata-tensor`.
//!
//! A [`Var`] wraps a tensor and records the op that made it. [`Var::backward`] walks the
//! recorded graph from an output back to the leaves in reverse topological order and adds each
//! leaf's gradient into [`Var::grad`]; a variable used twice receives the sum of both paths,
//! and the gradient of a broadcast input is summed back to its shape.
//!
//! The backward rule of every op is written once, in the table `derivatives.toml` at the root
//! of this crate; `cargo xtask codegen` turns it into the ops of [`generated`] and into one
//! gradient check per op. Rules are written with differentiable ops, so a backward pass run
//! with [`BackwardOptions::create_graph`] can itself be differentiated (Hessian-vector
//! products, gradient penalties).
//!
//! [`safetensors_file`] writes safetensors files with a canonical header, so that the state
//! dicts and optimizer states the crates above save are the same bytes for the same state.
//!
//! ```
//! use strata_autograd::Var;
//! use strata_tensor::Tensor;
//!
//! let w = Var::parameter(Tensor::from_vec(vec![0.5f64, -1.0], &[2])?);
//! let x = Var::new(Tensor::from_vec(vec![2.0, 3.0], &[2])?);
//! let loss = w.mul(&x)?.sum_all().tanh();
//! loss.backward()?;
//! let g = w.grad().unwrap().to_vec();
//! let s = 1.0 - (-2.0f64).tanh().powi(2);
//! assert!((g[0] - 2.0 * s).abs() < 1e-12 && (g[1] - 3.0 * s).abs() < 1e-12);
//! # Ok::<(), strata_autograd::AutogradError>(())
//! ```

mod engine;
mod error;
pub mod generated;
mod gradcheck;
mod linear;
mod mode;
mod multi;
mod norm;
mod rules;
pub mod safetensors_file;
#[cfg(feature = "testing")]
pub mod testing;
mod var;

pub use engine::{grad, BackwardOptions};
pub use error::{AutogradError, Result};
pub use gradcheck::{gradcheck, gradgradcheck, GradcheckError, GradcheckOptions};
pub use mode::{
    detect_anomaly, enable_grad, forward_anomaly, is_anomaly_enabled, is_grad_enabled, no_grad,
    set_grad_enabled, AnomalyGuard, GradModeGuard,
};
pub use var::{live_nodes, Backward, Var};
