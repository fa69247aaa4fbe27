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
