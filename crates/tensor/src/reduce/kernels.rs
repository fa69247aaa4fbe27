//! How a reduction walks its input, and the inner loops it runs.
//!
//! Every reduction sees its input as `outer` blocks of `len` reduced positions by `inner`
//! columns, in row-major order ([`Blocks`]). When `inner == 1` each output reduces one
//! contiguous lane (the common case: the last axis of a contiguous tensor), and a tight loop
//! runs per lane; otherwise a column kernel walks the block a row at a time and updates up to
//! [`COL_BLOCK`] running results side by side, which reads memory in order. Work is split
//! across rayon's threads by output position only, and each output is always computed by the
//! same sequence of operations, so results do not depend on the thread count.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::parallel::{CHUNK, PAR_THRESHOLD};
use crate::shape::{normalize_dim, normalize_dims, numel};
use crate::tensor::Tensor;

/// Columns that one task of a column kernel updates side by side.
pub(super) const COL_BLOCK: usize = 256;

/// Rows a column sum adds into a partial result before adding that to the running total,
/// which keeps the rounding error of long columns near `(ROW_BLOCK + len / ROW_BLOCK) * eps`.
const ROW_BLOCK: usize = 128;

/// A reduction's input: `outer` blocks, each `len` reduced positions by `inner` columns.
pub(super) struct Blocks<'a, T: Element> {
    /// The elements, row-major in `(outer, len, inner)` order.
    pub data: Cow<'a, [T]>,
    /// Number of independent blocks before the reduced positions.
    pub outer: usize,
    /// Number of reduced positions per output.
    pub len: usize,
    /// Number of columns after the reduced positions.
    pub inner: usize,
}

/// A run of up to [`COL_BLOCK`] neighbouring columns of one block, as a column kernel sees it.
pub(super) struct ColBlock<'a, T> {
    data: &'a [T],
    /// Number of rows (reduced positions).
    pub len: usize,
    stride: usize,
    width: usize,
}

impl<'a, T> ColBlock<'a, T> {
    /// Row `i` of the run: `width` neighbouring elements.
    pub fn row(&self, i: usize) -> &'a [T] {
        &self.data[i * self.stride..i * self.stride + self.width]
    }
}

/// Normalises the dims of a reduction: an empty list means every dim. A 0-d tensor accepts
/// dim `0` or `-1` as PyTorch does, and reduces nothing.
///
/// # Errors
/// [`TensorError::Dim`] for a dim out of range, [`TensorError::InvalidArgument`] for a repeat.
pub(super) fn normalize_axes(op: &'static str, dims: &[isize], rank: usize) -> Result<Vec<usize>> {
    if rank == 0 {
        normalize_dims(op, dims, 1)?;
        return Ok(Vec::new());
    }
    if dims.is_empty() {
        return Ok((0..rank).collect());
    }
    normalize_dims(op, dims, rank)
}

/// Normalises the single dim of `softmax`, `argmax` and friends (a 0-d tensor takes 0 or -1).
///
/// # Errors
/// [`TensorError::Dim`] if `dim` is out of range.
pub(super) fn normalize_axis(op: &'static str, dim: isize, rank: usize) -> Result<Vec<usize>> {
    if rank == 0 {
        normalize_dim(op, dim, 1)?;
        return Ok(Vec::new());
    }
    Ok(vec![normalize_dim(op, dim, rank)?])
}

/// The shape left after reducing `axes` (sorted): removed, or kept with size 1.
pub(super) fn reduced_shape(shape: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.len());
    for (a, &n) in shape.iter().enumerate() {
        if !axes.contains(&a) {
            out.push(n);
        } else if keepdim {
            out.push(1);
        }
    }
    out
}

/// Rejects a reduction without identity (max, argmax) over an axis of size 0.
///
/// # Errors
/// [`TensorError::InvalidArgument`] naming the first empty axis.
pub(super) fn check_nonempty(op: &'static str, shape: &[usize], axes: &[usize]) -> Result<()> {
    match axes.iter().find(|&&a| shape[a] == 0) {
        Some(a) => Err(TensorError::InvalidArgument {
            op,
            reason: format!("cannot reduce over dim {a} of size 0 in shape {shape:?}"),
        }),
        None => Ok(()),
    }
}

