//! Attention over `strata-autograd`: scaled dot-product and multi-head attention, masks,
//! positional encodings and a KV cache.
//!
//! - [`scaled_dot_product_attention`] is PyTorch's `F.scaled_dot_product_attention`, with
//!   [`AttnMask`] masks whose variant names the boolean sense, `is_causal`, seeded dropout and
//!   a scale override. Fully masked rows give zeros, not NaN.
//! - [`MultiheadAttention`] is `nn.MultiheadAttention`, with PyTorch's parameter names and
//!   layout, so state dicts carry across.

mod error;
mod mask;
mod mha;
mod sdpa;

pub use error::{AttentionError, Result};
pub use mask::{causal_bias, AttnMask, KeyPaddingMask};
pub use mha::{MhaForwardOptions, MultiheadAttention, MultiheadAttentionConfig};
pub use sdpa::{scaled_dot_product_attention, SdpaKernel, SdpaOptions};
