//! Complete, configurable models built from `strata-nn-layers` and `strata-attention`.
//!
//! Each model has a config struct that serializes with serde (its `Default` is the standard
//! configuration), a constructor taking the config and a seeded [`strata_tensor::Generator`],
//! a forward pass, and a [`strata_nn_layers::Module`] implementation that names parameters as
//! the equivalent PyTorch module does.
//!
//! - [`Gpt`]: a GPT-2 style decoder-only language model with KV-cached generation.
//! - [`LinearRegression`]: least squares by full-batch or mini-batch gradient descent.
//! - [`Mlp`]: a multi-layer perceptron with a choice of [`Activation`].
//! - [`LeNet`]: LeNet-5 for 32x32 images.
//! - [`CharRnn`]: a character-level RNN, LSTM or GRU language model with sampling.
//! - [`TransformerEncoderClassifier`]: a pre- or post-norm Transformer encoder with padding
//!   masks, mean or `[CLS]` pooling and a linear head.
//! - [`Gan`]: a small GAN of two MLPs with an alternating two-optimizer training step.

mod char_rnn;
mod encoder_classifier;
mod error;
mod gan;
mod gpt;
mod lenet;
mod linear_regression;
mod mlp;
mod parts;
mod sampling;
mod state;
#[cfg(test)]
mod testing;

pub use char_rnn::{CellKind, CharRnn, CharRnnConfig, CharRnnState};
pub use encoder_classifier::{
    Pooling, TransformerEncoderClassifier, TransformerEncoderClassifierConfig,
};
pub use error::{ModelError, Result};
pub use gan::{Gan, GanConfig, GanLosses};
pub use gpt::{param_groups_for_decay, Gpt, GptCache, GptConfig};
pub use lenet::{LeNet, LeNetConfig};
pub use linear_regression::{FitConfig, LinearRegression, LinearRegressionConfig};
pub use mlp::{Activation, Mlp, MlpConfig};
pub use sampling::SamplingConfig;
