//! Building blocks for kernels written in other crates: a GEMM on borrowed strided matrices
//! and a vectorised exponential, the two pieces a fused attention or recurrent kernel is
//! made of.
//!
//! These work on slices, not tensors, and run on the calling thread: a kernel that splits its
//! work over rayon's threads calls them from each task, so products are not split a second
//! time inside a task. [`Tensor::strided_data`](crate::Tensor::strided_data) and
//! [`Tensor::strides`](crate::Tensor::strides) give a tensor's elements in the form
//! [`MatRef`] reads.
//!
//! ```
//! use strata_tensor::kernels::{exp_shifted, gemm, MatRef};
//!
//! // (2 x 3) @ (3 x 2)^T read through a transposed view, accumulated into `out`.
//! let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let mut out = [1.0f32; 4];
//! gemm(MatRef::row_major(&a, 2, 3), MatRef::row_major(&a, 2, 3).t(), &mut out, true)?;
//! assert_eq!(out, [15.0, 33.0, 33.0, 78.0]);
//!
//! let mut row = [0.0f32, 1.0, 2.0];
//! let total = exp_shifted(&mut row, 2.0);
//! assert!((total - (1.0 + (-1.0f32).exp() + (-2.0f32).exp())).abs() < 1e-6);
//! # Ok::<(), strata_tensor::TensorError>(())
//! ```

use crate::error::{Result, TensorError};
use crate::fast_math;
use crate::linalg::gemm_with;
pub use crate::linalg::MatRef;
use crate::parallel::pairwise_sum;
use crate::Element;

/// `out = a @ b`, or `out += a @ b` when `accumulate`, with `out` row-major
/// `(a.rows(), b.cols())`, on the calling thread.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] if `a.cols() != b.rows()` or `out` does not hold
/// `a.rows() * b.cols()` elements; [`TensorError::InvalidArgument`] if an operand's strides
/// reach past the end of its slice.
pub fn gemm<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [T],
    accumulate: bool,
) -> Result<()> {
    if a.cols != b.rows || a.rows.checked_mul(b.cols) != Some(out.len()) {
        return Err(TensorError::ShapeMismatch {
            op: "kernels::gemm",
            what: format!(
                "inner sizes or output length differ (output holds {} elements)",
                out.len()
            ),
            lhs: vec![a.rows, a.cols],
            rhs: vec![b.rows, b.cols],
        });
    }
    for (side, m) in [("left", &a), ("right", &b)] {
        if !m.fits() {
            return Err(TensorError::InvalidArgument {
                op: "kernels::gemm",
                reason: format!(
                    "the {side} operand ({} x {}, strides {} and {}) reaches past its {} \
                     elements",
                    m.rows,
                    m.cols,
                    m.row_stride,
                    m.col_stride,
                    m.data.len()
                ),
            });
        }
    }
    gemm_with(a, b, out, accumulate, false);
    Ok(())
}

