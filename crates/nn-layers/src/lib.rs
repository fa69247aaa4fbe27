//! Neural-network layers, losses and initialisation over `strata-autograd`.
//!
//! Every layer implements [`Module`], which names its parameters the way PyTorch does, so
//! that state dicts carry across; layers with one input and one output also implement
//! [`Forward`].

mod batch_norm;
mod conv;
mod error;
mod module;
mod pool;
mod rnn;

mod activation;
mod bilinear;
mod dropout;
mod embedding;
mod flatten;
pub mod init;
mod linear;
mod loss;
mod norm;
mod sequential;
mod state_dict;

pub use batch_norm::{BatchNorm1d, BatchNorm2d, BatchNormConfig};
pub use conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Padding, PaddingMode};
pub use error::{NnError, Result};
pub use module::{prefixed, Forward, Module};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
pub use rnn::{Gru, Lstm, Nonlinearity, RecurrentConfig, Rnn, RnnConfig};

pub use activation::{
    GeluApproximate, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Tanh, GELU,
};
pub use bilinear::Bilinear;
pub use dropout::Dropout;
pub use embedding::{Embedding, EmbeddingConfig};
pub use flatten::Flatten;
pub use linear::{Linear, LinearConfig};
pub use loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, cross_entropy_probs,
    cross_entropy_with, huber_loss, kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss,
    BceWithLogitsConfig, CrossEntropyConfig, KlDivConfig, KlDivReduction, NllLossConfig, Reduction,
};
pub use norm::{LayerNorm, LayerNormConfig, RMSNorm, RMSNormConfig};
pub use sequential::Sequential;
pub use state_dict::{
    load_state_dict, load_state_dict_from_bytes, save_state_dict, state_dict, state_dict_to_bytes,
};
