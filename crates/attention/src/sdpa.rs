//! Scaled dot-product attention, PyTorch's `F.scaled_dot_product_attention`.
//!
//! The public entry point checks shapes, folds the mask and `is_causal` into one description
//! of the problem, and picks a kernel: the math kernel written with differentiable ops of
//! `strata-autograd` (it materialises the `(seq_q, seq_k)` attention weights) or the tiled
//! kernel of [`crate::tiled`] (one recorded op, memory linear in the sequence length).

use strata_autograd::Var;
use strata_tensor::{Element, Generator, Tensor};

use crate::error::{config_err, shape_err, Result};
use crate::mask::{causal_bias, check_broadcast, AttnMask};

/// The op name used in errors.
const OP: &str = "scaled_dot_product_attention";

/// Which kernel computes the attention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SdpaKernel {
    /// The tiled kernel from [`TILED_MIN_SEQ`] keys on, the math kernel below.
    #[default]
    Auto,
    /// Differentiable ops that materialise the `(.., seq_q, seq_k)` weights.
    Math,
    /// The tiled, online-softmax kernel of [`crate::tiled`]: one recorded op with a
    /// hand-written backward, extra memory `O(seq * dim)`.
    Tiled,
}

/// Number of keys from which [`SdpaKernel::Auto`] picks the tiled kernel.
///
/// Measured with `cargo bench -p strata-attention`; the numbers are in [`crate::tiled`].
pub const TILED_MIN_SEQ: usize = 64;

/// Options of [`scaled_dot_product_attention`], with PyTorch's defaults.
#[derive(Debug, Default)]
pub struct SdpaOptions<'g> {
    /// Mask out keys after the query: query `i` attends keys `j <= i`, the top-left aligned
    /// lower triangle, as PyTorch's `is_causal`. Default `false`. Unlike PyTorch, it may be
    /// combined with a mask (both apply).
    pub is_causal: bool,
    /// Probability of zeroing an attention weight (the rest are scaled by `1 / (1 - p)`).
    /// Default `0.0`. Needs `generator` when positive.
    pub dropout_p: f64,
    /// Factor applied to `q k^T`; default `1 / sqrt(head_dim)`.
    pub scale: Option<f64>,
    /// The source of the dropout mask; one `u64` is drawn from it per call.
    pub generator: Option<&'g mut Generator>,
    /// Which kernel to run; default [`SdpaKernel::Auto`].
    pub kernel: SdpaKernel,
}

/// The checked description of one attention call, shared by the kernels.
#[derive(Debug, Clone)]
pub(crate) struct Problem<T: Element> {
    /// Leading (batch, head, ...) dims shared by q, k and v.
    pub(crate) lead: Vec<usize>,
    pub(crate) seq_q: usize,
    pub(crate) seq_k: usize,
    pub(crate) head_dim: usize,
    pub(crate) value_dim: usize,
    pub(crate) scale: T,
    /// Additive bias (`-inf` masks out) broadcastable to `lead + [seq_q, seq_k]`.
    pub(crate) bias: Option<Tensor<T>>,
    /// Causal masking with this offset: query `i` attends keys `j <= i + offset`.
    pub(crate) causal: Option<isize>,
    pub(crate) dropout: Option<DropoutMask>,
}

/// A dropout mask that is a pure function of a seed and the element's flat index, so every
/// kernel (and the backward pass) sees the same mask without storing it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropoutMask {
    pub(crate) p: f64,
    pub(crate) seed: u64,
}

impl DropoutMask {
    /// The factor of element `index` of the `(.., seq_q, seq_k)` weights: `0` if dropped,
    /// `1 / (1 - p)` if kept.
    #[inline]
    pub(crate) fn factor<T: Element>(&self, index: usize) -> T {
        if self.p >= 1.0 {
            return T::zero();
        }
        let mut x = self
            .seed
            .wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let u = (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        if u < self.p {
            T::zero()
        } else {
            T::from_f64(1.0 / (1.0 - self.p))
        }
    }

    /// The whole mask of `shape`, as factors.
    pub(crate) fn tensor<T: Element>(&self, shape: &[usize]) -> Tensor<T> {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|i| self.factor(i)).collect();
        Tensor::from_vec(data, shape).expect("bug: dropout mask shape")
    }
}

