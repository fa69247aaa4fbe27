//! Attention masks, with the sense of a boolean mask named in its variant.
//!
//! PyTorch reads boolean masks two opposite ways: `F.scaled_dot_product_attention` takes
//! `true` as "may attend", `nn.MultiheadAttention` takes `true` as "masked out". Here the
//! variant says which: [`AttnMask::Attend`] and [`AttnMask::Ignore`], and every op accepts
//! both. Strata has no boolean tensor, so a boolean mask is a float tensor read as
//! `value != 0` (true) or `value == 0` (false), the way `masked_fill` reads its mask.
//!
//! Every mask is turned into one additive bias, `0` where a key may be attended, `-inf` where
//! it may not, plus the float values of additive masks.
//!
//! Masks are constants (tensors, not variables): no gradient flows into an additive mask,
//! where PyTorch would give one to a float `attn_mask` that requires grad. A learned bias
//! (ALiBi slopes, relative positions) must be added to the scores by hand.

use strata_tensor::{broadcast_shapes, Element, Tensor};

use crate::error::{shape_err, Result};

/// A mask over attention scores, broadcastable to `(.., seq_q, seq_k)`.
#[derive(Debug, Clone)]
pub enum AttnMask<T: Element> {
    /// Non-zero (true) where the query **may attend** the key: the sense of
    /// `F.scaled_dot_product_attention`'s boolean `attn_mask`.
    Attend(Tensor<T>),
    /// Non-zero (true) where the key is **masked out**: the sense of
    /// `nn.MultiheadAttention`'s boolean `attn_mask`.
    Ignore(Tensor<T>),
    /// Added to the scores before the softmax; `-inf` masks a key out. PyTorch's float masks.
    Additive(Tensor<T>),
}

/// A key padding mask of shape `(batch, seq_k)` (or `(seq_k)` for unbatched input), the
/// `key_padding_mask` of `nn.MultiheadAttention`.
#[derive(Debug, Clone)]
pub enum KeyPaddingMask<T: Element> {
    /// Non-zero (true) where the key is padding and is **ignored**: PyTorch's boolean sense.
    Ignore(Tensor<T>),
    /// Non-zero (true) where the key is real and **may be attended**.
    Attend(Tensor<T>),
    /// Added to the scores of each key; `-inf` masks it out. PyTorch's float sense.
    Additive(Tensor<T>),
}

impl<T: Element> AttnMask<T> {
    /// A boolean "may attend" mask from booleans in row-major order.
    ///
    /// # Errors
    /// If `shape` does not hold `values.len()` elements.
    pub fn attend_from_bools(values: &[bool], shape: &[usize]) -> Result<Self> {
        Ok(AttnMask::Attend(bools_to_tensor(values, shape)?))
    }

    /// A boolean "masked out" mask from booleans in row-major order.
    ///
    /// # Errors
    /// If `shape` does not hold `values.len()` elements.
    pub fn ignore_from_bools(values: &[bool], shape: &[usize]) -> Result<Self> {
        Ok(AttnMask::Ignore(bools_to_tensor(values, shape)?))
    }

    /// The shape of the mask tensor.
    pub fn shape(&self) -> &[usize] {
        match self {
            AttnMask::Attend(t) | AttnMask::Ignore(t) | AttnMask::Additive(t) => t.shape(),
        }
    }

    /// The mask as an additive bias: `0` where attended, `-inf` where masked out.
    pub fn to_bias(&self) -> Tensor<T> {
        match self {
            AttnMask::Attend(t) => t.map(|x| if x != T::zero() { T::zero() } else { neg_inf() }),
            AttnMask::Ignore(t) => t.map(|x| if x != T::zero() { neg_inf() } else { T::zero() }),
            AttnMask::Additive(t) => t.clone(),
        }
    }
}

impl<T: Element> KeyPaddingMask<T> {
    /// A padding mask from booleans, true where the key is padding.
    ///
    /// # Errors
    /// If `shape` does not hold `values.len()` elements.
    pub fn ignore_from_bools(values: &[bool], shape: &[usize]) -> Result<Self> {
        Ok(KeyPaddingMask::Ignore(bools_to_tensor(values, shape)?))
    }

