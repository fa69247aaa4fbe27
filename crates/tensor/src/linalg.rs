//! Linear algebra: matmul with numpy.matmul semantics, outer and dot, on a tuned GEMM.
//!
//! Every product goes to the `gemm` crate, which beat matrixmultiply on the shapes a GPT trains
//! with (the measurements are in the crate's benches and the project docs). Operands are handed
//! over with their strides, so transposed, sliced and broadcast views are multiplied where they
//! lie, without a copy, and broadcast batch dimensions are walked by offset rather than
//! materialised. A batch of small matrices (attention scores, one per head) runs in parallel over
//! the batch; a large matrix is split by the GEMM itself. Either way each output element is
//! computed by one task in a fixed order, so results do not depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::shape::{broadcast_shapes, numel};
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// `self @ weight^T + bias`, PyTorch's `F.linear`: the affine map of a `Linear` layer,
    /// as one product over all leading dims that reads `weight` in place (no transposed
    /// copy) and starts from the bias instead of adding it in a second pass.
    ///
    /// # Shapes
    /// - `self`: `(*, in)`; `weight`: `(out, in)`; `bias`: `(out,)`
    /// - output: `(*, out)`
    ///
    /// # Errors
    /// [`TensorError::Shape`] if `self` is 0-d, `weight` is not 2-D or `bias` is not 1-D;
    /// [`TensorError::ShapeMismatch`] if `in` or `out` disagree.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// let w = Tensor::from_vec(vec![1.0f32, 0.0, 1.0, 1.0, 0.0, 2.0], &[3, 2])?;
    /// let b = Tensor::from_vec(vec![0.5f32, 0.0, -1.0], &[3])?;
    /// let y = x.linear(&w, Some(&b))?;
    /// assert_eq!(y.to_vec(), vec![1.5, 3.0, 3.0, 3.5, 7.0, 7.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn linear(&self, weight: &Tensor<T>, bias: Option<&Tensor<T>>) -> Result<Tensor<T>> {
        if self.ndim() == 0 || weight.ndim() != 2 {
            return Err(TensorError::Shape {
                op: "linear",
                expected: "an input (*, in) and a 2-D weight (out, in)".to_string(),
                got: if self.ndim() == 0 {
                    self.shape().to_vec()
                } else {
                    weight.shape().to_vec()
                },
            });
        }
        let (out_features, in_features) = (weight.shape()[0], weight.shape()[1]);
        if self.shape()[self.ndim() - 1] != in_features {
            return Err(TensorError::ShapeMismatch {
                op: "linear",
                what: "the input's last dim differs from the weight's in_features".to_string(),
                lhs: self.shape().to_vec(),
                rhs: weight.shape().to_vec(),
            });
        }
        if let Some(b) = bias {
            if b.shape() != [out_features] {
                return Err(TensorError::ShapeMismatch {
                    op: "linear",
                    what: "the bias is not (out_features,)".to_string(),
                    lhs: b.shape().to_vec(),
                    rhs: weight.shape().to_vec(),
                });
            }
        }
        let rows: usize = self.shape()[..self.ndim() - 1].iter().product();
        if rows.checked_mul(out_features).is_none() {
            return Err(TensorError::ShapeMismatch {
                op: "linear",
                what: "the result has more elements than fit in memory".to_string(),
                lhs: self.shape().to_vec(),
                rhs: weight.shape().to_vec(),
            });
        }
        let x = self.contiguous_slice();
        let w = weight.strides();
        let w_t = MatRef::strided(weight.strided_data(), out_features, in_features, w[0], w[1]);
        let x = MatRef::row_major(&x, rows, in_features);
        let out = match bias {
            Some(b) => {
                let mut out = b.contiguous_slice().repeat(rows);
                gemm_into(x, w_t.t(), &mut out, true);
                out
            }
            None => product_vec(x, w_t.t()),
        };
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("bug: checked not 0-d") = out_features;
        Ok(Tensor::from_contiguous(out, shape))
    }

    /// Matrix product with the semantics of `numpy.matmul` and `torch.matmul`.
    ///
    /// ```text
    /// out[..., i, j] = sum_p self[..., i, p] * other[..., p, j]
    /// backward: grad_self = g @ other^T,  grad_other = self^T @ g   (g = upstream gradient,
    ///           summed over broadcast batch dims)
    /// ```
    ///
    /// - both 1-D: the dot product, a 0-d tensor;
    /// - `self` 1-D: treated as a `(1, k)` row, and that dim is removed from the result;
    /// - `other` 1-D: treated as a `(k, 1)` column, and that dim is removed from the result;
    /// - otherwise the last two dims are the matrices and the dims before them are batch dims,
    ///   broadcast against each other by NumPy's rules (without copying either operand).
    ///
    /// # Shapes
    /// - `self`: `(*batch_a, m, k)` or `(k,)`
    /// - `other`: `(*batch_b, k, n)` or `(k,)`
    /// - output: `(*broadcast(batch_a, batch_b), m, n)`, minus the dims of 1-D operands
    ///
    /// # Errors
    /// - [`TensorError::Shape`] if either operand is 0-d;
    /// - [`TensorError::ShapeMismatch`] if the inner dims differ
    ///   (`matmul: inner dims differ (lhs [2, 3], rhs [4, 5])`) or the batch dims do not
    ///   broadcast.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// let b = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2])?;
    /// let c = a.matmul(&b)?;
    /// assert_eq!(c.shape(), &[2, 2]);
    /// assert_eq!(c.to_vec(), vec![4.0, 5.0, 10.0, 11.0]);
    ///
    /// let batched = Tensor::<f32>::ones(&[5, 4, 2, 3]).matmul(&b)?;
    /// assert_eq!(batched.shape(), &[5, 4, 2, 2]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn matmul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        for operand in [self, other] {
            if operand.ndim() == 0 {
                return Err(TensorError::Shape {
                    op: "matmul",
                    expected: "at least 1 dim".to_string(),
                    got: operand.shape().to_vec(),
                });
            }
        }
        let lhs = Operand::new(self, Side::Lhs);
        let rhs = Operand::new(other, Side::Rhs);
        let mismatch = |what: &str| TensorError::ShapeMismatch {
            op: "matmul",
            what: what.to_string(),
            lhs: self.shape().to_vec(),
            rhs: other.shape().to_vec(),
        };
        if lhs.cols != rhs.rows {
            return Err(mismatch("inner dims differ"));
        }
        let batch = broadcast_shapes("matmul", &lhs.batch_shape, &rhs.batch_shape)
            .map_err(|_| mismatch("batch dims do not broadcast"))?;
        // Operands with an empty inner dim can ask for more outputs than can be counted.
        let outputs = batch
            .iter()
            .chain([&lhs.rows, &rhs.cols])
            .try_fold(1usize, |n, &d| n.checked_mul(d));
        if outputs.is_none() {
            return Err(mismatch("the result has more elements than fit in memory"));
        }

        let out = batched_product(&lhs, &rhs, &batch);

        let mut shape = batch;
        if self.ndim() > 1 {
            shape.push(lhs.rows);
        }
        if other.ndim() > 1 {
            shape.push(rhs.cols);
        }
        Ok(Tensor::from_contiguous(out, shape))
    }

    /// Outer product of two vectors, like `torch.outer`.
    ///
    /// ```text
    /// out[i, j] = self[i] * other[j]
    /// backward: grad_self = g @ other,  grad_other = g^T @ self   (g = upstream gradient)
    /// ```
    ///
    /// # Shapes
    /// - `self`: `(n,)`, `other`: `(m,)`; output: `(n, m)`
    ///
    /// # Errors
    /// [`TensorError::Shape`] if either operand is not 1-D.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
    /// let b = Tensor::from_vec(vec![3.0f32, 4.0, 5.0], &[3])?;
    /// assert_eq!(a.outer(&b)?.to_vec(), vec![3.0, 4.0, 5.0, 6.0, 8.0, 10.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn outer(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        require_vector("outer", self)?;
        require_vector("outer", other)?;
        let (rows, cols) = (self.shape()[0], other.shape()[0]);
        let column = MatRef {
            data: Tensor::strided_data(self),
            rows,
            cols: 1,
            row_stride: self.strides()[0],
            col_stride: 0,
        };
        let row = MatRef {
            data: Tensor::strided_data(other),
            rows: 1,
            cols,
            row_stride: 0,
            col_stride: other.strides()[0],
        };
        let mut out = vec![T::zero(); rows * cols];
        gemm_into(column, row, &mut out, false);
        Ok(Tensor::from_contiguous(out, vec![rows, cols]))
    }

    /// Dot product of two vectors of the same length, like `torch.dot`; a 0-d tensor.
    ///
    /// ```text
    /// out = sum_i self[i] * other[i]
    /// backward: grad_self = g * other,  grad_other = g * self   (g = upstream gradient)
    /// ```
    ///
    /// # Shapes
    /// - `self`: `(n,)`, `other`: `(n,)`; output: `()`
    ///
    /// # Errors
    /// [`TensorError::Shape`] if either operand is not 1-D, [`TensorError::ShapeMismatch`] if
    /// their lengths differ.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])?;
    /// let b = Tensor::from_vec(vec![4.0f32, 5.0, 6.0], &[3])?;
    /// assert_eq!(a.dot(&b)?.item()?, 32.0);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn dot(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        require_vector("dot", self)?;
        require_vector("dot", other)?;
        if self.shape() != other.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "dot",
                what: "lengths differ".to_string(),
                lhs: self.shape().to_vec(),
                rhs: other.shape().to_vec(),
            });
        }
        self.matmul(other)
    }
}

