//! Reductions over any set of axes, and softmax / log_softmax with their backward kernels.
//!
//! Reductions take their dims as `&[isize]` (negative counts from the end; an empty slice means
//! every dim) and come in pairs, `sum(dims)` dropping the reduced dims and `sum_keepdim(dims)`
//! keeping them with size 1, as PyTorch's `keepdim=True` does. The `_all` forms reduce
//! everything to a 0-d tensor.
//!
//! Reducing the last axis of a contiguous tensor runs a tight loop per row; other layouts are
//! walked a row at a time with the results of neighbouring columns updated side by side (see
//! `reduce/kernels.rs`). Large inputs are split across rayon's threads by output position, so
//! every result is computed by the same operations in the same order whatever the thread count:
//! the answer is bit-for-bit deterministic.

mod kernels;
mod softmax;

pub use softmax::{log_softmax_backward, softmax_backward};

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::index_tensor::IndexTensor;
use crate::parallel::sum_slice;
use crate::tensor::Tensor;
use kernels::{
    add_row, arg_cols, arg_lane, beats_max, beats_min, blocks, check_nonempty, fold_cols,
    fold_lane, max_nan, min_nan, normalize_axes, normalize_axis, reduce_blocks, reduced_shape,
    sum_cols_with, sum_map, ColBlock,
};