/// Arranges `x` for a reduction over `axes` (sorted, distinct).
///
/// Axes of size 1 do not matter. When the others are neighbours (the usual case) a contiguous
/// tensor is used in place and any other is copied once in row-major order; otherwise the
/// kept axes are moved in front of the reduced ones in the copy, which makes `inner` 1.
pub(super) fn blocks<'a, T: Element>(x: &'a Tensor<T>, axes: &[usize]) -> Blocks<'a, T> {
    let shape = x.shape();
    let active: Vec<usize> = axes.iter().copied().filter(|&a| shape[a] != 1).collect();
    let (Some(&first), Some(&last)) = (active.first(), active.last()) else {
        return Blocks {
            data: x.contiguous_slice(),
            outer: x.numel(),
            len: 1,
            inner: 1,
        };
    };
    let adjacent = (first..=last).all(|a| shape[a] == 1 || active.contains(&a));
    if adjacent {
        return Blocks {
            data: x.contiguous_slice(),
            outer: numel(&shape[..first]),
            len: numel(&shape[first..=last]),
            inner: numel(&shape[last + 1..]),
        };
    }
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !active.contains(a)).collect();
    let order: Vec<usize> = kept.iter().chain(&active).copied().collect();
    Blocks {
        data: Cow::Owned(permuted_copy(&x.contiguous_slice(), shape, &order)),
        outer: kept.iter().map(|&a| shape[a]).product(),
        len: active.iter().map(|&a| shape[a]).product(),
        inner: 1,
    }
}

