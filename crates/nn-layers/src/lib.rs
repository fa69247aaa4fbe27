//! Neural-network layers, losses and initialisation over `strata-autograd`.
//!
//! Every layer implements [`Module`], which names its parameters the way PyTorch does, so
//! that state dicts carry across; layers with one input and one output also implement
//! [`Forward`].

mod error;
mod module;

pub use error::{NnError, Result};
pub use module::{prefixed, Forward, Module};