/// A borrowed matrix: `rows x cols` elements of `data`, element `(i, j)` at
/// `data[i * row_stride + j * col_stride]`.
///
/// The operand type of [`crate::kernels::gemm`]. Building one checks nothing; the product
/// checks that every addressed element lies inside `data`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `rows x cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// A `rows x cols` matrix with element `(i, j)` at `data[i * row_stride + j * col_stride]`.
    pub fn strided(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
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

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Whether every element the matrix addresses lies inside its slice.
    pub(crate) fn fits(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        // Checked: strides from a caller may be large enough to wrap around.
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .zip((self.cols - 1).checked_mul(self.col_stride))
            .and_then(|(r, c)| r.checked_add(c));
        last.is_some_and(|last| last < self.data.len())
    }
}

/// Multiply-adds below this many (`m * n * k`) run on one thread.
const GEMM_PAR_THRESHOLD: usize = 1 << 18;

/// A parallel product is split into blocks of rows, one task each, when every block gets at
/// least this many rows; thinner products use the `gemm` crate's own split.
const MIN_ROWS_PER_TASK: usize = 32;

/// A batch of matrices each needing fewer multiply-adds than this runs in parallel over the
/// batch, one matrix per task. It is the `gemm` crate's own default threshold for splitting one
/// product across threads, so below it a matrix would otherwise run on one thread anyway.
const BATCH_PAR_MAX_WORK: usize = 48 * 48 * 256;

