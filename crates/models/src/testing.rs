//! Test helpers shared by the models' training tests.

use strata_autograd::Var;
use strata_optim::{Adam, AdamConfig};
use strata_tensor::Element;

/// `torch.optim.Adam(params, lr=lr)`.
pub(crate) fn adam<T: Element>(params: Vec<Var<T>>, lr: f64) -> Adam<T> {
    let config = AdamConfig {
        lr,
        ..AdamConfig::default()
    };
    Adam::new(params, config).expect("bug: a valid Adam config")
}
