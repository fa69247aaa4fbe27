//! Rotary position embeddings (RoPE), in the half-split pairing of GPT-NeoX and the LLaMA
//! ports.
//!
//! Channel `i` of the first half is rotated together with channel `i + dim / 2`, which is
//! what Hugging Face's `rotate_half` does. The RoFormer paper pairs neighbours `(2i, 2i + 1)`
//! instead; the two are the same rotation up to a fixed permutation of the channels, so
//! weights trained with one convention need their query and key projections permuted to run
//! with the other.

use strata_autograd::Var;
use strata_tensor::{Element, Tensor};

use crate::error::{config_err, shape_err, Result};

/// Rotary position embedding over the last dimension of queries and keys.
///
/// ```text
/// theta_i = base^(-2i / dim),  i = 0 .. dim/2        a = pos * theta_i
/// x1 = x[.., :dim/2],  x2 = x[.., dim/2:]
/// y = concat(x1 cos a - x2 sin a,  x2 cos a + x1 sin a)
/// ```
///
/// The dot product of a rotated query at position `m` and a rotated key at position `n`
/// depends on `m - n` only. `offset` shifts the positions, so that token `t` decoded through
/// a KV cache gets the rotation it had in the full sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotaryEmbedding {
    dim: usize,
    base: f64,
}

impl RotaryEmbedding {
    /// RoPE over `dim` channels with the usual base 10000.
    ///
    /// # Errors
    /// [`crate::AttentionError::Config`] if `dim` is zero or odd.
    pub fn new(dim: usize) -> Result<Self> {
        Self::with_base(dim, 10000.0)
    }

    /// RoPE over `dim` channels with frequency base `base`.
    ///
    /// # Errors
    /// [`crate::AttentionError::Config`] if `dim` is zero or odd, or `base` is not above 1.
    pub fn with_base(dim: usize, base: f64) -> Result<Self> {
        if dim == 0 || dim % 2 != 0 {
            return Err(config_err(
                "RotaryEmbedding",
                format!("dim must be positive and even, got {dim}"),
            ));
        }
        if base.is_nan() || base <= 1.0 {
            return Err(config_err(
                "RotaryEmbedding",
                format!("base must be > 1, got {base}"),
            ));
        }
        Ok(Self { dim, base })
    }

    /// The number of rotated channels.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `cos a` and `sin a` for positions `offset..offset + seq_len`, each `(seq_len, dim / 2)`.
    pub fn cos_sin<T: Element>(&self, seq_len: usize, offset: usize) -> (Tensor<T>, Tensor<T>) {
        let half = self.dim / 2;
        let mut cos = Vec::with_capacity(seq_len * half);
        let mut sin = Vec::with_capacity(seq_len * half);
        for pos in offset..offset + seq_len {
            for i in 0..half {
                let theta = self.base.powf(-2.0 * i as f64 / self.dim as f64);
                let a = pos as f64 * theta;
                cos.push(T::from_f64(a.cos()));
                sin.push(T::from_f64(a.sin()));
            }
        }
        let shape = [seq_len, half];
        (
            Tensor::from_vec(cos, &shape).expect("bug: rope table shape"),
            Tensor::from_vec(sin, &shape).expect("bug: rope table shape"),
        )
    }

    /// Rotates `x` whose sequence starts at position `offset`. Differentiable.
    ///
    /// # Shapes
    /// - `x`: `(.., seq, dim)`; output: the same
    ///
    /// # Errors
    /// [`crate::AttentionError::Shape`] if the last dim of `x` is not `dim`.
    pub fn apply<T: Element>(&self, x: &Var<T>, offset: usize) -> Result<Var<T>> {
        let s = x.shape();
        if s.len() < 2 || s[s.len() - 1] != self.dim {
            return Err(shape_err(
                "RotaryEmbedding",
                format!("expected (.., seq, {}), got {s:?}", self.dim),
            ));
        }
        let half = self.dim / 2;
        let (cos, sin) = self.cos_sin::<T>(s[s.len() - 2], offset);
        let (cos, sin) = (Var::new(cos), Var::new(sin));
        let x1 = x.narrow(-1, 0, half)?;
        let x2 = x.narrow(-1, half, half)?;
        let y1 = x1.mul(&cos)?.sub(&x2.mul(&sin)?)?;
        let y2 = x2.mul(&cos)?.add(&x1.mul(&sin)?)?;
        Ok(Var::concat(&[&y1, &y2], -1)?)
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::Generator;

    use super::*;

    #[test]
    fn rotation_keeps_the_norm_of_each_position() {
        let rope = RotaryEmbedding::new(8).unwrap();
        let x = Var::new(Generator::new(0).randn::<f64>(&[2, 5, 8]));

        let y = rope.apply(&x, 3).unwrap();

        let norm = |t: Tensor<f64>| t.square().sum(&[-1]).unwrap().to_vec();
        for (a, b) in norm(x.value()).iter().zip(norm(y.value())) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn scores_depend_on_relative_position_only() {
        let rope = RotaryEmbedding::new(4).unwrap();
        let mut gen = Generator::new(1);
        let q = Var::new(gen.randn::<f64>(&[1, 4]));
        let k = Var::new(gen.randn::<f64>(&[1, 4]));
        let score = |m: usize, n: usize| {
            let a = rope.apply(&q, m).unwrap().value();
            let b = rope.apply(&k, n).unwrap().value();
            a.mul(&b).unwrap().sum_all().item().unwrap()
        };

        assert!((score(5, 2) - score(13, 10)).abs() < 1e-12);
        assert!((score(5, 2) - score(2, 5)).abs() > 1e-6);
    }

    #[test]
    fn position_zero_is_the_identity_and_half_split_pairs_channels() {
        let rope = RotaryEmbedding::with_base(4, 100.0).unwrap();
        let x = Var::new(
            Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], &[2, 4]).unwrap(),
        );

        let y = rope.apply(&x, 0).unwrap().value();

        let row1: Vec<f64> = y.narrow(0, 1, 1).unwrap().to_vec();
        assert_eq!(
            y.narrow(0, 0, 1).unwrap().to_vec(),
            vec![1.0, 0.0, 0.0, 0.0]
        );
        // Position 1 rotates channel 0 into channel 2 (its half-split partner) by 1 radian.
        assert!((row1[0] - 1f64.cos()).abs() < 1e-15 && (row1[2] - 1f64.sin()).abs() < 1e-15);
        assert!(RotaryEmbedding::new(3).is_err());
    }
}
