//! Complete, configurable models built from `strata-nn-layers` and `strata-attention`.
//!
//! Each model has a config struct that serializes with serde (its `Default` is the standard
//! configuration), a constructor taking the config and a seeded [`strata_tensor::Generator`],
//! a forward pass, and a [`strata_nn_layers::Module`] implementation that names parameters as
//! the equivalent PyTorch module does.
//!
//! - [`Gpt`]: a GPT-2 style decoder-only language model with KV-cached generation.

mod error;
mod gpt;
mod parts;
mod sampling;
mod state;
#[cfg(test)]
mod testing;

pub use error::{ModelError, Result};
pub use gpt::{param_groups_for_decay, Gpt, GptCache, GptConfig};
pub use sampling::SamplingConfig;