impl<T: Element> Problem<T> {
    /// Checks `q`, `k`, `v` and the mask and describes the call.
    pub(crate) fn new(
        q: &[usize],
        k: &[usize],
        v: &[usize],
        mask: Option<&AttnMask<T>>,
        options: &mut SdpaOptions<'_>,
    ) -> Result<Self> {
        if q.len() < 2 || k.len() != q.len() || v.len() != q.len() {
            return Err(shape_err(
                OP,
                format!("q, k, v need the same rank >= 2, got {q:?}, {k:?}, {v:?}"),
            ));
        }
        let r = q.len();
        let lead = q[..r - 2].to_vec();
        if k[..r - 2] != lead[..] || v[..r - 2] != lead[..] {
            return Err(shape_err(
                OP,
                format!("leading dims of q, k, v differ: {q:?}, {k:?}, {v:?}"),
            ));
        }
        if k[r - 1] != q[r - 1] || v[r - 2] != k[r - 2] {
            return Err(shape_err(
                OP,
                format!(
                    "expected q (.., L, E), k (.., S, E), v (.., S, Ev), got {q:?}, {k:?}, {v:?}"
                ),
            ));
        }
        let (seq_q, seq_k, head_dim, value_dim) = (q[r - 2], k[r - 2], q[r - 1], v[r - 1]);
        let mut target = lead.clone();
        target.extend([seq_q, seq_k]);
        let bias = match mask {
            Some(m) => {
                check_broadcast(OP, "attn_mask", m.shape(), &target)?;
                Some(m.to_bias())
            }
            None => None,
        };
        let p = options.dropout_p;
        if !(0.0..=1.0).contains(&p) {
            return Err(config_err(
                OP,
                format!("dropout_p must be in [0, 1], got {p}"),
            ));
        }
        let dropout = if p > 0.0 {
            let gen = options
                .generator
                .as_deref_mut()
                .ok_or_else(|| config_err(OP, "dropout_p > 0 needs a generator in SdpaOptions"))?;
            Some(DropoutMask {
                p,
                seed: gen.next_u64(),
            })
        } else {
            None
        };
        let scale = options
            .scale
            .unwrap_or_else(|| 1.0 / (head_dim.max(1) as f64).sqrt());
        Ok(Self {
            lead,
            seq_q,
            seq_k,
            head_dim,
            value_dim,
            scale: T::from_f64(scale),
            bias,
            causal: options.is_causal.then_some(0),
            dropout,
        })
    }

    /// The shape of the attention weights, `lead + [seq_q, seq_k]`.
    pub(crate) fn weights_shape(&self) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.extend([self.seq_q, self.seq_k]);
        s
    }

    /// The mask and the causal triangle as one additive bias, if there is any.
    pub(crate) fn full_bias(&self) -> strata_autograd::Result<Option<Tensor<T>>> {
        let causal = self
            .causal
            .map(|off| causal_bias::<T>(self.seq_q, self.seq_k, off));
        Ok(match (&self.bias, causal) {
            (Some(b), Some(c)) => Some(b.add(&c)?),
            (Some(b), None) => Some(b.clone()),
            (None, Some(c)) => Some(c),
            (None, None) => None,
        })
    }
}

