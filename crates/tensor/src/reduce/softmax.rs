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
        *y /= total;
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::reduce::tests::{close, naive_groups, permuted_view};
    use crate::shape::numel;
    use crate::Generator;

    /// Softmax along `axis` in f64 by the textbook formula, for logits small enough not to
    /// overflow.
    fn naive_softmax(x: &Tensor<f64>, axis: usize) -> Vec<f64> {
        let (group_of, groups) = naive_groups(x, &[axis]);
        let sums: Vec<f64> = groups
            .iter()
            .map(|g| g.iter().map(|v| v.exp()).sum())
            .collect();
        x.to_vec()
            .iter()
            .zip(&group_of)
            .map(|(v, &g)| v.exp() / sums[g])
            .collect()
    }

    /// `sum(g * f(x))` perturbed element by element, against `grad` from a backward kernel.
    fn check_gradient(
        x: &Tensor<f64>,
        g: &Tensor<f64>,
        f: impl Fn(&Tensor<f64>) -> Tensor<f64>,
        grad: &Tensor<f64>,
    ) {
        let h = 1e-6;
        let loss = |x: &Tensor<f64>| f(x).mul(g).unwrap().sum_all().item().unwrap();
        for (i, &analytic) in grad.to_vec().iter().enumerate() {
            let mut plus = x.contiguous();
            plus.data_mut()[i] += h;
            let mut minus = x.contiguous();
            minus.data_mut()[i] -= h;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h);
            assert!(
                (numeric - analytic).abs() <= 1e-6 * numeric.abs().max(1.0),
                "element {i}: finite difference {numeric} vs backward {analytic}"
            );
        }
    }

    fn softmax_case() -> impl Strategy<Value = (Tensor<f64>, usize)> {
        prop::collection::vec(1usize..=5, 1..=4).prop_flat_map(|shape| {
            let rank = shape.len();
            (
                prop::collection::vec(-20.0f64..20.0, numel(&shape)),
                Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
                0..rank,
            )
                .prop_map(move |(data, order, axis)| {
                    let base = Tensor::from_vec(data, &shape).unwrap();
                    (permuted_view(&base, &order), axis)
                })
        })
    }

    proptest! {
        #[test]
        fn softmax_matches_f64_reference_and_sums_to_one((x, axis) in softmax_case()) {
            let dim = axis as isize;
            let expected = naive_softmax(&x, axis);

            let y = x.softmax(dim).unwrap();
            let log_y = x.log_softmax(dim - x.ndim() as isize).unwrap();
            let totals = y.sum(&[dim]).unwrap();

            prop_assert_eq!(y.shape(), x.shape());
            for ((&got, &log_got), &want) in y.to_vec().iter().zip(&log_y.to_vec()).zip(&expected) {
                prop_assert!(close(got, want, 1e-12), "{} vs {}", got, want);
                prop_assert!(close(log_got, want.ln(), 1e-12), "{} vs {}", log_got, want.ln());
            }
            for total in totals.to_vec() {
                prop_assert!((total - 1.0).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn softmax_of_large_logits_stays_finite_and_correct() {
        let x = Tensor::from_vec(vec![1e4f32, -1e4, 1e4 - 1.0, 0.0], &[1, 4]).unwrap();
        let x_col = Tensor::from_vec(x.to_vec(), &[4, 1]).unwrap();
        let e = (-1.0f64).exp();
        let expected = [1.0 / (1.0 + e), 0.0, e / (1.0 + e), 0.0];

        let y = x.softmax(-1).unwrap().to_vec();
        let y_col = x_col.softmax(0).unwrap().to_vec();
        let log_y = x.log_softmax(-1).unwrap().to_vec();

        for k in 0..4 {
            assert!((f64::from(y[k]) - expected[k]).abs() < 1e-6, "{y:?}");
            assert_eq!(y[k], y_col[k]);
        }
        assert!(log_y.iter().all(|v| v.is_finite()), "{log_y:?}");
        let lse = e.ln_1p();
        assert!((f64::from(log_y[0]) + lse).abs() < 1e-6);
        assert!((f64::from(log_y[1]) + 2e4 + lse).abs() < 1e-2);
    }

    #[test]
    fn softmax_of_all_neg_inf_row_is_nan_as_in_pytorch() {
        // Masked attention rows: partly masked rows give zeros at -inf; a fully masked row has
        // no finite maximum to subtract and gives NaN, which is what PyTorch returns too.
        let inf = f64::NEG_INFINITY;
        let x = Tensor::from_vec(vec![inf, 0.0, 0.0, inf, inf, inf], &[2, 3]).unwrap();
        let x_col = Tensor::from_vec(vec![inf, inf, 0.0, inf, 0.0, inf], &[3, 2]).unwrap();

        let y = x.softmax(1).unwrap().to_vec();
        let y_col = x_col.softmax(0).unwrap().to_vec();
        let log_y = x.log_softmax(1).unwrap().to_vec();

        assert_eq!(&y[..3], &[0.0, 0.5, 0.5]);
        assert!(y[3..].iter().all(|v| v.is_nan()));
        assert_eq!(&log_y[..3], &[inf, -(2f64.ln()), -(2f64.ln())]);
        assert!(log_y[3..].iter().all(|v| v.is_nan()));
        assert_eq!(y_col[0], 0.0);
        assert_eq!(y_col[2], 0.5);
        assert!(y_col[1].is_nan() && y_col[3].is_nan() && y_col[5].is_nan());
    }

    #[test]
    fn backward_kernels_match_central_differences() {
        let mut gen = Generator::new(3);
        for (shape, dim) in [(vec![3, 5], -1), (vec![3, 5], 0), (vec![2, 3, 4], 1)] {
            let x: Tensor<f64> = gen.randn(&shape);
            let g: Tensor<f64> = gen.randn(&shape);

            let y = x.softmax(dim).unwrap();
            let log_y = x.log_softmax(dim).unwrap();
            let grad = softmax_backward(&y, &g, dim).unwrap();
            let log_grad = log_softmax_backward(&log_y, &g, dim).unwrap();

            check_gradient(&x, &g, |x| x.softmax(dim).unwrap(), &grad);
            check_gradient(&x, &g, |x| x.log_softmax(dim).unwrap(), &log_grad);
        }
    }

    #[test]
    fn backward_kernels_reject_mismatched_shapes() {
        let y = Tensor::<f32>::ones(&[2, 3]);
        let g = Tensor::<f32>::ones(&[3, 2]);

        let err = softmax_backward(&y, &g, -1).unwrap_err();

        assert_eq!(
            err.to_string(),
            "softmax_backward: y and grad_y must have the same shape (lhs [2, 3], rhs [3, 2])"
        );
        assert!(log_softmax_backward(&y, &y, 2).is_err());
    }
}
