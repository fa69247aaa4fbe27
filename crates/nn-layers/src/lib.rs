//! Neural-network layers, losses and initialisation over `strata-autograd`.
//!
//! Every layer implements [`Module`], which names its parameters the way PyTorch does, so
//! that state dicts carry across; layers with one input and one output also implement
//! [`Forward`].

mod error;
mod module;

mod activation;
mod dropout;
mod embedding;
mod flatten;
mod linear;
mod norm;
mod sequential;

pub use error::{NnError, Result};
pub use module::{prefixed, Forward, Module};

pub use activation::{
    GeluApproximate, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Tanh, GELU,
};
pub use dropout::Dropout;
pub use embedding::{Embedding, EmbeddingConfig};
pub use flatten::Flatten;
pub use linear::{Linear, LinearConfig};
pub use norm::{LayerNorm, LayerNormConfig, RMSNorm, RMSNormConfig};
pub use sequential::Sequential;
