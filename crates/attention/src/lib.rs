//! Attention over `strata-autograd`: scaled dot-product and multi-head attention, masks,
//! positional encodings and a KV cache.
//!
//! - [`scaled_dot_product_attention`] is PyTorch's `F.scaled_dot_product_attention`, with
//!   [`AttnMask`] masks whose variant names the boolean sense, `is_causal`, seeded dropout and
//!   a scale override. Fully masked rows give zeros, not NaN.
//! - [`MultiheadAttention`] is `nn.MultiheadAttention`, with PyTorch's parameter names and
//!   layout, so state dicts carry across.
//! - Positional encodings: [`sinusoidal_encoding`] / [`SinusoidalPositionalEncoding`],
//!   [`LearnedPositionalEmbedding`], and rotary embeddings [`RotaryEmbedding`] (half-split
//!   pairing, with a position offset for cached decoding).
//! - [`KvCache`] keeps each layer's keys and values for incremental decoding.

mod error;
mod kv_cache;
mod mask;
mod mha;
mod positional;
mod rope;
mod sdpa;
pub mod tiled;

pub use error::{AttentionError, Result};
pub use kv_cache::KvCache;
pub use mask::{causal_bias, AttnMask, KeyPaddingMask};
pub use mha::{MhaForwardOptions, MultiheadAttention, MultiheadAttentionConfig};
pub use positional::{
    sinusoidal_encoding, LearnedPositionalEmbedding, SinusoidalPositionalEncoding,
};
pub use rope::RotaryEmbedding;
pub use sdpa::{scaled_dot_product_attention, SdpaKernel, SdpaOptions, TILED_MIN_SEQ};
