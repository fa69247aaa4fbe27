//! Per-thread switches: gradient recording (`no_grad`) and anomaly detection.
//!
//! Like PyTorch's grad mode, both are thread-local: a `no_grad` scope on one thread does not
//! stop another thread from recording.

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static ANOMALY_ENABLED: Cell<bool> = const { Cell::new(false) };
    static FIRST_FORWARD_ANOMALY: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Whether ops on this thread record a graph for backward.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Restores the previous grad mode when dropped; returned by [`no_grad`] and
/// [`enable_grad`].
#[derive(Debug)]
#[must_use = "the mode is restored when the guard is dropped"]
pub struct GradModeGuard {
    previous: bool,
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Sets whether ops record a graph until the returned guard is dropped.
pub fn set_grad_enabled(enabled: bool) -> GradModeGuard {
    let previous = GRAD_ENABLED.with(|g| g.replace(enabled));
    GradModeGuard { previous }
}

/// Turns recording off until the guard is dropped (PyTorch's `with torch.no_grad():`).
///
/// ```
/// # use strata_autograd::{no_grad, Var};
/// # use strata_tensor::Tensor;
/// let w = Var::parameter(Tensor::<f32>::ones(&[2]));
/// let y = {
///     let _guard = no_grad();
///     w.exp()
/// };
/// assert!(!y.requires_grad());
/// ```
pub fn no_grad() -> GradModeGuard {
    set_grad_enabled(false)
}

/// Turns recording on until the guard is dropped (PyTorch's `torch.enable_grad()`).
pub fn enable_grad() -> GradModeGuard {
    set_grad_enabled(true)
}

/// Whether anomaly detection is on for this thread.
pub fn is_anomaly_enabled() -> bool {
    ANOMALY_ENABLED.with(Cell::get)
}

/// Restores the previous anomaly mode when dropped.
#[derive(Debug)]
#[must_use = "the mode is restored when the guard is dropped"]
pub struct AnomalyGuard {
    previous: bool,
}

impl Drop for AnomalyGuard {
    fn drop(&mut self) {
        ANOMALY_ENABLED.with(|a| a.set(self.previous));
        if !self.previous {
            FIRST_FORWARD_ANOMALY.with(|f| f.set(None));
        }
    }
}

/// Turns anomaly detection on until the guard is dropped (PyTorch's `detect_anomaly`).
///
/// While it is on, every recorded op checks its output for NaN and infinity, and `backward`
/// checks every gradient it computes. The first op found is named in
/// [`crate::AutogradError::Anomaly`]: `backward` fails with it, and a forward anomaly is also
/// available at once from [`forward_anomaly`]. The checks cost a pass over every tensor, so
/// leave the mode off outside debugging.
pub fn detect_anomaly() -> AnomalyGuard {
    let previous = ANOMALY_ENABLED.with(|a| a.replace(true));
    AnomalyGuard { previous }
}

/// The first op whose forward output held a NaN or an infinity since anomaly mode was turned
/// on, if any.
pub fn forward_anomaly() -> Option<&'static str> {
    FIRST_FORWARD_ANOMALY.with(Cell::get)
}

pub(crate) fn note_forward_anomaly(op: &'static str) {
    FIRST_FORWARD_ANOMALY.with(|f| {
        if f.get().is_none() {
            f.set(Some(op));
        }
    });
}