/// Scaled dot-product attention over `(.., seq, dim)` inputs, PyTorch's
/// `F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)`.
///
/// ```text
/// S = scale * q k^T + B          B: the mask as a bias (0 attended, -inf masked out)
/// P = softmax(S, dim=-1)         a row whose keys are all masked gets P = 0
/// P' = P * M / (1 - p)           M: the dropout keep mask (all ones without dropout)
/// y = P' v
/// backward: dv = P'^T dy,  dP = (dy v^T) * M / (1 - p),  dS = P * (dP - rowsum(P * dP)),
///           dq = scale * dS k,  dk = scale * dS^T q
/// ```
///
/// A query whose keys are all masked out (by the mask, by `is_causal`, or by `-inf` in an
/// additive mask) gets a zero output row and sends zero gradients back. PyTorch gives NaN
/// there; zeros let padded batches train without special cases.
///
/// The boolean sense of the mask is in its variant: [`AttnMask::Attend`] is the sense of this
/// PyTorch function (true = may attend), [`AttnMask::Ignore`] the opposite.
///
/// # Shapes
/// - `q`: `(.., seq_q, head_dim)`, `k`: `(.., seq_k, head_dim)`, `v`: `(.., seq_k, value_dim)`,
///   with the same leading dims, usually `(batch, heads)`
/// - `attn_mask`: broadcastable to `(.., seq_q, seq_k)`
/// - output: `(.., seq_q, value_dim)`
///
/// # Limitations
/// `q`, `k` and `v` must have identical leading dims: PyTorch's broadcasting of batch dims
/// and `enable_gqa` (fewer key/value heads) are not supported and give
/// [`crate::AttentionError::Shape`]; repeat the key/value heads first. Dropout draws from a
/// [`Generator`], not a global RNG, so it is reproducible but does not reproduce PyTorch's
/// masks.
///
/// # Errors
/// [`crate::AttentionError::Shape`] if the shapes do not fit together or the mask does not
/// broadcast; [`crate::AttentionError::Config`] if `dropout_p` is outside `[0, 1]` or is
/// positive without a generator.
///
/// ```
/// use strata_attention::{scaled_dot_product_attention, SdpaOptions};
/// use strata_autograd::Var;
/// use strata_tensor::Generator;
///
/// let mut gen = Generator::new(0);
/// let q = Var::parameter(gen.randn::<f32>(&[2, 4, 5, 8]));
/// let k = Var::new(gen.randn(&[2, 4, 5, 8]));
/// let v = Var::new(gen.randn(&[2, 4, 5, 8]));
/// let opts = SdpaOptions { is_causal: true, ..Default::default() };
/// let y = scaled_dot_product_attention(&q, &k, &v, None, opts)?;
/// assert_eq!(y.shape(), &[2, 4, 5, 8]);
/// y.sum_all().backward()?;
/// # Ok::<(), strata_attention::AttentionError>(())
/// ```
pub fn scaled_dot_product_attention<T: Element>(
    q: &Var<T>,
    k: &Var<T>,
    v: &Var<T>,
    attn_mask: Option<&AttnMask<T>>,
    mut options: SdpaOptions<'_>,
) -> Result<Var<T>> {
    let problem = Problem::new(q.shape(), k.shape(), v.shape(), attn_mask, &mut options)?;
    attend(q, k, v, &problem, options.kernel)
}

/// Runs `problem` on the chosen kernel.
pub(crate) fn attend<T: Element>(
    q: &Var<T>,
    k: &Var<T>,
    v: &Var<T>,
    problem: &Problem<T>,
    kernel: SdpaKernel,
) -> Result<Var<T>> {
    let tiled = match kernel {
        SdpaKernel::Auto => problem.seq_k >= TILED_MIN_SEQ,
        SdpaKernel::Math => false,
        SdpaKernel::Tiled => true,
    };
    if tiled {
        crate::tiled::attention(q, k, v, problem)
    } else {
        Ok(math_attention(q, k, v, problem)?.0)
    }
}

/// The math kernel: differentiable ops, returning the output and the weights `P'` (after
/// dropout), of shape `lead + [seq_q, seq_k]`.
pub(crate) fn math_attention<T: Element>(
    q: &Var<T>,
    k: &Var<T>,
    v: &Var<T>,
    problem: &Problem<T>,
) -> Result<(Var<T>, Var<T>)> {
    let (_, weights) = math_weights(q, k, problem)?;
    let out = weights.matmul(v)?;
    Ok((out, weights))
}

/// The attention weights `P` and, after dropout, `P'`, with differentiable ops.
pub(crate) fn math_weights<T: Element>(
    q: &Var<T>,
    k: &Var<T>,
    problem: &Problem<T>,
) -> strata_autograd::Result<(Var<T>, Var<T>)> {
    let scores = q.matmul(&k.transpose(-2, -1)?)?.mul_scalar(problem.scale);
    let weights = masked_softmax(&scores, problem.full_bias()?.as_ref(), problem)?;
    let dropped = match &problem.dropout {
        Some(d) => weights.mul(&Var::new(d.tensor(&problem.weights_shape())))?,
        None => weights.clone(),
    };
    Ok((weights, dropped))
}

/// `softmax(scores + bias)` along the last dim, with zero rows where every key is masked.
///
/// Masked entries are set to the lowest finite value rather than `-inf`, so a fully masked
/// row is a finite uniform softmax, which a 0/1 row factor then zeroes: no NaN appears in the
/// forward or the backward pass.
pub(crate) fn masked_softmax<T: Element>(
    scores: &Var<T>,
    bias: Option<&Tensor<T>>,
    problem: &Problem<T>,
) -> strata_autograd::Result<Var<T>> {
    let Some(bias) = bias else {
        return scores.softmax(-1);
    };
    let is_masked = |x: T| x == T::neg_infinity();
    let finite = bias.map(|x| if is_masked(x) { T::zero() } else { x });
    let masked = bias.map(|x| if is_masked(x) { T::one() } else { T::zero() });
    let scores = scores
        .add(&Var::new(finite))?
        .masked_fill(&masked, T::min_value())?;
    let full = masked.broadcast_to(&problem.weights_shape())?;
    let row_valid = full.min_keepdim(&[-1])?.map(|m| T::one() - m);
    scores.softmax(-1)?.mul(&Var::new(row_valid))
}