/// `out = a @ b` (or `out += a @ b` when `accumulate`), `out` row-major `a.rows x b.cols`.
///
/// Panics on inconsistent sizes: callers check shapes and report them as errors first.
pub(crate) fn gemm_into<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [T],
    accumulate: bool,
) {
    let threads = rayon::current_num_threads();
    let work = a.rows * a.cols * b.cols;
    let parallel = threads > 1 && work >= GEMM_PAR_THRESHOLD;
    gemm_with(a, b, out, accumulate, parallel);
}

/// [`gemm_into`] on rayon's threads if `parallel`, else on the calling thread.
pub(crate) fn gemm_with<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [T],
    accumulate: bool,
    parallel: bool,
) {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, `out` is initialised as `gemm_core`
    // requires when accumulating, and the product writes only initialised values into it.
    let out = unsafe { &mut *(out as *mut [T] as *mut [MaybeUninit<T>]) };
    unsafe { gemm_core(a, b, out, accumulate, parallel) }
}

/// `a @ b` into a new row-major vector, which the product writes without a zero fill first.
pub(crate) fn product_vec<T: Element>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> Vec<T> {
    let len = a.rows * b.cols;
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && a.rows * a.cols * b.cols >= GEMM_PAR_THRESHOLD;
    let mut out = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    crate::memory::advise_huge_pages(spare);
    // SAFETY: not accumulating, so `gemm_core` does not read the uninitialised output.
    unsafe { gemm_core(a, b, spare, false, parallel) };
    // SAFETY: `gemm_core` wrote all `len` elements (zeros when the inner size is 0).
    unsafe { out.set_len(len) };
    out
}

/// The product behind [`gemm_with`] and [`product_vec`]: writes every element of `out`.
///
/// # Safety
/// When `accumulate`, every element of `out` must be initialised.
unsafe fn gemm_core<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [MaybeUninit<T>],
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && m.checked_mul(n) == Some(out.len()),
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
            out.fill(MaybeUninit::new(T::zero()));
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let parts = if parallel {
        threads.min(m / MIN_ROWS_PER_TASK)
    } else {
        1
    };
    if parts >= 2 {
        // One serial product per block of rows: each task packs its own copy of `b`, which is
        // cheaper for the products of a training step than the `gemm` crate's shared packing
        // and finer-grained split. Rows go through the same code either way, so the result is
        // the same bits as on one thread.
        let rows_per_part = m.div_ceil(parts);
        out.par_chunks_mut(rows_per_part * n)
            .enumerate()
            .for_each(|(part, out)| {
                let r0 = part * rows_per_part;
                let rows = MatRef {
                    data: &a.data[r0 * a.row_stride..],
                    rows: out.len() / n,
                    ..a
                };
                // SAFETY: a block of `out`, initialised wherever `out` is.
                unsafe { gemm_core(rows, b, out, accumulate, false) };
            });
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `fits` checked that every element addressed through the strides lies inside the
    // operand slices, and `out` holds exactly m * n elements addressed row-major. `out` is a
    // unique borrow, so it aliases neither operand; `gemm` reads it only when `accumulate`,
    // when the caller guarantees it is initialised.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr().cast::<T>(),
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

/// Which side of a product an operand is on: a 1-D operand is a row on the left and a column
/// on the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Lhs,
    Rhs,
}