/// `x <- exp(x - shift)` for each element, and the sum of the results: the inner step of a
/// softmax, with the row maximum as `shift`.
///
/// `f32` runs a branch-free polynomial `exp` (about 1.5 ulps, see the crate's GELU kernels)
/// on the CPU's widest vector instructions, and flushes results below `e^-87` (about
/// `1.6e-38`, the bottom of the normal `f32` range) to 0, where libm goes on into subnormals;
/// `f64` calls libm. The sum adds eight running
/// sums, so it is the same on every call for the same input.
pub fn exp_shifted<T: Element>(xs: &mut [T], shift: T) -> T {
    match (
        fast_math::as_f32_mut(xs),
        fast_math::as_f32(std::slice::from_ref(&shift)),
    ) {
        (Some(xs32), Some(&[shift32])) => fast_math::exp_shifted(xs32, shift32),
        _ => xs.iter_mut().for_each(|x| *x = (*x - shift).exp()),
    }
    pairwise_sum(xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_reads_strided_operands_and_accumulates() {
        // a: rows 0 and 2 of a 3 x 4 buffer, every other column.
        let buf: Vec<f64> = (0..12).map(f64::from).collect();
        let a = MatRef::strided(&buf, 2, 2, 8, 2);
        let b = MatRef::row_major(&[1.0, 2.0, 3.0, 4.0], 2, 2);
        let mut out = vec![10.0; 4];

        gemm(a, b, &mut out, true).unwrap();

        // a = [[0, 2], [8, 10]]
        assert_eq!(out, vec![16.0, 18.0, 48.0, 66.0]);
        gemm(a, b, &mut out, false).unwrap();
        assert_eq!(out, vec![6.0, 8.0, 38.0, 56.0]);
    }

    #[test]
    fn gemm_rejects_mismatched_sizes_and_strides_past_the_slice() {
        let buf = [1.0f32; 6];
        let a = MatRef::row_major(&buf, 2, 3);
        let mut out = [0.0f32; 4];

        let err = gemm(a, a, &mut out, false).unwrap_err();
        assert!(matches!(err, TensorError::ShapeMismatch { .. }), "{err}");
        let err = gemm(a, a.t(), &mut [0.0; 3], false).unwrap_err();
        assert!(matches!(err, TensorError::ShapeMismatch { .. }), "{err}");
        let too_far = MatRef::strided(&buf, 2, 3, 4, 1);
        let err = gemm(too_far, a.t(), &mut out, false).unwrap_err();
        assert!(err.to_string().contains("reaches past"), "{err}");
        // Sizes whose product wraps around are rejected, not wrapped.
        let rows = MatRef::strided(&buf, 1usize << 63, 1, 0, 0);
        let err = gemm(rows, MatRef::row_major(&buf, 1, 2), &mut [], false).unwrap_err();
        assert!(matches!(err, TensorError::ShapeMismatch { .. }), "{err}");
        let none: [f32; 0] = [];
        let tall = MatRef::row_major(&none, usize::MAX, 0);
        let err = gemm(tall, MatRef::row_major(&none, 0, 2), &mut [], false).unwrap_err();
        assert!(matches!(err, TensorError::ShapeMismatch { .. }), "{err}");
        // Strides whose offsets would wrap around are rejected, not wrapped.
        let wraps = MatRef::strided(&buf, 3, 2, usize::MAX / 2 + 1, 1);
        let err = gemm(wraps, a, &mut [0.0; 9], false).unwrap_err();
        assert!(err.to_string().contains("reaches past"), "{err}");
        let wraps = MatRef::strided(&buf, 3, 2, 1, usize::MAX);
        let err = gemm(a, wraps, &mut out, false).unwrap_err();
        assert!(err.to_string().contains("reaches past"), "{err}");
    }

    #[test]
    fn exp_shifted_matches_libm_in_both_precisions() {
        let xs: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.37 - 9.0).collect();
        let shift = 5.0;
        let mut y64 = xs.clone();
        let mut y32: Vec<f32> = xs.iter().map(|&x| x as f32).collect();

        let s64 = exp_shifted(&mut y64, shift);
        let s32 = exp_shifted(&mut y32, shift as f32);

        let want: Vec<f64> = xs.iter().map(|x| (x - shift).exp()).collect();
        assert_eq!(y64, want);
        for (&got, &x) in y32.iter().zip(&xs) {
            // Against libm on the same f32 input.
            let w = f64::from(x as f32 - shift as f32).exp();
            assert!((f64::from(got) - w).abs() <= 3e-7 * w, "{got} vs {w}");
        }
        let total: f64 = want.iter().sum();
        assert!((s64 - total).abs() < 1e-12 * total);
        assert!((f64::from(s32) - total).abs() < 1e-6 * total);
        assert_eq!(exp_shifted::<f32>(&mut [], 0.0), 0.0);
        assert_eq!(exp_shifted(&mut [f32::NEG_INFINITY], 0.0), 0.0);
    }
}
