//! Loss functions, PyTorch's `torch.nn.functional` losses: classification
//! ([`cross_entropy`], [`nll_loss`]), regression ([`mse_loss`], [`l1_loss`], [`huber_loss`],
//! [`smooth_l1_loss`]), binary ([`binary_cross_entropy`],
//! [`binary_cross_entropy_with_logits`]) and divergence ([`kl_div`]).
//!
//! Each takes its inputs as variables and returns a differentiable loss, reduced as a
//! [`Reduction`] says. Shapes are checked and mismatches are errors: unlike PyTorch, which
//! broadcasts the target of an elementwise loss with a warning, the shapes have to be equal.

mod binary;
mod cross_entropy;
mod kl;
mod regression;

pub use binary::{binary_cross_entropy, binary_cross_entropy_with_logits, BceWithLogitsConfig};
pub use cross_entropy::{
    cross_entropy, cross_entropy_probs, cross_entropy_with, nll_loss, CrossEntropyConfig,
    NllLossConfig,
};
pub use kl::{kl_div, KlDivConfig, KlDivReduction};
pub use regression::{huber_loss, l1_loss, mse_loss, smooth_l1_loss};

use strata_autograd::Var;
use strata_tensor::Element;

use crate::error::{NnError, Result};

/// How a loss combines its per-element values, PyTorch's `reduction` argument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over elements (PyTorch's `'mean'`), the default.
    #[default]
    Mean,
    /// The sum over elements (`'sum'`).
    Sum,
    /// No reduction (`'none'`): one loss per element, in the input's shape.
    None,
}

impl Reduction {
    /// Reduces per-element losses: mean, sum, or the losses themselves.
    pub(crate) fn apply<T: Element>(self, losses: Var<T>) -> Var<T> {
        match self {
            Reduction::Mean => losses.mean_all(),
            Reduction::Sum => losses.sum_all(),
            Reduction::None => losses,
        }
    }
}

/// Checks that `input` and `target` have the same shape.
pub(crate) fn check_same_shape<T: Element>(
    loss: &'static str,
    input: &Var<T>,
    target: &Var<T>,
) -> Result<()> {
    if input.shape() == target.shape() {
        Ok(())
    } else {
        Err(NnError::Input {
            layer: loss,
            reason: format!(
                "input shape {:?} and target shape {:?} differ",
                input.shape(),
                target.shape()
            ),
        })
    }
}