/// One operand of a batched product: matrices laid out by strides inside `data`.
struct Operand<'a, T> {
    data: &'a [T],
    batch_shape: Vec<usize>,
    batch_strides: Vec<usize>,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Element> Operand<'a, T> {
    /// Reads a tensor of rank at least 1 as a batch of matrices, without copying.
    fn new(tensor: &'a Tensor<T>, side: Side) -> Self {
        let (shape, strides) = (tensor.shape(), tensor.strides());
        let rank = shape.len();
        let (rows, cols, row_stride, col_stride) = match (rank, side) {
            (1, Side::Lhs) => (1, shape[0], 0, strides[0]),
            (1, Side::Rhs) => (shape[0], 1, strides[0], 0),
            _ => (
                shape[rank - 2],
                shape[rank - 1],
                strides[rank - 2],
                strides[rank - 1],
            ),
        };
        let batch_rank = rank.saturating_sub(2);
        Self {
            data: Tensor::strided_data(tensor),
            batch_shape: shape[..batch_rank].to_vec(),
            batch_strides: strides[..batch_rank].to_vec(),
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The matrix starting `offset` elements into `data`.
    fn at(&self, offset: usize) -> MatRef<'a, T> {
        MatRef {
            data: &self.data[offset..],
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }

    /// Strides of this operand's batch dims aligned to the broadcast batch shape `batch`:
    /// zero for dims it lacks or repeats.
    fn aligned_batch_strides(&self, batch: &[usize]) -> Vec<usize> {
        let pad = batch.len() - self.batch_shape.len();
        (0..batch.len())
            .map(|d| {
                if d < pad || self.batch_shape[d - pad] == 1 {
                    0
                } else {
                    self.batch_strides[d - pad]
                }
            })
            .collect()
    }
}

/// Computes every product of the broadcast batch `batch` into a new row-major buffer of shape
/// `(*batch, lhs.rows, rhs.cols)`; the operands' shapes have been checked.
fn batched_product<T: Element>(
    lhs: &Operand<'_, T>,
    rhs: &Operand<'_, T>,
    batch: &[usize],
) -> Vec<T> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let batches = numel(batch);
    if batches * m * n == 0 || k == 0 {
        return vec![T::zero(); batches * m * n];
    }
    let lhs_strides = lhs.aligned_batch_strides(batch);
    let rhs_strides = rhs.aligned_batch_strides(batch);

    // One shared right operand and a left operand whose batch and row dims step evenly through
    // memory (the `x @ weight` of a linear layer): a single `(batches * m, k) @ (k, n)` product.
    if rhs_strides.iter().all(|&s| s == 0) {
        let batch_dims = batch.iter().copied().zip(lhs_strides.iter().copied()).rev();
        let dims = std::iter::once((m, lhs.row_stride)).chain(batch_dims);
        if let Some(row_stride) = merged_stride(dims) {
            let tall = MatRef {
                rows: batches * m,
                row_stride,
                ..lhs.at(0)
            };
            return product_vec(tall, rhs.at(0));
        }
    }

    let mut out = vec![T::zero(); batches * m * n];
    let offsets = batch_offsets(batch, &lhs_strides, &rhs_strides);
    let work = m * n * k;
    let product = |(dst, &(a, b)): (&mut [T], &(usize, usize))| {
        gemm_into(lhs.at(a), rhs.at(b), dst, false);
    };
    let parallel = batches > 1
        && work < BATCH_PAR_MAX_WORK
        && batches * work >= GEMM_PAR_THRESHOLD
        && rayon::current_num_threads() > 1;
    if parallel {
        out.par_chunks_mut(m * n)
            .zip(offsets.par_iter())
            .for_each(product);
    } else {
        out.chunks_mut(m * n).zip(offsets.iter()).for_each(product);
    }
    out
}

/// The stride of one axis walking `dims` (size and stride pairs, innermost first) in order, if
/// they can be read as one axis; size-1 dims are skipped.
fn merged_stride(dims: impl Iterator<Item = (usize, usize)>) -> Option<usize> {
    let mut step = None;
    let mut expected = 0;
    for (size, stride) in dims.filter(|&(size, _)| size != 1) {
        match step {
            None => step = Some(stride),
            Some(_) if stride != expected => return None,
            Some(_) => {}
        }
        expected = stride * size;
    }
    Some(step.unwrap_or(0))
}

/// The offsets of the left and right matrices for each batch index, in row-major order.
fn batch_offsets(batch: &[usize], lhs: &[usize], rhs: &[usize]) -> Vec<(usize, usize)> {
    let count = numel(batch);
    let mut offsets = Vec::with_capacity(count);
    let mut index = vec![0; batch.len()];
    let (mut a, mut b) = (0, 0);
    for _ in 0..count {
        offsets.push((a, b));
        for d in (0..batch.len()).rev() {
            index[d] += 1;
            a += lhs[d];
            b += rhs[d];
            if index[d] < batch[d] {
                break;
            }
            a -= lhs[d] * batch[d];
            b -= rhs[d] * batch[d];
            index[d] = 0;
        }
    }
    offsets
}