impl<T: Element> Tensor<T> {
    /// The sum of every element, as a 0-d tensor (PyTorch's `x.sum()`).
    ///
    /// Deterministic: fixed chunks summed in parallel for large tensors and combined in order.
    ///
    /// ```text
    /// y = sum_i x_i
    /// backward: dx_i = g
    /// ```
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// assert_eq!(x.sum_all().item()?, 10.0);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn sum_all(&self) -> Tensor<T> {
        Tensor::scalar(sum_slice(&self.contiguous_slice()))
    }

    /// The sum over `dims` (all dims when empty), which are removed from the shape.
    ///
    /// ```text
    /// y[k] = sum over the reduced positions r of x[k, r]
    /// backward: dx[k, r] = g[k]
    /// ```
    ///
    /// # Shapes
    /// - `self`: any shape; output: `self`'s shape without `dims`
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a dim outside `-rank..rank`, [`TensorError::InvalidArgument`]
    /// for a repeated dim.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// assert_eq!(x.sum(&[0])?.to_vec(), vec![5.0, 7.0, 9.0]);
    /// assert_eq!(x.sum(&[-1])?.to_vec(), vec![6.0, 15.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn sum(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::Sum, dims, false)
    }

    /// [`Tensor::sum`] keeping the reduced dims with size 1 (PyTorch's `keepdim=True`).
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    pub fn sum_keepdim(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::Sum, dims, true)
    }

    /// The mean of every element, as a 0-d tensor; NaN for an empty tensor.
    pub fn mean_all(&self) -> Tensor<T> {
        let n = T::from_usize(self.numel());
        Tensor::scalar(sum_slice(&self.contiguous_slice()) / n)
    }

    /// The mean over `dims` (all dims when empty), which are removed from the shape; NaN where
    /// the reduced dims hold no element.
    ///
    /// ```text
    /// y[k] = (1/n) sum_r x[k, r]      n = number of reduced positions
    /// backward: dx[k, r] = g[k] / n
    /// ```
    ///
    /// # Shapes
    /// - `self`: any shape; output: `self`'s shape without `dims`
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// assert_eq!(x.mean(&[1])?.to_vec(), vec![2.0, 5.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn mean(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::Mean, dims, false)
    }

    /// [`Tensor::mean`] keeping the reduced dims with size 1.
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    pub fn mean_keepdim(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::Mean, dims, true)
    }

    /// The largest element, as a 0-d tensor; NaN if any element is NaN.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for an empty tensor.
    pub fn max_all(&self) -> Result<Tensor<T>> {
        self.reduce(Reduction::Max, &[], false)
    }

    /// The largest value over `dims` (all dims when empty), which are removed from the shape;
    /// NaN wherever a reduced element is NaN, as in PyTorch's `amax`. For the positions as
    /// well, see [`Tensor::max_dim`].
    ///
    /// ```text
    /// y[k] = max_r x[k, r]
    /// backward: dx[k, r] = g[k] where x[k, r] is the maximum, 0 elsewhere
    /// ```
    ///
    /// # Shapes
    /// - `self`: any shape; output: `self`'s shape without `dims`
    ///
    /// # Errors
    /// As [`Tensor::sum`], and [`TensorError::InvalidArgument`] if a reduced dim has size 0.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 4.0, 2.0, 6.0], &[2, 3])?;
    /// assert_eq!(x.max(&[1])?.to_vec(), vec![5.0, 6.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn max(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::Max, dims, false)
    }

    /// [`Tensor::max`] keeping the reduced dims with size 1.
    ///
    /// # Errors
    /// As [`Tensor::max`].
    pub fn max_keepdim(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::Max, dims, true)
    }

    /// The smallest element, as a 0-d tensor; NaN if any element is NaN.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for an empty tensor.
    pub fn min_all(&self) -> Result<Tensor<T>> {
        self.reduce(Reduction::Min, &[], false)
    }

    /// The smallest value over `dims` (all dims when empty); the mirror of [`Tensor::max`].
    ///
    /// ```text
    /// y[k] = min_r x[k, r]
    /// backward: dx[k, r] = g[k] where x[k, r] is the minimum, 0 elsewhere
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::max`].
    pub fn min(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::Min, dims, false)
    }

    /// [`Tensor::min`] keeping the reduced dims with size 1.
    ///
    /// # Errors
    /// As [`Tensor::max`].
    pub fn min_keepdim(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::Min, dims, true)
    }

    /// The variance of every element, as a 0-d tensor; see [`Tensor::var`] for `correction`.
    pub fn var_all(&self, correction: usize) -> Tensor<T> {
        let xs = self.contiguous_slice();
        Tensor::scalar(var_lane(&xs, correction))
    }

    /// The variance over `dims` (all dims when empty), with PyTorch 2's `correction`: the sum
    /// of squared deviations is divided by `n - correction`, so `1` gives the unbiased sample
    /// variance (PyTorch's default) and `0` the population variance. Where `n <= correction`
    /// the divisor is 0 and the result NaN or infinite, as in PyTorch.
    ///
    /// Computed in two passes (mean, then squared deviations), which stays accurate when the
    /// mean is large compared with the spread.
    ///
    /// ```text
    /// m[k] = (1/n) sum_r x[k, r]
    /// y[k] = sum_r (x[k, r] - m[k])^2 / (n - correction)
    /// backward: dx[k, r] = g[k] * 2 (x[k, r] - m[k]) / (n - correction)
    /// ```
    ///
    /// # Shapes
    /// - `self`: any shape; output: `self`'s shape without `dims`
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[4])?;
    /// assert_eq!(x.var(&[0], 1)?.item()?, 5.0 / 3.0);
    /// assert_eq!(x.var(&[0], 0)?.item()?, 1.25);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn var(&self, dims: &[isize], correction: usize) -> Result<Tensor<T>> {
        self.reduce(Reduction::Var { correction }, dims, false)
    }

    /// [`Tensor::var`] keeping the reduced dims with size 1.
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    pub fn var_keepdim(&self, dims: &[isize], correction: usize) -> Result<Tensor<T>> {
        self.reduce(Reduction::Var { correction }, dims, true)
    }

    /// The standard deviation of every element, as a 0-d tensor: `sqrt(var_all(correction))`.
    pub fn std_all(&self, correction: usize) -> Tensor<T> {
        let xs = self.contiguous_slice();
        Tensor::scalar(var_lane(&xs, correction).sqrt())
    }

    /// The standard deviation over `dims`: the square root of [`Tensor::var`].
    ///
    /// ```text
    /// y[k] = sqrt(var[k])
    /// backward: dx[k, r] = g[k] * (x[k, r] - m[k]) / ((n - correction) * y[k])
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    pub fn std(&self, dims: &[isize], correction: usize) -> Result<Tensor<T>> {
        self.reduce(Reduction::Std { correction }, dims, false)
    }

    /// [`Tensor::std`] keeping the reduced dims with size 1.
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    pub fn std_keepdim(&self, dims: &[isize], correction: usize) -> Result<Tensor<T>> {
        self.reduce(Reduction::Std { correction }, dims, true)
    }

    /// `ln(sum(exp(x)))` over `dims` (all dims when empty), without overflow: the maximum is
    /// taken out before exponentiating. An empty or all `-inf` lane gives `-inf`; a lane
    /// holding `+inf` gives `+inf`; NaN gives NaN, as in PyTorch.
    ///
    /// ```text
    /// m[k] = max_r x[k, r]
    /// y[k] = m[k] + ln(sum_r exp(x[k, r] - m[k]))
    /// backward: dx[k, r] = g[k] * exp(x[k, r] - y[k])      (the softmax of x over dims)
    /// ```
    ///
    /// # Shapes
    /// - `self`: any shape; output: `self`'s shape without `dims`
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1e4f32, 1e4], &[2])?;
    /// let y = x.logsumexp(&[0])?.item()?;
    /// assert!((y - (1e4 + 2f32.ln())).abs() < 1e-3);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn logsumexp(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::LogSumExp, dims, false)
    }

    /// [`Tensor::logsumexp`] keeping the reduced dims with size 1.
    ///
    /// # Errors
    /// As [`Tensor::sum`].
    pub fn logsumexp_keepdim(&self, dims: &[isize]) -> Result<Tensor<T>> {
        self.reduce(Reduction::LogSumExp, dims, true)
    }

    /// The position of the largest value along `dim`, which is removed from the shape. Ties
    /// give the first position, and NaN counts as larger than every number (the first NaN
    /// wins), as in PyTorch.
    ///
    /// # Shapes
    /// - `self`: any shape; output: `self`'s shape without `dim`
    ///
    /// # Errors
    /// [`TensorError::Dim`] if `dim` is outside `-rank..rank`,
    /// [`TensorError::InvalidArgument`] if dim `dim` has size 0.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let logits = Tensor::from_vec(vec![0.1f32, 2.0, 2.0, 5.0, -1.0, 0.0], &[2, 3])?;
    /// assert_eq!(logits.argmax(-1)?.as_slice(), &[1, 0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn argmax(&self, dim: isize) -> Result<IndexTensor> {
        Ok(self.arg_reduce("argmax", dim, false, true)?.1)
    }

    /// [`Tensor::argmax`] keeping `dim` with size 1.
    ///
    /// # Errors
    /// As [`Tensor::argmax`].
    pub fn argmax_keepdim(&self, dim: isize) -> Result<IndexTensor> {
        Ok(self.arg_reduce("argmax", dim, true, true)?.1)
    }

    /// The position of the smallest value along `dim`; the mirror of [`Tensor::argmax`] (ties
    /// give the first position, and the first NaN wins).
    ///
    /// # Errors
    /// As [`Tensor::argmax`].
    pub fn argmin(&self, dim: isize) -> Result<IndexTensor> {
        Ok(self.arg_reduce("argmin", dim, false, false)?.1)
    }

    /// [`Tensor::argmin`] keeping `dim` with size 1.
    ///
    /// # Errors
    /// As [`Tensor::argmax`].
    pub fn argmin_keepdim(&self, dim: isize) -> Result<IndexTensor> {
        Ok(self.arg_reduce("argmin", dim, true, false)?.1)
    }

    /// The largest values along `dim` and their positions (PyTorch's `x.max(dim)`), with the
    /// tie and NaN rules of [`Tensor::argmax`]; `dim` is removed from both shapes.
    ///
    /// ```text
    /// values[k] = x[k, i[k]]      i[k] = first position of max_r x[k, r]
    /// backward: dx[k, i[k]] = g[k], 0 elsewhere
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::argmax`].
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f32, 7.0, 7.0, 1.0], &[2, 2])?;
    /// let (values, indices) = x.max_dim(0)?;
    /// assert_eq!(values.to_vec(), vec![7.0, 7.0]);
    /// assert_eq!(indices.as_slice(), &[1, 0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn max_dim(&self, dim: isize) -> Result<(Tensor<T>, IndexTensor)> {
        self.arg_reduce("max_dim", dim, false, true)
    }

    /// [`Tensor::max_dim`] keeping `dim` with size 1.
    ///
    /// # Errors
    /// As [`Tensor::argmax`].
    pub fn max_dim_keepdim(&self, dim: isize) -> Result<(Tensor<T>, IndexTensor)> {
        self.arg_reduce("max_dim", dim, true, true)
    }

    /// The smallest values along `dim` and their positions (PyTorch's `x.min(dim)`).
    ///
    /// # Errors
    /// As [`Tensor::argmax`].
    pub fn min_dim(&self, dim: isize) -> Result<(Tensor<T>, IndexTensor)> {
        self.arg_reduce("min_dim", dim, false, false)
    }

    /// [`Tensor::min_dim`] keeping `dim` with size 1.
    ///
    /// # Errors
    /// As [`Tensor::argmax`].
    pub fn min_dim_keepdim(&self, dim: isize) -> Result<(Tensor<T>, IndexTensor)> {
        self.arg_reduce("min_dim", dim, true, false)
    }

    /// Sums a broadcast result back to the shape of one of its operands (PyTorch's
    /// `sum_to_size`): the leading dims that `shape` lacks are summed away, and so is every
    /// dim where `shape` has size 1 and `self` does not. This is the backward of broadcasting.
    ///
    /// ```text
    /// y[j] = sum of x[i] over every i that broadcasting maps onto j
    /// ```
    ///
    /// # Shapes
    /// - `self`: `(*lead, *s)`; `shape`: `t` with `t[d] == s[d]` or `t[d] == 1`; output: `t`
    ///
    /// # Errors
    /// [`TensorError::Broadcast`] if `shape` does not broadcast to `self`'s shape.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let grad = Tensor::<f32>::ones(&[4, 2, 3]);
    /// let bias_grad = grad.sum_to_shape(&[1, 3])?;
    /// assert_eq!(bias_grad.shape(), &[1, 3]);
    /// assert_eq!(bias_grad.to_vec(), vec![8.0, 8.0, 8.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let own = self.shape();
        let lead = own.len().wrapping_sub(shape.len());
        let fits = shape.len() <= own.len()
            && shape
                .iter()
                .zip(&own[lead..])
                .all(|(&t, &s)| t == s || t == 1);
        if !fits {
            return Err(TensorError::Broadcast {
                op: "sum_to_shape",
                lhs: own.to_vec(),
                rhs: shape.to_vec(),
            });
        }

        let axes: Vec<usize> = (0..own.len())
            .filter(|&a| a < lead || (shape[a - lead] == 1 && own[a] != 1))
            .collect();
        if axes.is_empty() {
            return Ok(self.clone());
        }
        let b = blocks(self, &axes);
        let out = reduce_blocks(
            &b,
            |xs| sum_slice(xs),
            |c, out| sum_cols_with(c, out, add_row),
        );
        Ok(Tensor::from_contiguous(out, shape.to_vec()))
    }

    /// Runs one of the value reductions over `dims`.
    fn reduce(&self, kind: Reduction, dims: &[isize], keepdim: bool) -> Result<Tensor<T>> {
        let op = kind.name(keepdim);
        let axes = normalize_axes(op, dims, self.ndim())?;
        if matches!(kind, Reduction::Max | Reduction::Min) {
            check_nonempty(op, self.shape(), &axes)?;
        }

        let b = blocks(self, &axes);
        let out = reduce_blocks(&b, |xs| kind.lane(xs), |c, out| kind.cols(c, out));
        Ok(Tensor::from_contiguous(
            out,
            reduced_shape(self.shape(), &axes, keepdim),
        ))
    }

    /// Values and first positions of the maximum (`largest`) or minimum along `dim`.
    fn arg_reduce(
        &self,
        op: &'static str,
        dim: isize,
        keepdim: bool,
        largest: bool,
    ) -> Result<(Tensor<T>, IndexTensor)> {
        let axes = normalize_axis(op, dim, self.ndim())?;
        check_nonempty(op, self.shape(), &axes)?;

        let better = if largest { beats_max } else { beats_min };
        let b = blocks(self, &axes);
        let pairs = reduce_blocks(
            &b,
            |xs| arg_lane(xs, better),
            |c, out| arg_cols(c, out, better),
        );
        let shape = reduced_shape(self.shape(), &axes, keepdim);
        let (values, indices): (Vec<T>, Vec<usize>) = pairs.into_iter().unzip();
        let indices = IndexTensor::from_vec(indices, &shape).expect("bug: one index per output");
        Ok((Tensor::from_contiguous(values, shape), indices))
    }
}

