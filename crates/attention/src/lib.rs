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
//! - [`tiled`] documents the tiled kernel and the measurements behind [`TILED_MIN_SEQ`].
//!
//! # Coming from PyTorch
//!
//! - `F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)`:
//!   [`scaled_dot_product_attention`]`(q, k, v, mask, SdpaOptions { .. })`. Fully masked rows
//!   give 0, not NaN; `is_causal` combines with a mask; dropout needs a
//!   [`strata_tensor::Generator`]; no `enable_gqa`.
//! - SDPA's boolean `attn_mask` (true = attend): [`AttnMask::Attend`]. Booleans are float
//!   tensors read as non-zero = true.
//! - `nn.MultiheadAttention`'s boolean `attn_mask` and `key_padding_mask` (true = ignore):
//!   [`AttnMask::Ignore`] and [`KeyPaddingMask::Ignore`]. Float masks: the `Additive` variants.
//! - `nn.MultiheadAttention(E, H, dropout, bias, kdim=, vdim=, batch_first=)`:
//!   [`MultiheadAttention::new`] with a [`MultiheadAttentionConfig`]; no `add_bias_kv` or
//!   `add_zero_attn`.
//! - `mha(q, k, v, key_padding_mask, need_weights, attn_mask, average_attn_weights,
//!   is_causal)`: [`MultiheadAttention::forward`] with [`MhaForwardOptions`]; `is_causal`
//!   applies the causal mask itself rather than being a hint about `attn_mask`.
//!
//! ```
//! use strata_attention::{scaled_dot_product_attention, AttnMask, KvCache, SdpaOptions};
//! use strata_autograd::{no_grad, Var};
//! use strata_tensor::Generator;
//!
//! let mut gen = Generator::new(0);
//! let (q, k, v) = (
//!     Var::new(gen.randn::<f64>(&[1, 2, 6, 4])),
//!     Var::new(gen.randn::<f64>(&[1, 2, 6, 4])),
//!     Var::new(gen.randn::<f64>(&[1, 2, 6, 4])),
//! );
//! let causal = || SdpaOptions { is_causal: true, ..Default::default() };
//! let full = scaled_dot_product_attention(&q, &k, &v, None, causal())?;
//!
//! // The same, one token at a time through a cache.
//! let _guard = no_grad();
//! let mut cache = KvCache::new(1);
//! for t in 0..6 {
//!     let at = |x: &Var<f64>| x.narrow(2, t, 1);
//!     let y = cache.attend(0, &at(&q)?, &at(&k)?, &at(&v)?, None, causal())?;
//!     let want = full.narrow(2, t, 1)?.value();
//!     assert!(y.value().sub(&want)?.abs().max_all()?.item()? < 1e-12);
//! }
//!
//! // Padding keys are ignored: nn.MultiheadAttention's boolean sense, named in the variant.
//! let padding = AttnMask::ignore_from_bools(&[false, false, false, false, true, true], &[6])?;
//! let y = scaled_dot_product_attention(&q, &k, &v, Some(&padding), SdpaOptions::default())?;
//! assert_eq!(y.shape(), &[1, 2, 6, 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