/// Checks that `tensor` is 1-D, for ops defined on vectors.
fn require_vector<T: Element>(op: &'static str, tensor: &Tensor<T>) -> Result<()> {
    if tensor.ndim() == 1 {
        Ok(())
    } else {
        Err(TensorError::Shape {
            op,
            expected: "a 1-D tensor".to_string(),
            got: tensor.shape().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::random::Generator;
    use crate::shape::contiguous_strides;

    fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
        Tensor::from_vec(data.to_vec(), shape).unwrap()
    }

    /// How a test operand is laid out in memory.
    #[derive(Debug, Clone, Copy)]
    enum Layout {
        /// Row-major and contiguous.
        Contiguous,
        /// A transposed view of a contiguous buffer in the last two dims.
        Transposed,
        /// A view of a contiguous buffer whose dims are stored in a random order.
        Permuted,
    }

    /// A tensor of `shape` with random values, laid out as `layout` says.
    fn operand(gen: &mut Generator, shape: &[usize], layout: Layout) -> Tensor<f64> {
        let rank = shape.len();
        let order: Vec<usize> = match layout {
            Layout::Contiguous => (0..rank).collect(),
            Layout::Transposed if rank >= 2 => {
                let mut order: Vec<usize> = (0..rank).collect();
                order.swap(rank - 2, rank - 1);
                order
            }
            Layout::Transposed => (0..rank).collect(),
            Layout::Permuted => gen.randperm(rank),
        };
        // Dim `order[j]` of the view is dim `j` of the stored buffer.
        let stored: Vec<usize> = order.iter().map(|&d| shape[d]).collect();
        let stored_strides = contiguous_strides(&stored);
        let mut strides = vec![0; rank];
        for (j, &d) in order.iter().enumerate() {
            strides[d] = stored_strides[j];
        }
        gen.uniform(&stored, -1.0, 1.0)
            .restride(shape.to_vec(), strides, 0)
    }

    proptest! {
        #[test]
        fn linear_matches_matmul_then_add(
            lead in proptest::collection::vec(0usize..4, 0..3),
            (n_in, n_out) in (0usize..6, 1usize..6),
            with_bias: bool,
            seed: u64,
            layout in prop_oneof![
                Just(Layout::Contiguous), Just(Layout::Transposed), Just(Layout::Permuted)
            ],
        ) {
            let mut gen = Generator::new(seed);
            let mut x_shape = lead.clone();
            x_shape.push(n_in);
            let x = operand(&mut gen, &x_shape, layout);
            let w = operand(&mut gen, &[n_out, n_in], layout);
            let b = gen.uniform(&[n_out], -1.0, 1.0);
            let bias = with_bias.then_some(&b);

            let y = x.linear(&w, bias).unwrap();

            let mut want = x.matmul(&w.t().unwrap()).unwrap();
            if let Some(b) = bias {
                want = want.add(b).unwrap();
            }
            prop_assert_eq!(y.shape(), want.shape());
            // The product reads the operands in another layout and accumulates onto the
            // bias, so the last bit may differ.
            for (a, b) in y.to_vec().iter().zip(want.to_vec()) {
                prop_assert!((a - b).abs() <= 1e-14 * (1.0 + b.abs()), "{} vs {}", a, b);
            }
        }
    }

    #[test]
    fn linear_rejects_bad_shapes() {
        let x = Tensor::<f32>::ones(&[2, 3]);
        let w = Tensor::<f32>::ones(&[4, 3]);
        assert!(x.linear(&w, None).is_ok());
        let errors = [
            Tensor::<f32>::scalar(1.0).linear(&w, None).unwrap_err(),
            x.linear(&Tensor::ones(&[3]), None).unwrap_err(),
            x.linear(&Tensor::ones(&[4, 2]), None).unwrap_err(),
            x.linear(&w, Some(&Tensor::ones(&[3]))).unwrap_err(),
            // (2^62, 0) @ (0, 4)^T: no input elements, too many outputs to count.
            Tensor::<f32>::zeros(&[1 << 62, 0])
                .linear(&Tensor::zeros(&[4, 0]), None)
                .unwrap_err(),
        ];
        for err in errors {
            assert!(err.to_string().contains("linear"), "{err}");
        }
        let err = Tensor::<f32>::zeros(&[1 << 62, 0])
            .matmul(&Tensor::zeros(&[0, 4]))
            .unwrap_err();
        assert!(err.to_string().contains("more elements than fit"), "{err}");
    }

    /// `numpy.matmul` by its definition: a triple loop reading elements one by one.
    fn naive_matmul(a: &Tensor<f64>, b: &Tensor<f64>) -> (Vec<usize>, Vec<f64>) {
        let a_shape = if a.ndim() == 1 {
            vec![1, a.shape()[0]]
        } else {
            a.shape().to_vec()
        };
        let b_shape = if b.ndim() == 1 {
            vec![b.shape()[0], 1]
        } else {
            b.shape().to_vec()
        };
        let (a_batch, b_batch) = (&a_shape[..a_shape.len() - 2], &b_shape[..b_shape.len() - 2]);
        let batch = broadcast_shapes("naive", a_batch, b_batch).unwrap();
        let (m, k) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
        let n = b_shape[b_shape.len() - 1];
        let pick = |own: &[usize], index: &[usize]| -> Vec<usize> {
            let pad = index.len() - own.len();
            (0..own.len())
                .map(|d| if own[d] == 1 { 0 } else { index[d + pad] })
                .collect()
        };
        let mut values = Vec::new();
        for flat in 0..numel(&batch) {
            let mut index = vec![0; batch.len()];
            let mut rest = flat;
            for d in (0..batch.len()).rev() {
                index[d] = rest % batch[d];
                rest /= batch[d];
            }
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0.0;
                    for p in 0..k {
                        let mut ai = pick(a_batch, &index);
                        if a.ndim() > 1 {
                            ai.push(i);
                        }
                        ai.push(p);
                        let mut bi = pick(b_batch, &index);
                        bi.push(p);
                        if b.ndim() > 1 {
                            bi.push(j);
                        }
                        acc += a.get(&ai).unwrap() * b.get(&bi).unwrap();
                    }
                    values.push(acc);
                }
            }
        }
        let mut shape = batch;
        if a.ndim() > 1 {
            shape.push(m);
        }
        if b.ndim() > 1 {
            shape.push(n);
        }
        (shape, values)
    }

    fn assert_matches_naive(a: &Tensor<f64>, b: &Tensor<f64>) {
        let (shape, expected) = naive_matmul(a, b);

        let got = a.matmul(b).unwrap();

        assert_eq!(got.shape(), &shape[..]);
        for (g, e) in got.to_vec().iter().zip(&expected) {
            assert!((g - e).abs() < 1e-12, "got {g}, expected {e}");
        }
    }

    fn bits(x: &Tensor<f32>) -> Vec<u32> {
        x.to_vec().iter().map(|v| v.to_bits()).collect()
    }

    fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    /// Shapes that `numpy.matmul` accepts: a broadcast batch shape, each operand keeping a
    /// suffix of it with some dims set to 1, and either operand possibly 1-D; each operand in
    /// any layout.
    #[derive(Debug, Clone)]
    struct Case {
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        lhs_layout: Layout,
        rhs_layout: Layout,
        seed: u64,
    }

    fn layout() -> impl Strategy<Value = Layout> {
        prop_oneof![
            Just(Layout::Contiguous),
            Just(Layout::Transposed),
            Just(Layout::Permuted)
        ]
    }

    fn case() -> impl Strategy<Value = Case> {
        let dims = (0usize..5, 0usize..5, 0usize..5);
        let batch = prop::collection::vec(0usize..4, 0..4);
        let keep = (0usize..4, 0usize..4, any::<u8>(), any::<u8>());
        // Values 1, 2 and 3 of the first field make the left, right or both operands 1-D.
        let layout = (0u8..8, layout(), layout(), any::<u64>());
        (dims, batch, keep, layout).prop_map(
            |((m, k, n), batch, (keep_l, keep_r, ones_l, ones_r), (vectors, lt, rt, seed))| {
                let side = |keep: usize, ones: u8, last: [usize; 2]| {
                    let start = batch.len() - keep.min(batch.len());
                    let mut shape: Vec<usize> = batch[start..]
                        .iter()
                        .enumerate()
                        .map(|(d, &s)| if ones >> d & 1 == 1 { 1 } else { s })
                        .collect();
                    shape.extend(last);
                    shape
                };
                let mut lhs = side(keep_l, ones_l, [m, k]);
                let mut rhs = side(keep_r, ones_r, [k, n]);
                if vectors < 4 && vectors & 1 == 1 {
                    lhs = vec![k];
                }
                if vectors < 4 && vectors & 2 == 2 {
                    rhs = vec![k];
                }
                Case {
                    lhs,
                    rhs,
                    lhs_layout: lt,
                    rhs_layout: rt,
                    seed,
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matmul_matches_naive_loop(case in case()) {
            let mut gen = Generator::new(case.seed);
            let a = operand(&mut gen, &case.lhs, case.lhs_layout);
            let b = operand(&mut gen, &case.rhs, case.rhs_layout);

            assert_matches_naive(&a, &b);
        }

        #[test]
        fn matmul_by_identity_is_identity(rows in 0usize..6, cols in 1usize..6, seed: u64) {
            let a: Tensor<f64> = Generator::new(seed).uniform(&[rows, cols], -1.0, 1.0);

            let left = Tensor::eye(rows).matmul(&a).unwrap();
            let right = a.matmul(&Tensor::eye(cols)).unwrap();

            prop_assert_eq!(left.to_vec(), a.to_vec());
            prop_assert_eq!(right.to_vec(), a.to_vec());
        }
    }

    #[test]
    fn matmul_of_two_by_two_matches_hand_computed() {
        let a = t(&[1., 2., 3., 4.], &[2, 2]);
        let b = t(&[5., 6., 7., 8.], &[2, 2]);

        let c = a.matmul(&b).unwrap();

        assert_eq!(c.to_vec(), vec![19., 22., 43., 50.]);
    }

    #[test]
    fn one_dimensional_operands_are_promoted_then_removed() {
        let v = t(&[1., 2., 3.], &[3]);
        let m = t(&[1., 0., 0., 1., 1., 1.], &[3, 2]);
        let m_t = t(&[1., 0., 1., 0., 1., 1.], &[2, 3]);
        let batched = t(
            &[1., 0., 0., 1., 1., 1., 2., 2., 2., 2., 2., 2.],
            &[2, 3, 2],
        );

        let dot = v.matmul(&v).unwrap();
        let row = v.matmul(&m).unwrap();
        let col = m_t.matmul(&v).unwrap();
        let per_batch = v.matmul(&batched).unwrap();

        assert_eq!(dot.shape(), &[] as &[usize]);
        assert_eq!(dot.item().unwrap(), 14.0);
        assert_eq!((row.shape(), row.to_vec()), (&[2][..], vec![4., 5.]));
        assert_eq!((col.shape(), col.to_vec()), (&[2][..], vec![4., 5.]));
        assert_eq!(per_batch.shape(), &[2, 2]);
        assert_eq!(per_batch.to_vec(), vec![4., 5., 12., 12.]);
    }

    #[test]
    fn transposed_views_are_multiplied_without_contiguous_copies() {
        let mut gen = Generator::new(3);
        let a = operand(&mut gen, &[4, 5], Layout::Transposed);
        let b = operand(&mut gen, &[5, 3], Layout::Transposed);

        let (shape, expected) = naive_matmul(&a, &b);
        let got = a.matmul(&b).unwrap();

        assert!(!a.is_contiguous() && !b.is_contiguous());
        assert_eq!(got.shape(), &shape[..]);
        assert!(got
            .to_vec()
            .iter()
            .zip(&expected)
            .all(|(g, e)| (g - e).abs() < 1e-12));
    }

    #[test]
    fn broadcast_views_with_zero_strides_are_read_in_place() {
        // A single row repeated over a batch of 3 and 2 rows, and a column repeated 4 times.
        let row = t(&[1., 2., 3.], &[1, 3]);
        let lhs = row.restride(vec![3, 2, 3], vec![0, 0, 1], 0);
        let column = t(&[1., -1., 2.], &[3, 1]);
        let rhs = column.restride(vec![3, 4], vec![1, 0], 0);

        let out = lhs.matmul(&rhs).unwrap();

        assert_eq!(out.shape(), &[3, 2, 4]);
        assert!(out.to_vec().iter().all(|&v| v == 5.0));
        assert_matches_naive(&lhs, &rhs);
    }

    #[test]
    fn shared_weight_folds_batch_into_rows_only_when_layout_allows() {
        let mut gen = Generator::new(5);
        let weight = operand(&mut gen, &[4, 3], Layout::Contiguous);
        let folded = operand(&mut gen, &[2, 3, 5, 4], Layout::Contiguous);
        // (5, 2, 4) stored, read as (2, 5, 4): batch and row dims do not step evenly.
        let stored: Tensor<f64> = gen.uniform(&[5, 2, 4], -1.0, 1.0);
        let permuted = stored.restride(vec![2, 5, 4], vec![4, 8, 1], 0);

        let merged = merged_stride([(5, 4), (3, 20), (2, 60)].into_iter());
        let not_merged = merged_stride([(5, 8), (2, 4)].into_iter());

        assert_eq!(merged, Some(4));
        assert_eq!(not_merged, None);
        assert_matches_naive(&folded, &weight);
        assert_matches_naive(&permuted, &weight);
    }

    #[test]
    fn zero_inner_dim_gives_zeros_and_empty_dims_give_empty_results() {
        let a = t(&[], &[2, 0]);
        let b = t(&[], &[0, 3]);

        let zeros = a.matmul(&b).unwrap();
        let no_rows = t(&[], &[0, 3]).matmul(&t(&[1.; 12], &[3, 4])).unwrap();
        let no_batch = t(&[], &[0, 2, 3]).matmul(&t(&[1.; 12], &[3, 4])).unwrap();
        let empty_dot = t(&[], &[0]).dot(&t(&[], &[0])).unwrap();

        assert_eq!((zeros.shape(), zeros.to_vec()), (&[2, 3][..], vec![0.0; 6]));
        assert_eq!(no_rows.shape(), &[0, 4]);
        assert_eq!(no_batch.shape(), &[0, 2, 4]);
        assert_eq!(empty_dot.item().unwrap(), 0.0);
    }

    #[test]
    fn shape_errors_name_the_op_and_both_shapes() {
        let a = t(&[0.; 6], &[2, 3]);
        let b = t(&[0.; 20], &[4, 5]);
        let batched_a = t(&[0.; 12], &[2, 2, 3]);
        let batched_b = t(&[0.; 36], &[3, 3, 4]);
        let v = t(&[0.; 3], &[3]);

        let inner = a.matmul(&b).unwrap_err().to_string();
        let batch = batched_a.matmul(&batched_b).unwrap_err().to_string();
        let scalar = Tensor::scalar(1.0).matmul(&a).unwrap_err().to_string();
        let vector = v.matmul(&t(&[0.; 4], &[4])).unwrap_err().to_string();

        assert_eq!(inner, "matmul: inner dims differ (lhs [2, 3], rhs [4, 5])");
        assert_eq!(
            batch,
            "matmul: batch dims do not broadcast (lhs [2, 2, 3], rhs [3, 3, 4])"
        );
        assert_eq!(scalar, "matmul: expected at least 1 dim, got shape []");
        assert_eq!(vector, "matmul: inner dims differ (lhs [3], rhs [4])");
    }

    #[test]
    fn dot_and_outer_accept_only_vectors() {
        let v = t(&[1., 2., 3.], &[3]);
        let m = t(&[0.; 6], &[2, 3]);

        let dot_matrix = v.dot(&m).unwrap_err().to_string();
        let dot_lengths = v.dot(&t(&[1., 2.], &[2])).unwrap_err().to_string();
        let outer_matrix = m.outer(&v).unwrap_err().to_string();

        assert_eq!(dot_matrix, "dot: expected a 1-D tensor, got shape [2, 3]");
        assert_eq!(dot_lengths, "dot: lengths differ (lhs [3], rhs [2])");
        assert_eq!(
            outer_matrix,
            "outer: expected a 1-D tensor, got shape [2, 3]"
        );
    }

    #[test]
    fn outer_reads_strided_vectors() {
        // Every other element of [1, 9, 2, 9, 3]: the view [1, 2, 3].
        let stepped = t(&[1., 9., 2., 9., 3.], &[5]).restride(vec![3], vec![2], 0);
        let b = t(&[1., 10.], &[2]);

        let out = stepped.outer(&b).unwrap();
        let empty = t(&[], &[0]).outer(&b).unwrap();

        assert_eq!(out.shape(), &[3, 2]);
        assert_eq!(out.to_vec(), vec![1., 10., 2., 20., 3., 30.]);
        assert_eq!(empty.shape(), &[0, 2]);
    }

    #[test]
    fn matmul_gives_the_same_bits_on_one_and_two_threads() {
        let mut gen = Generator::new(11);
        // Attention scores: many small products, parallel over the batch.
        let q: Tensor<f32> = gen.randn(&[48, 64, 32]);
        let k: Tensor<f32> = gen.randn(&[48, 64, 32]);
        let k_t = k.restride(vec![48, 32, 64], vec![64 * 32, 1, 32], 0);
        // Large products, split across threads inside the GEMM.
        let a: Tensor<f32> = gen.randn(&[256, 256]);
        let b: Tensor<f32> = gen.randn(&[256, 256]);
        let x: Tensor<f32> = gen.randn(&[768, 512]);
        let w: Tensor<f32> = gen.randn(&[512, 128]);
        // Too few rows to split by rows: the `gemm` crate's own split.
        let thin: Tensor<f32> = gen.randn(&[40, 300]);
        let wide: Tensor<f32> = gen.randn(&[300, 200]);
        let products = |threads| {
            on_threads(threads, || {
                [
                    q.matmul(&k_t),
                    a.matmul(&b),
                    x.matmul(&w),
                    thin.matmul(&wide),
                ]
                .map(|p| bits(&p.unwrap()))
            })
        };

        let one = products(1);

        assert_eq!(one, products(2));
        assert_eq!(one, products(3));
    }

    #[test]
    fn batch_parallel_products_match_serial_ones() {
        let mut gen = Generator::new(12);
        let a: Tensor<f64> = gen.randn(&[40, 30, 20]);
        let b: Tensor<f64> = gen.randn(&[40, 20, 25]);

        let parallel = on_threads(2, || a.matmul(&b).unwrap());

        assert_matches_naive(&a, &b);
        assert_eq!(parallel.to_vec(), a.matmul(&b).unwrap().to_vec());
    }

    #[test]
    fn f32_products_agree_with_f64_ones() {
        let mut gen = Generator::new(13);
        let a: Tensor<f64> = gen.randn(&[3, 17, 33]);
        let b: Tensor<f64> = gen.randn(&[33, 9]);

        let wide = a.matmul(&b).unwrap();
        let narrow = a.cast::<f32>().matmul(&b.cast::<f32>()).unwrap();

        for (x, y) in wide.to_vec().iter().zip(narrow.to_vec()) {
            assert!((x - y as f64).abs() < 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn mat_ref_transpose_swaps_dims_and_strides() {
        let data = [1.0f64, 2., 3., 4., 5., 6.];
        let a = MatRef::row_major(&data, 2, 3);
        let mut out = vec![0.0; 4];

        gemm_into(a, a.t(), &mut out, false);
        gemm_into(a, a.t(), &mut out, true);

        assert_eq!(out, vec![28., 64., 64., 154.]);
    }
}