/// The value reductions, dispatched to their lane and column kernels.
#[derive(Debug, Clone, Copy)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
    Var { correction: usize },
    Std { correction: usize },
    LogSumExp,
}

impl Reduction {
    /// The public method name, for error messages.
    fn name(self, keepdim: bool) -> &'static str {
        match (self, keepdim) {
            (Reduction::Sum, false) => "sum",
            (Reduction::Sum, true) => "sum_keepdim",
            (Reduction::Mean, false) => "mean",
            (Reduction::Mean, true) => "mean_keepdim",
            (Reduction::Max, false) => "max",
            (Reduction::Max, true) => "max_keepdim",
            (Reduction::Min, false) => "min",
            (Reduction::Min, true) => "min_keepdim",
            (Reduction::Var { .. }, false) => "var",
            (Reduction::Var { .. }, true) => "var_keepdim",
            (Reduction::Std { .. }, false) => "std",
            (Reduction::Std { .. }, true) => "std_keepdim",
            (Reduction::LogSumExp, false) => "logsumexp",
            (Reduction::LogSumExp, true) => "logsumexp_keepdim",
        }
    }

    /// Reduces one contiguous lane.
    fn lane<T: Element>(self, xs: &[T]) -> T {
        match self {
            Reduction::Sum => sum_slice(xs),
            Reduction::Mean => sum_slice(xs) / T::from_usize(xs.len()),
            Reduction::Max => fold_lane(xs, T::neg_infinity(), max_nan),
            Reduction::Min => fold_lane(xs, T::infinity(), min_nan),
            Reduction::Var { correction } => var_lane(xs, correction),
            Reduction::Std { correction } => var_lane(xs, correction).sqrt(),
            Reduction::LogSumExp => {
                let m = fold_lane(xs, T::neg_infinity(), max_nan);
                if m.is_finite() {
                    m + sum_map(xs, |x| (x - m).exp()).ln()
                } else {
                    m
                }
            }
        }
    }

    /// Reduces each column of a run into `out`.
    fn cols<T: Element>(self, c: &ColBlock<'_, T>, out: &mut [T]) {
        let n = T::from_usize(c.len);
        match self {
            Reduction::Sum => sum_cols_with(c, out, add_row),
            Reduction::Mean => {
                sum_cols_with(c, out, add_row);
                out.iter_mut().for_each(|o| *o /= n);
            }
            Reduction::Max => fold_cols(c, out, T::neg_infinity(), max_nan),
            Reduction::Min => fold_cols(c, out, T::infinity(), min_nan),
            Reduction::Var { correction } => var_cols(c, out, correction),
            Reduction::Std { correction } => {
                var_cols(c, out, correction);
                out.iter_mut().for_each(|o| *o = o.sqrt());
            }
            Reduction::LogSumExp => {
                let mut max = [T::zero(); kernels::COL_BLOCK];
                let max = &mut max[..out.len()];
                fold_cols(c, max, T::neg_infinity(), max_nan);
                sum_cols_with(c, out, |part, row| {
                    for ((p, &x), &m) in part.iter_mut().zip(row).zip(max.iter()) {
                        *p += (x - m).exp();
                    }
                });
                for (o, &m) in out.iter_mut().zip(max.iter()) {
                    *o = if m.is_finite() { m + o.ln() } else { m };
                }
            }
        }
    }
}

