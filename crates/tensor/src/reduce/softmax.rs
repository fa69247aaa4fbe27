//! Softmax and log-softmax along one dim, and their backward kernels.
//!
//! Both subtract the maximum of each lane before exponentiating, so logits of any finite size
//! give finite results. Non-finite lanes follow PyTorch: a lane that is entirely `-inf` (a fully
//! masked attention row) gives NaN, since `-inf - (-inf)` is NaN; a lane holding `+inf` gives
//! NaN likewise. Masking that must yield zeros for fully masked rows belongs to the caller
//! (attention handles it there).

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::parallel::pairwise_sum;
use crate::tensor::Tensor;

use super::kernels::{
    blocks, dot, fold_cols, fold_lane, map_rows, max_nan, normalize_axis, reduce_cols,
    sum_cols_with, sum_map, ColBlock, COL_BLOCK,
};

impl<T: Element> Tensor<T> {
    /// Softmax along `dim`, shifted by the lane maximum for numerical stability.
    ///
    /// ```text
    /// y_i = exp(x_i - m) / sum_j exp(x_j - m)     where m = max_j x_j
    /// backward: dx_i = y_i * (g_i - sum_j g_j * y_j)     where g = upstream gradient
    /// ```
    ///
    /// A lane that is all `-inf`, or holds `+inf` or NaN, gives NaN throughout, as in PyTorch.
    /// The backward is [`crate::softmax_backward`].
    ///
    /// # Shapes
    /// - `self`: any shape; output: same shape as `self`
    ///
    /// # Errors
    /// [`TensorError::Dim`] if `dim` is outside `-rank..rank`.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1e4f32, 1e4, -1e4], &[1, 3])?;
    /// assert_eq!(x.softmax(-1)?.to_vec(), vec![0.5, 0.5, 0.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn softmax(&self, dim: isize) -> Result<Tensor<T>> {
        self.softmax_along("softmax", dim, false)
    }

    /// Log-softmax along `dim`, computed as `(x - m) - ln(sum exp(x - m))`, which stays
    /// accurate for large logits where `ln(softmax(x))` would underflow to `-inf`.
    ///
    /// ```text
    /// y_i = (x_i - m) - ln(sum_j exp(x_j - m))     where m = max_j x_j
    /// backward: dx_i = g_i - exp(y_i) * sum_j g_j
    /// ```
    ///
    /// Non-finite lanes behave as in [`Tensor::softmax`]. The backward is
    /// [`crate::log_softmax_backward`].
    ///
    /// # Shapes
    /// - `self`: any shape; output: same shape as `self`
    ///
    /// # Errors
    /// [`TensorError::Dim`] if `dim` is outside `-rank..rank`.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![0.0f64, 0.0], &[2])?;
    /// assert_eq!(x.log_softmax(0)?.to_vec(), vec![-(2f64.ln()); 2]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor<T>> {
        self.softmax_along("log_softmax", dim, true)
    }

    /// Softmax or log-softmax along `dim`.
    fn softmax_along(&self, op: &'static str, dim: isize, log: bool) -> Result<Tensor<T>> {
        let axes = normalize_axis(op, dim, self.ndim())?;
        let b = blocks(self, &axes);
        let data = &b.data[..];
        let (len, inner) = (b.len, b.inner);

        let out = if inner == 1 {
            map_rows(b.outer, len, |r, out| {
                let xs = &data[r * len..(r + 1) * len];
                if log {
                    log_softmax_lane(xs, out);
                } else {
                    softmax_lane(xs, out);
                }
            })
        } else {
            // Per column: the maximum, the shifted sum and its log, then one pass writing
            // each output row of `inner` elements.
            let stats = reduce_cols(&b, max_and_log_sum_cols);
            map_rows(b.outer * len, inner, |r, out| {
                let xs = &data[r * inner..(r + 1) * inner];
                let o = r / len;
                let stats = &stats[o * inner..(o + 1) * inner];
                for ((y, &x), &(m, sum, log_sum)) in out.iter_mut().zip(xs).zip(stats) {
                    *y = if log {
                        (x - m) - log_sum
                    } else {
                        (x - m).exp() / sum
                    };
                }
            })
        };
        Ok(Tensor::from_contiguous(out, self.shape().to_vec()))
    }
}

/// The gradient of [`Tensor::softmax`] along `dim`, from its output `y` and the gradient
/// `grad_y` of the loss with respect to `y`.
///
/// ```text
/// dx_i = y_i * (g_i - sum_j g_j * y_j)     where g = grad_y, sums along dim
/// ```
///
/// # Shapes
/// - `y`, `grad_y`: the same shape; output: that shape
///
/// # Errors
/// [`TensorError::ShapeMismatch`] if the shapes differ, [`TensorError::Dim`] if `dim` is out
/// of range.
///
/// ```
/// # use strata_tensor::{softmax_backward, Tensor};
/// let y = Tensor::from_vec(vec![0.25f64, 0.75], &[2])?;
/// let g = Tensor::from_vec(vec![1.0f64, 1.0], &[2])?;
/// // A constant upstream gradient has no effect through softmax.
/// assert_eq!(softmax_backward(&y, &g, 0)?.to_vec(), vec![0.0, 0.0]);
/// # Ok::<(), strata_tensor::TensorError>(())
/// ```
pub fn softmax_backward<T: Element>(
    y: &Tensor<T>,
    grad_y: &Tensor<T>,
    dim: isize,
) -> Result<Tensor<T>> {
    backward("softmax_backward", y, grad_y, dim, false)
}