#[cfg(test)]
mod tests {
    use strata_autograd::BackwardOptions;

    use super::*;

    fn qkv(seed: u64, shape: &[usize]) -> (Var<f64>, Var<f64>, Var<f64>) {
        let mut gen = Generator::new(seed);
        (
            Var::parameter(gen.randn(shape)),
            Var::parameter(gen.randn(shape)),
            Var::parameter(gen.randn(shape)),
        )
    }

    #[test]
    fn rows_of_softmax_weights_sum_to_one() {
        let (q, k, v) = qkv(1, &[2, 3, 4]);
        let mut opts = SdpaOptions::default();
        let p = Problem::new(q.shape(), k.shape(), v.shape(), None, &mut opts).unwrap();

        let (_, w) = math_attention(&q, &k, &v, &p).unwrap();

        let sums = w.value().sum(&[-1]).unwrap().to_vec();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-12));
    }

    #[test]
    fn softmax_of_fully_masked_row_is_zero() {
        // PyTorch returns NaN for a query whose keys are all masked out; this used to be
        // NaN here too, which poisoned every gradient of a padded batch.
        let (q, k, v) = qkv(2, &[1, 3, 4]);
        let allowed = [true, true, true, false, false, false, true, false, true];
        let mask = AttnMask::attend_from_bools(&allowed, &[3, 3]).unwrap();

        let y = scaled_dot_product_attention(&q, &k, &v, Some(&mask), Default::default()).unwrap();
        y.backward_with(&Tensor::ones(y.shape()), BackwardOptions::default())
            .unwrap();

        let out = y.value().to_vec();
        assert!(out.iter().all(|x| x.is_finite()));
        assert!(out[4..8].iter().all(|&x| x == 0.0));
        let gq = q.grad().unwrap().to_vec();
        assert!(gq.iter().all(|x| x.is_finite()));
        assert!(gq[4..8].iter().all(|&x| x == 0.0));
        assert!(k.grad().unwrap().to_vec().iter().all(|x| x.is_finite()));
    }

    #[test]
    fn causal_first_query_copies_the_first_value() {
        let (q, k, v) = qkv(3, &[2, 4, 3]);
        let opts = SdpaOptions {
            is_causal: true,
            ..Default::default()
        };

        let y = scaled_dot_product_attention(&q, &k, &v, None, opts).unwrap();

        let (y, v) = (y.value(), v.value());
        for b in 0..2 {
            for d in 0..3 {
                let (got, want) = (y.get(&[b, 0, d]).unwrap(), v.get(&[b, 0, d]).unwrap());
                assert!((got - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn dropout_needs_a_generator_and_a_probability() {
        let (q, k, v) = qkv(4, &[2, 3]);
        let no_gen = SdpaOptions {
            dropout_p: 0.5,
            ..Default::default()
        };
        let bad_p = SdpaOptions {
            dropout_p: 1.5,
            ..Default::default()
        };

        assert!(scaled_dot_product_attention(&q, &k, &v, None, no_gen).is_err());
        assert!(scaled_dot_product_attention(&q, &k, &v, None, bad_p).is_err());
    }

    #[test]
    fn dropout_is_seeded_and_keeps_the_expected_fraction() {
        let mask = DropoutMask { p: 0.25, seed: 9 };

        let t: Tensor<f64> = mask.tensor(&[100, 100]);

        let kept = t.to_vec().iter().filter(|&&x| x != 0.0).count();
        assert!((7200..7800).contains(&kept), "kept {kept}");
        assert_eq!(t, mask.tensor(&[100, 100]));
        assert!(t
            .to_vec()
            .iter()
            .all(|&x| x == 0.0 || (x - 1.0 / 0.75).abs() < 1e-12));
    }

    #[test]
    fn mismatched_shapes_are_rejected() {
        let mut gen = Generator::new(5);
        let q = Var::new(gen.randn::<f64>(&[2, 3, 4]));
        let k = Var::new(gen.randn::<f64>(&[2, 5, 3]));
        let bad_mask = AttnMask::Additive(Tensor::zeros(&[4, 5]));

        assert!(scaled_dot_product_attention(&q, &k, &k, None, Default::default()).is_err());
        let k = Var::new(gen.randn::<f64>(&[2, 5, 4]));
        let r = scaled_dot_product_attention(&q, &k, &k, Some(&bad_mask), Default::default());
        assert!(r.is_err());
    }
}