    /// The shape of the mask tensor.
    pub fn shape(&self) -> &[usize] {
        match self {
            KeyPaddingMask::Attend(t) | KeyPaddingMask::Ignore(t) | KeyPaddingMask::Additive(t) => {
                t.shape()
            }
        }
    }

    /// The mask as an additive bias of the same shape: `0` for real keys, `-inf` for padding.
    pub fn to_bias(&self) -> Tensor<T> {
        match self {
            KeyPaddingMask::Attend(t) => AttnMask::Attend(t.clone()).to_bias(),
            KeyPaddingMask::Ignore(t) => AttnMask::Ignore(t.clone()).to_bias(),
            KeyPaddingMask::Additive(t) => t.clone(),
        }
    }
}

/// The causal bias of shape `(seq_q, seq_k)`: query `i` may attend key `j` when
/// `j <= i + offset`, and gets `-inf` elsewhere.
///
/// `offset = 0` is PyTorch's `is_causal` (the top-left aligned lower triangle); decoding with
/// a KV cache uses `offset = seq_k - seq_q`, so the last query sees every key.
pub fn causal_bias<T: Element>(seq_q: usize, seq_k: usize, offset: isize) -> Tensor<T> {
    let mut data = vec![T::zero(); seq_q * seq_k];
    for i in 0..seq_q {
        for j in 0..seq_k {
            if !causal_allows(i, j, offset) {
                data[i * seq_k + j] = neg_inf();
            }
        }
    }
    Tensor::from_vec(data, &[seq_q, seq_k]).expect("bug: causal bias shape")
}

/// Whether query `i` may attend key `j` under a causal mask with `offset`.
#[inline]
pub(crate) fn causal_allows(i: usize, j: usize, offset: isize) -> bool {
    (j as isize) <= (i as isize) + offset
}

/// `-inf` of the element type.
#[inline]
pub(crate) fn neg_inf<T: Element>() -> T {
    T::neg_infinity()
}

/// Checks that `mask_shape` broadcasts to `target` (without growing it).
pub(crate) fn check_broadcast(
    op: &'static str,
    what: &str,
    mask_shape: &[usize],
    target: &[usize],
) -> Result<()> {
    let ok = broadcast_shapes(op, mask_shape, target).is_ok_and(|s| s == target);
    if ok {
        Ok(())
    } else {
        Err(shape_err(
            op,
            format!("{what} of shape {mask_shape:?} does not broadcast to {target:?}"),
        ))
    }
}

fn bools_to_tensor<T: Element>(values: &[bool], shape: &[usize]) -> Result<Tensor<T>> {
    let data = values
        .iter()
        .map(|&b| if b { T::one() } else { T::zero() })
        .collect();
    Ok(Tensor::from_vec(data, shape)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attend_and_ignore_are_opposite_senses() {
        let keep = AttnMask::<f64>::attend_from_bools(&[true, false], &[2]).unwrap();
        let drop = AttnMask::<f64>::ignore_from_bools(&[true, false], &[2]).unwrap();

        assert_eq!(keep.to_bias().to_vec(), vec![0.0, f64::NEG_INFINITY]);
        assert_eq!(drop.to_bias().to_vec(), vec![f64::NEG_INFINITY, 0.0]);
    }

    #[test]
    fn causal_bias_with_offset_lets_the_last_query_see_every_key() {
        let top_left = causal_bias::<f64>(2, 3, 0).to_vec();
        let bottom_right = causal_bias::<f64>(2, 3, 1).to_vec();
        let inf = f64::NEG_INFINITY;

        assert_eq!(top_left, vec![0.0, inf, inf, 0.0, 0.0, inf]);
        assert_eq!(bottom_right, vec![0.0, 0.0, inf, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn check_broadcast_rejects_growing_shapes() {
        assert!(check_broadcast("t", "mask", &[1, 3], &[2, 3]).is_ok());
        assert!(check_broadcast("t", "mask", &[2, 2, 3], &[2, 3]).is_err());
        assert!(check_broadcast("t", "mask", &[4], &[2, 3]).is_err());
    }
}