/// The gradient of [`Tensor::log_softmax`] along `dim`, from its output `y` and the gradient
/// `grad_y` of the loss with respect to `y`.
///
/// ```text
/// dx_i = g_i - exp(y_i) * sum_j g_j     where g = grad_y, sums along dim
/// ```
///
/// # Shapes
/// - `y`, `grad_y`: the same shape; output: that shape
///
/// # Errors
/// [`TensorError::ShapeMismatch`] if the shapes differ, [`TensorError::Dim`] if `dim` is out
/// of range.
///
/// ```
/// # use strata_tensor::{log_softmax_backward, Tensor};
/// let y = Tensor::from_vec(vec![0.5f64.ln(), 0.5f64.ln()], &[2])?;
/// let g = Tensor::from_vec(vec![1.0f64, 0.0], &[2])?;
/// assert_eq!(log_softmax_backward(&y, &g, 0)?.to_vec(), vec![0.5, -0.5]);
/// # Ok::<(), strata_tensor::TensorError>(())
/// ```
pub fn log_softmax_backward<T: Element>(
    y: &Tensor<T>,
    grad_y: &Tensor<T>,
    dim: isize,
) -> Result<Tensor<T>> {
    backward("log_softmax_backward", y, grad_y, dim, true)
}

/// Shared body of the two backward kernels.
fn backward<T: Element>(
    op: &'static str,
    y: &Tensor<T>,
    grad_y: &Tensor<T>,
    dim: isize,
    log: bool,
) -> Result<Tensor<T>> {
    if y.shape() != grad_y.shape() {
        return Err(TensorError::ShapeMismatch {
            op,
            what: "y and grad_y must have the same shape".into(),
            lhs: y.shape().to_vec(),
            rhs: grad_y.shape().to_vec(),
        });
    }
    let axes = normalize_axis(op, dim, y.ndim())?;
    let yb = blocks(y, &axes);
    let gb = blocks(grad_y, &axes);

    if yb.inner != 1 {
        // Reductions along an inner dim: combine the column sums with broadcasting ops.
        let dim = [dim];
        return if log {
            grad_y.sub(&y.exp().mul(&grad_y.sum_keepdim(&dim)?)?)
        } else {
            let dot = grad_y.mul(y)?.sum_keepdim(&dim)?;
            y.mul(&grad_y.sub(&dot)?)
        };
    }
    let (ys, gs, len) = (&yb.data[..], &gb.data[..], yb.len);
    let out = map_rows(yb.outer, len, |r, out| {
        let (yr, gr) = (&ys[r * len..(r + 1) * len], &gs[r * len..(r + 1) * len]);
        if log {
            let total = pairwise_sum(gr);
            for ((o, &y), &g) in out.iter_mut().zip(yr).zip(gr) {
                *o = g - y.exp() * total;
            }
        } else {
            let total = dot(gr, yr);
            for ((o, &y), &g) in out.iter_mut().zip(yr).zip(gr) {
                *o = y * (g - total);
            }
        }
    });
    Ok(Tensor::from_contiguous(out, y.shape().to_vec()))
}

/// Softmax of one contiguous lane into `out`.
fn softmax_lane<T: Element>(xs: &[T], out: &mut [T]) {
    let m = fold_lane(xs, T::neg_infinity(), max_nan);
    for (y, &x) in out.iter_mut().zip(xs) {
        *y = (x - m).exp();
    }
    let total = pairwise_sum(out);
    for y in out.iter_mut() {
        *y = *y / total;
    }
}

/// Log-softmax of one contiguous lane into `out`.
fn log_softmax_lane<T: Element>(xs: &[T], out: &mut [T]) {
    let m = fold_lane(xs, T::neg_infinity(), max_nan);
    for (y, &x) in out.iter_mut().zip(xs) {
        *y = x - m;
    }
    let log_sum = sum_map(out, |s| s.exp()).ln();
    for y in out.iter_mut() {
        *y -= log_sum;
    }
}

/// For each column of a run: the maximum `m`, `s = sum exp(x - m)` and `ln s`.
fn max_and_log_sum_cols<T: Element>(c: &ColBlock<'_, T>, out: &mut [(T, T, T)]) {
    let width = out.len();
    let mut max = [T::zero(); COL_BLOCK];
    let mut sum = [T::zero(); COL_BLOCK];
    let (max, sum) = (&mut max[..width], &mut sum[..width]);
    fold_cols(c, max, T::neg_infinity(), max_nan);
    sum_cols_with(c, sum, |part, row| {
        for ((p, &x), &m) in part.iter_mut().zip(row).zip(max.iter()) {
            *p += (x - m).exp();
        }
    });
    for ((o, &m), &s) in out.iter_mut().zip(max.iter()).zip(sum.iter()) {
        *o = (m, s, s.ln());
    }
}