/// The row-major `src` of `shape` copied into the row-major order of its axes listed as
/// `order`: whole runs of the trailing axes that `order` leaves in place are moved at once.
fn permuted_copy<T: Element>(src: &[T], shape: &[usize], order: &[usize]) -> Vec<T> {
    if src.is_empty() {
        return Vec::new();
    }
    let rank = shape.len();
    let mut in_place = 0;
    while in_place < rank && order[rank - 1 - in_place] == rank - 1 - in_place {
        in_place += 1;
    }
    let run = numel(&shape[rank - in_place..]);
    let mut strides = vec![1; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let moved = &order[..rank - in_place];
    let mut out = Vec::with_capacity(src.len());
    let mut index = vec![0; moved.len()];
    loop {
        let at: usize = moved
            .iter()
            .zip(&index)
            .map(|(&a, &i)| i * strides[a])
            .sum();
        out.extend_from_slice(&src[at..at + run]);
        let mut d = moved.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            index[d] += 1;
            if index[d] < shape[moved[d]] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// Whether a kernel over `n` elements should use rayon's threads.
fn parallel(n: usize) -> bool {
    n >= PAR_THRESHOLD && rayon::current_num_threads() > 1
}

/// One output per `(outer, inner)` position: `row` reduces a contiguous lane when
/// `inner == 1`, `cols` reduces a [`ColBlock`] into as many outputs otherwise.
pub(super) fn reduce_blocks<T, U>(
    b: &Blocks<'_, T>,
    row: impl Fn(&[T]) -> U + Sync,
    cols: impl Fn(&ColBlock<'_, T>, &mut [U]) + Sync,
) -> Vec<U>
where
    T: Element,
    U: Copy + Default + Send,
{
    if b.inner == 1 {
        reduce_rows(b, row)
    } else {
        reduce_cols(b, cols)
    }
}

/// One output per lane of a `(outer, len)` layout (`inner` must be 1).
pub(super) fn reduce_rows<T, U>(b: &Blocks<'_, T>, row: impl Fn(&[T]) -> U + Sync) -> Vec<U>
where
    T: Element,
    U: Copy + Default + Send,
{
    debug_assert_eq!(b.inner, 1, "bug: reduce_rows needs contiguous lanes");
    let len = b.len;
    let data = &b.data[..];
    let lane = |o: usize| &data[o * len..(o + 1) * len];
    let mut out = vec![U::default(); b.outer];
    if parallel(data.len()) {
        let per_task = (CHUNK / len.max(1)).max(1);
        out.par_chunks_mut(per_task)
            .enumerate()
            .for_each(|(task, outs)| {
                for (k, o) in outs.iter_mut().enumerate() {
                    *o = row(lane(task * per_task + k));
                }
            });
    } else {
        for (o, v) in out.iter_mut().enumerate() {
            *v = row(lane(o));
        }
    }
    out
}

/// One output per column of each block, computed by `cols` on runs of [`COL_BLOCK`] columns.
pub(super) fn reduce_cols<T, U>(
    b: &Blocks<'_, T>,
    cols: impl Fn(&ColBlock<'_, T>, &mut [U]) + Sync,
) -> Vec<U>
where
    T: Element,
    U: Copy + Default + Send,
{
    let (len, inner) = (b.len, b.inner);
    let data = &b.data[..];
    let run = |o: usize, c: usize, outs: &mut [U]| {
        let start = o * len * inner + c * COL_BLOCK;
        let end = if len == 0 {
            start
        } else {
            start + (len - 1) * inner + outs.len()
        };
        let block = ColBlock {
            data: &data[start..end],
            len,
            stride: inner,
            width: outs.len(),
        };
        cols(&block, outs);
    };
    let mut out = vec![U::default(); b.outer * inner];
    if inner == 0 {
        return out;
    }
    if parallel(data.len()) {
        out.par_chunks_mut(inner).enumerate().for_each(|(o, outs)| {
            outs.par_chunks_mut(COL_BLOCK)
                .enumerate()
                .for_each(|(c, w)| run(o, c, w));
        });
    } else {
        for (o, outs) in out.chunks_mut(inner).enumerate() {
            for (c, w) in outs.chunks_mut(COL_BLOCK).enumerate() {
                run(o, c, w);
            }
        }
    }
    out
}

/// Fills `n_rows` rows of `row_len` elements, row `r` by `f(r, row)`, in parallel for large
/// outputs (each row is written by one call, so the split does not change any value).
pub(super) fn map_rows<T: Element>(
    n_rows: usize,
    row_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let mut out = vec![T::zero(); n_rows * row_len];
    if row_len == 0 {
        return out;
    }
    if parallel(out.len()) {
        let per_task = (CHUNK / row_len).max(1);
        out.par_chunks_mut(per_task * row_len)
            .enumerate()
            .for_each(|(task, rows)| {
                for (k, row) in rows.chunks_mut(row_len).enumerate() {
                    f(task * per_task + k, row);
                }
            });
    } else {
        for (r, row) in out.chunks_mut(row_len).enumerate() {
            f(r, row);
        }
    }
    out
}

/// `sum_i f(xs[i])`, deterministically: fixed chunks of [`CHUNK`], each summed with eight
/// accumulators, the chunk sums added in order (the same scheme as `parallel::sum_slice`).
pub(super) fn sum_map<T: Element>(xs: &[T], f: impl Fn(T) -> T + Sync) -> T {
    let chunk_sum = |c: &[T]| {
        let mut acc = [T::zero(); 8];
        let mut groups = c.chunks_exact(8);
        for g in &mut groups {
            for k in 0..8 {
                acc[k] += f(g[k]);
            }
        }
        let mut total =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for &x in groups.remainder() {
            total += f(x);
        }
        total
    };
    let partial: Vec<T> = if parallel(xs.len()) {
        xs.par_chunks(CHUNK).map(chunk_sum).collect()
    } else {
        xs.chunks(CHUNK).map(chunk_sum).collect()
    };
    partial.into_iter().fold(T::zero(), |acc, x| acc + x)
}

/// `sum_i a[i] * b[i]` with eight accumulators (for one lane; `a` and `b` have one length).
pub(super) fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let mut ga = a.chunks_exact(8);
    let mut gb = b.chunks_exact(8);
    for (x, y) in (&mut ga).zip(&mut gb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut total =
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (&x, &y) in ga.remainder().iter().zip(gb.remainder()) {
        total += x * y;
    }
    total
}

/// Folds a lane with `f` over eight interleaved accumulators started at `identity`.
/// `f` must be associative and commutative up to the values it can return (max, min).
pub(super) fn fold_lane<T: Element>(xs: &[T], identity: T, f: impl Fn(T, T) -> T) -> T {
    let mut acc = [identity; 8];
    let mut groups = xs.chunks_exact(8);
    for g in &mut groups {
        for k in 0..8 {
            acc[k] = f(acc[k], g[k]);
        }
    }
    let mut total = f(
        f(f(acc[0], acc[1]), f(acc[2], acc[3])),
        f(f(acc[4], acc[5]), f(acc[6], acc[7])),
    );
    for &x in groups.remainder() {
        total = f(total, x);
    }
    total
}

/// Folds each column of a run with `f`, starting from `identity`.
pub(super) fn fold_cols<T: Element>(
    c: &ColBlock<'_, T>,
    out: &mut [T],
    identity: T,
    f: impl Fn(T, T) -> T,
) {
    out.fill(identity);
    for i in 0..c.len {
        for (o, &x) in out.iter_mut().zip(c.row(i)) {
            *o = f(*o, x);
        }
    }
}

/// Sums each column of a run, after adding row `i` into a scratch row with `add(scratch, i)`.
/// Rows are added in blocks of [`ROW_BLOCK`] whose partial sums are then added in order.
pub(super) fn sum_cols_with<T: Element>(
    c: &ColBlock<'_, T>,
    out: &mut [T],
    add: impl Fn(&mut [T], &[T]),
) {
    let mut scratch = [T::zero(); COL_BLOCK];
    let part = &mut scratch[..out.len()];
    out.fill(T::zero());
    let mut i = 0;
    while i < c.len {
        part.fill(T::zero());
        for r in i..(i + ROW_BLOCK).min(c.len) {
            add(part, c.row(r));
        }
        for (o, &p) in out.iter_mut().zip(part.iter()) {
            *o += p;
        }
        i += ROW_BLOCK;
    }
}

/// Adds a row into a partial column sum.
pub(super) fn add_row<T: Element>(part: &mut [T], row: &[T]) {
    for (p, &x) in part.iter_mut().zip(row) {
        *p += x;
    }
}

/// The larger of two values; NaN wins, as in PyTorch's `max`.
pub(super) fn max_nan<T: Element>(a: T, b: T) -> T {
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

/// The smaller of two values; NaN wins, as in PyTorch's `min`.
pub(super) fn min_nan<T: Element>(a: T, b: T) -> T {
    if b < a || b.is_nan() {
        b
    } else {
        a
    }
}

/// The first position of the best value of a non-empty lane and that value, `better(x, best)`
/// saying whether `x` replaces the current best.
pub(super) fn arg_lane<T: Element>(xs: &[T], better: impl Fn(T, T) -> bool) -> (T, usize) {
    let mut best = (xs[0], 0);
    for (i, &x) in xs.iter().enumerate().skip(1) {
        if better(x, best.0) {
            best = (x, i);
        }
    }
    best
}

/// [`arg_lane`] for each column of a non-empty run.
pub(super) fn arg_cols<T: Element>(
    c: &ColBlock<'_, T>,
    out: &mut [(T, usize)],
    better: impl Fn(T, T) -> bool,
) {
    for (o, &x) in out.iter_mut().zip(c.row(0)) {
        *o = (x, 0);
    }
    for i in 1..c.len {
        for (o, &x) in out.iter_mut().zip(c.row(i)) {
            if better(x, o.0) {
                *o = (x, i);
            }
        }
    }
}

/// Whether `x` replaces `best` in an argmax: larger, or the first NaN.
pub(super) fn beats_max<T: Element>(x: T, best: T) -> bool {
    x > best || (x.is_nan() && !best.is_nan())
}

/// Whether `x` replaces `best` in an argmin: smaller, or the first NaN.
pub(super) fn beats_min<T: Element>(x: T, best: T) -> bool {
    x < best || (x.is_nan() && !best.is_nan())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arange(shape: &[usize]) -> Tensor<f64> {
        let data = (0..numel(shape)).map(|i| i as f64).collect();
        Tensor::from_vec(data, shape).unwrap()
    }

    #[test]
    fn blocks_use_contiguous_input_in_place_for_neighbouring_axes() {
        let x = arange(&[2, 3, 4, 5]);

        let b = blocks(&x, &[1, 2]);

        assert!(matches!(b.data, Cow::Borrowed(_)));
        assert_eq!((b.outer, b.len, b.inner), (2, 12, 5));
    }

    #[test]
    fn blocks_skip_axes_of_size_one_when_testing_neighbours() {
        let x = arange(&[3, 1, 4]);

        let b = blocks(&x, &[0, 2]);

        assert!(matches!(b.data, Cow::Borrowed(_)));
        assert_eq!((b.outer, b.len, b.inner), (1, 12, 1));
    }

    #[test]
    fn blocks_move_kept_axes_first_for_scattered_axes() {
        let x = arange(&[2, 3, 2]);

        let b = blocks(&x, &[0, 2]);

        assert_eq!((b.outer, b.len, b.inner), (3, 4, 1));
        let expected: Vec<f64> = vec![0., 1., 6., 7., 2., 3., 8., 9., 4., 5., 10., 11.];
        assert_eq!(b.data.to_vec(), expected);
    }

    #[test]
    fn column_sum_matches_row_sum_across_column_runs() {
        let (len, inner) = (300, COL_BLOCK + 7);
        let x = arange(&[len, inner]);
        let b = blocks(&x, &[0]);

        let sums = reduce_blocks(&b, |_| 0.0, |c, out| sum_cols_with(c, out, add_row));

        assert_eq!(sums.len(), inner);
        for (j, &s) in sums.iter().enumerate() {
            let expected: f64 = (0..len).map(|i| (i * inner + j) as f64).sum();
            assert_eq!(s, expected);
        }
    }

    #[test]
    fn arg_lane_takes_first_of_ties_and_first_nan() {
        let ties = [1.0, 3.0, 3.0, 2.0];
        let nans = [1.0, f64::NAN, 5.0, f64::NAN];

        assert_eq!(arg_lane(&ties, beats_max).1, 1);
        assert_eq!(arg_lane(&[2.0, 0.0, 0.0], beats_min).1, 1);
        assert_eq!(arg_lane(&nans, beats_max).1, 1);
        assert_eq!(arg_lane(&nans, beats_min).1, 1);
    }

    #[test]
    fn max_fold_propagates_nan_from_any_lane() {
        let mut xs = vec![0.0f32; 21];
        xs[13] = f32::NAN;
        xs[20] = 5.0;

        assert!(fold_lane(&xs, f32::NEG_INFINITY, max_nan).is_nan());
        assert!(fold_lane(&xs, f32::INFINITY, min_nan).is_nan());
        assert_eq!(fold_lane(&xs[..13], f32::NEG_INFINITY, max_nan), 0.0);
    }
}