/// The divisor of a variance: `n - correction`, or 0 when that is not positive.
fn var_divisor<T: Element>(n: usize, correction: usize) -> T {
    T::from_usize(n.saturating_sub(correction))
}

/// The variance of one contiguous lane, in two passes.
fn var_lane<T: Element>(xs: &[T], correction: usize) -> T {
    let mean = sum_slice(xs) / T::from_usize(xs.len());
    sum_map(xs, |x| (x - mean) * (x - mean)) / var_divisor(xs.len(), correction)
}

/// The variance of each column of a run, in two passes.
fn var_cols<T: Element>(c: &ColBlock<'_, T>, out: &mut [T], correction: usize) {
    let mut mean = [T::zero(); kernels::COL_BLOCK];
    let mean = &mut mean[..out.len()];
    sum_cols_with(c, mean, add_row);
    let n = T::from_usize(c.len);
    mean.iter_mut().for_each(|m| *m /= n);
    sum_cols_with(c, out, |part, row| {
        for ((p, &x), &m) in part.iter_mut().zip(row).zip(mean.iter()) {
            *p += (x - m) * (x - m);
        }
    });
    let divisor = var_divisor::<T>(c.len, correction);
    out.iter_mut().for_each(|o| *o /= divisor);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::shape::numel;

    /// `x` grouped by output position of a reduction over `axes`: the group of each element
    /// (in row-major order) and the elements of each group, in row-major order.
    pub(super) fn naive_groups(x: &Tensor<f64>, axes: &[usize]) -> (Vec<usize>, Vec<Vec<f64>>) {
        let kept: Vec<usize> = (0..x.ndim()).filter(|a| !axes.contains(a)).collect();
        let n_groups = kept.iter().map(|&a| x.shape()[a]).product();
        let mut groups = vec![Vec::new(); n_groups];
        let mut group_of = Vec::with_capacity(x.numel());
        for (index, &v) in x.view().indexed_iter() {
            let g = kept.iter().fold(0, |acc, &a| acc * x.shape()[a] + index[a]);
            groups[g].push(v);
            group_of.push(g);
        }
        (group_of, groups)
    }

    /// A view of `base` with its axes reordered by `order`, sharing storage (not contiguous
    /// unless `order` is the identity).
    pub(super) fn permuted_view(base: &Tensor<f64>, order: &[usize]) -> Tensor<f64> {
        let shape = order.iter().map(|&a| base.shape()[a]).collect();
        let strides = order.iter().map(|&a| base.strides()[a]).collect();
        base.restride(shape, strides, 0)
    }

    /// Equal within `tol` relative to `max(|b|, 1)`, or both NaN, or the same infinity.
    pub(super) fn close(a: f64, b: f64, tol: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * b.abs().max(1.0)
    }

    fn naive_var(xs: &[f64], correction: usize) -> f64 {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        ss / xs.len().saturating_sub(correction) as f64
    }

    fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
        Tensor::from_vec(data.to_vec(), shape).unwrap()
    }

    /// A tensor on a small drawn shape, a view of it with permuted axes, a subset of its dims
    /// (as a mask) and whether to spell the dims negatively.
    fn reduction_case() -> impl Strategy<Value = (Tensor<f64>, Vec<bool>, bool)> {
        prop::collection::vec(1usize..=4, 1..=4).prop_flat_map(|shape| {
            let rank = shape.len();
            (
                prop::collection::vec(-10.0f64..10.0, numel(&shape)),
                Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
                prop::collection::vec(any::<bool>(), rank),
                any::<bool>(),
            )
                .prop_map(move |(data, order, mask, negative)| {
                    let base = Tensor::from_vec(data, &shape).unwrap();
                    (permuted_view(&base, &order), mask, negative)
                })
        })
    }

    fn dims_of(mask: &[bool], negative: bool) -> Vec<isize> {
        let rank = mask.len() as isize;
        (0..rank)
            .filter(|&d| mask[d as usize])
            .map(|d| if negative { d - rank } else { d })
            .collect()
    }

    proptest! {
        #[test]
        fn reductions_match_naive_f64_loops(
            (x, mask, negative) in reduction_case(),
            keepdim in any::<bool>(),
            correction in 0usize..=1,
        ) {
            let dims = dims_of(&mask, negative);
            let axes: Vec<usize> = if dims.is_empty() {
                (0..x.ndim()).collect()
            } else {
                (0..x.ndim()).filter(|&a| mask[a]).collect()
            };
            let (_, groups) = naive_groups(&x, &axes);
            let shape = reduced_shape(x.shape(), &axes, keepdim);
            type Naive = Box<dyn Fn(&[f64]) -> f64>;
            let cases: Vec<(Reduction, Naive)> = vec![
                (Reduction::Sum, Box::new(|g: &[f64]| g.iter().sum())),
                (Reduction::Mean, Box::new(|g: &[f64]| g.iter().sum::<f64>() / g.len() as f64)),
                (Reduction::Max, Box::new(|g: &[f64]| g.iter().copied().fold(f64::MIN, f64::max))),
                (Reduction::Min, Box::new(|g: &[f64]| g.iter().copied().fold(f64::MAX, f64::min))),
                (Reduction::Var { correction }, Box::new(move |g: &[f64]| naive_var(g, correction))),
                (Reduction::LogSumExp, Box::new(|g: &[f64]| g.iter().map(|v| v.exp()).sum::<f64>().ln())),
            ];

            for (kind, naive) in cases {
                let got = x.reduce(kind, &dims, keepdim).unwrap();

                prop_assert_eq!(got.shape(), &shape[..], "{:?}", kind);
                for (g, group) in got.to_vec().iter().zip(&groups) {
                    let expected = naive(group);
                    prop_assert!(close(*g, expected, 1e-12), "{:?}: {} vs {}", kind, g, expected);
                }
            }
        }

        #[test]
        fn argmax_and_max_dim_match_naive_first_position(
            (x, mask, negative) in reduction_case(),
            keepdim in any::<bool>(),
        ) {
            let axis = mask.iter().position(|&m| m).unwrap_or(0);
            let dim = if negative { axis as isize - x.ndim() as isize } else { axis as isize };
            let (_, groups) = naive_groups(&x, &[axis]);

            let arg = if keepdim { x.argmax_keepdim(dim) } else { x.argmax(dim) }.unwrap();
            let arg_min = x.argmin(dim).unwrap();
            let (values, indices) = x.max_dim(dim).unwrap();

            prop_assert_eq!(arg.shape(), &reduced_shape(x.shape(), &[axis], keepdim)[..]);
            for (k, group) in groups.iter().enumerate() {
                let best = group.iter().copied().fold(f64::MIN, f64::max);
                let least = group.iter().copied().fold(f64::MAX, f64::min);
                prop_assert_eq!(arg.as_slice()[k], group.iter().position(|&v| v == best).unwrap());
                prop_assert_eq!(arg_min.as_slice()[k], group.iter().position(|&v| v == least).unwrap());
                prop_assert_eq!(values.to_vec()[k], best);
                prop_assert_eq!(indices.as_slice()[k], arg.as_slice()[k]);
            }
        }
    }

    #[test]
    fn sum_all_and_mean_all_cover_every_element() {
        let x = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);

        assert_eq!(x.sum_all().shape(), &[] as &[usize]);
        assert_eq!(x.sum_all().item().unwrap(), 21.0);
        assert_eq!(x.mean_all().item().unwrap(), 3.5);
        assert_eq!(x.sum(&[]).unwrap().item().unwrap(), 21.0);
        assert_eq!(x.var_all(0).item().unwrap(), 35.0 / 12.0);
        assert_eq!(x.std_all(1).item().unwrap(), 3.5f64.sqrt());
    }

    #[test]
    fn keepdim_keeps_reduced_dims_with_size_one() {
        let x = Tensor::<f32>::ones(&[2, 3, 4]);

        let y = x.sum_keepdim(&[0, -1]).unwrap();

        assert_eq!(y.shape(), &[1, 3, 1]);
        assert_eq!(y.to_vec(), vec![8.0; 3]);
    }

    #[test]
    fn reductions_see_broadcast_views_element_by_element() {
        // A (3, 4) view that repeats one row of 4 three times through a zero stride.
        let row = t(&[1., 2., 3., 4.], &[4]);
        let x = row.restride(vec![3, 4], vec![0, 1], 0);

        assert_eq!(x.sum(&[0]).unwrap().to_vec(), vec![3., 6., 9., 12.]);
        assert_eq!(x.sum(&[1]).unwrap().to_vec(), vec![10.; 3]);
        assert_eq!(x.max_all().unwrap().item().unwrap(), 4.0);
    }

    #[test]
    fn scalar_tensors_reduce_over_dim_zero_like_pytorch() {
        let x = Tensor::scalar(3.0f64);

        assert_eq!(x.sum(&[0]).unwrap().item().unwrap(), 3.0);
        assert_eq!(x.sum_keepdim(&[-1]).unwrap().shape(), &[] as &[usize]);
        assert_eq!(x.argmax(0).unwrap().as_slice(), &[0]);
        assert!(x.sum(&[1]).is_err());
    }

    #[test]
    fn empty_reductions_follow_pytorch() {
        let x = Tensor::<f32>::zeros(&[0, 3]);

        assert_eq!(x.sum_all().item().unwrap(), 0.0);
        assert!(x.mean_all().item().unwrap().is_nan());
        assert_eq!(x.sum(&[0]).unwrap().to_vec(), vec![0.0; 3]);
        assert_eq!(
            x.logsumexp(&[0]).unwrap().to_vec(),
            vec![f32::NEG_INFINITY; 3]
        );
        assert_eq!(x.max(&[1]).unwrap().shape(), &[0]);
        assert_eq!(
            x.max(&[0]).unwrap_err().to_string(),
            "max: cannot reduce over dim 0 of size 0 in shape [0, 3]"
        );
        assert!(x.max_all().is_err());
        assert!(x.argmax(0).is_err());
    }

    #[test]
    fn bad_dims_are_rejected_naming_the_op() {
        let x = Tensor::<f32>::ones(&[2, 3]);

        assert_eq!(
            x.sum(&[2]).unwrap_err().to_string(),
            "sum: dim 2 out of range for rank 2"
        );
        assert_eq!(
            x.var_keepdim(&[1, -1], 1).unwrap_err().to_string(),
            "var_keepdim: dim -1 repeated in [1, -1]"
        );
        assert!(x.argmin(-3).is_err());
    }

    #[test]
    fn var_divides_by_n_minus_correction_as_pytorch() {
        let x = t(&[1., 2.], &[2]);
        let flat = t(&[1., 1.], &[2]);

        assert_eq!(x.var(&[0], 1).unwrap().item().unwrap(), 0.5);
        assert_eq!(x.var(&[0], 0).unwrap().item().unwrap(), 0.25);
        assert_eq!(x.var(&[0], 3).unwrap().item().unwrap(), f64::INFINITY);
        assert!(flat.var(&[0], 2).unwrap().item().unwrap().is_nan());
        assert_eq!(x.std(&[0], 0).unwrap().item().unwrap(), 0.5);
    }

    #[test]
    fn var_stays_accurate_for_a_large_mean() {
        // A one-pass `E[x^2] - E[x]^2` would lose every digit here in f32.
        let x =
            Tensor::from_vec(vec![1e4f32 + 1.0, 1e4 - 1.0, 1e4 + 1.0, 1e4 - 1.0], &[4]).unwrap();

        assert_eq!(x.var(&[0], 0).unwrap().item().unwrap(), 1.0);
    }

    #[test]
    fn max_min_and_logsumexp_propagate_nan_and_infinities() {
        let x = t(&[1., f64::NAN, 3.], &[3]);
        let inf = t(&[f64::INFINITY, 1.], &[2]);
        let masked = t(&[f64::NEG_INFINITY, f64::NEG_INFINITY], &[2]);

        assert!(x.max(&[0]).unwrap().item().unwrap().is_nan());
        assert!(x.min(&[0]).unwrap().item().unwrap().is_nan());
        assert_eq!(x.argmax(0).unwrap().as_slice(), &[1]);
        assert_eq!(x.argmin(0).unwrap().as_slice(), &[1]);
        assert!(x.logsumexp(&[0]).unwrap().item().unwrap().is_nan());
        assert_eq!(inf.logsumexp(&[0]).unwrap().item().unwrap(), f64::INFINITY);
        assert_eq!(
            masked.logsumexp(&[0]).unwrap().item().unwrap(),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn argmax_takes_first_of_ties_along_any_dim() {
        let x = t(&[1., 3., 3., 3., 3., 0.], &[2, 3]);

        let (values, indices) = x.max_dim_keepdim(0).unwrap();
        let (low, low_at) = x.min_dim(1).unwrap();

        assert_eq!(x.argmax(1).unwrap().as_slice(), &[1, 0]);
        assert_eq!(indices.shape(), &[1, 3]);
        assert_eq!(indices.as_slice(), &[1, 0, 0]);
        assert_eq!(values.to_vec(), vec![3., 3., 3.]);
        assert_eq!(low.to_vec(), vec![1., 0.]);
        assert_eq!(low_at.as_slice(), &[0, 2]);
        assert_eq!(x.argmin_keepdim(0).unwrap().shape(), &[1, 3]);
    }

    #[test]
    fn sum_to_shape_undoes_broadcasting() {
        let data: Vec<f64> = (0..24).map(f64::from).collect();
        let x = t(&data, &[4, 2, 3]);

        let bias = x.sum_to_shape(&[3]).unwrap();
        let column = x.sum_to_shape(&[2, 1]).unwrap();
        let middle = x.sum_to_shape(&[4, 1, 3]).unwrap();
        let scalar = x.sum_to_shape(&[]).unwrap();
        let same = x.sum_to_shape(&[4, 2, 3]).unwrap();

        assert_eq!(bias.to_vec(), x.sum(&[0, 1]).unwrap().to_vec());
        assert_eq!(column.shape(), &[2, 1]);
        assert_eq!(column.to_vec(), x.sum(&[0, 2]).unwrap().to_vec());
        assert_eq!(middle.to_vec(), x.sum(&[1]).unwrap().to_vec());
        assert_eq!(scalar.item().unwrap(), 276.0);
        assert!(same.shares_storage_with(&x));
    }

    #[test]
    fn sum_to_shape_rejects_shapes_that_do_not_broadcast() {
        let x = Tensor::<f32>::ones(&[2, 3]);

        assert_eq!(
            x.sum_to_shape(&[2]).unwrap_err().to_string(),
            "sum_to_shape: cannot broadcast [2, 3] with [2]"
        );
        assert!(x.sum_to_shape(&[1, 2, 3]).is_err());
        assert!(x.sum_to_shape(&[3, 3]).is_err());
    }

    #[test]
    fn reductions_give_the_same_bits_on_one_and_two_threads() {
        let mut gen = crate::Generator::new(7);
        let big: Tensor<f32> = gen.randn(&[1 << 20]);
        let square = Tensor::from_vec(big.to_vec(), &[1024, 1024]).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                vec![
                    big.sum_all().to_vec(),
                    big.var_all(1).to_vec(),
                    square.sum(&[0]).unwrap().to_vec(),
                    square.mean(&[1]).unwrap().to_vec(),
                    square.logsumexp(&[0]).unwrap().to_vec(),
                    square.softmax(-1).unwrap().to_vec(),
                    square.log_softmax(0).unwrap().to_vec(),
                ]
            })
        };
        let bits = |v: Vec<Vec<f32>>| -> Vec<Vec<u32>> {
            v.into_iter()
                .map(|xs| xs.into_iter().map(f32::to_bits).collect())
                .collect()
        };

        let one = bits(run(1));
        let two = bits(run(2));

        assert_eq!(one, two);
    }
}
