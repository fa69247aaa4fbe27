//! Linear algebra: matmul with numpy.matmul semantics, outer and dot, on a tuned GEMM.

use crate::element::Element;

/// A borrowed matrix: `rows x cols` elements of `data` at `row_stride` and `col_stride`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major matrix over a contiguous slice.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The same elements read as the transposed matrix (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// Multiply-adds below this many (`m * n * k`) run on one thread.
const GEMM_PAR_THRESHOLD: usize = 1 << 18;

/// `out = a @ b` (or `out += a @ b` when `accumulate`), `out` row-major `a.rows x b.cols`.
///
/// Panics on inconsistent sizes: callers check shapes and report them as errors first.
pub(crate) fn gemm_into<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [T],
    accumulate: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && out.len() == m * n,
        "bug: gemm_into sizes disagree"
    );
    assert!(
        a.fits() && b.fits(),
        "bug: gemm_into operand outside its slice"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(T::zero());
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && m * n * k >= GEMM_PAR_THRESHOLD {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `fits` checked that every element addressed through the strides lies inside the
    // operand slices, and `out` holds exactly m * n elements addressed row-major. `out` is a
    // unique borrow, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}
