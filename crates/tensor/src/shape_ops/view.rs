//! Ops that return views of the whole tensor: reshape (when the layout allows), transpose,
//! permute, squeeze, unsqueeze, flatten and broadcast.

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::shape::{normalize_dim, normalize_insert_dim, numel};
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// The same elements in row-major order with another shape.
    ///
    /// Returns a view sharing storage whenever the current strides allow it (always for a
    /// contiguous tensor, and for many views, e.g. merging dims a transpose left untouched),
    /// and a contiguous copy otherwise, like PyTorch. For PyTorch's `-1` placeholder use
    /// [`Tensor::reshape_infer`].
    ///
    /// # Shapes
    /// - `self`: any shape with `n` elements; output: `shape`, whose product must be `n`
    ///
    /// # Errors
    /// [`TensorError::ElementCount`] if the product of `shape` differs from `self.numel()`.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::arange(0.0, 6.0, 1.0)?;
    /// let y = x.reshape(&[2, 3])?;
    /// assert_eq!(y.get(&[1, 0]), Some(3.0));
    /// assert!(y.shares_storage_with(&x));
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor<T>> {
        if numel(shape) != self.numel() {
            return Err(TensorError::ElementCount {
                op: "reshape",
                len: self.numel(),
                shape: shape.to_vec(),
            });
        }
        if self.numel() == 0 {
            return Ok(Tensor::from_contiguous(Vec::new(), shape.to_vec()));
        }
        match view_strides(self.shape(), self.strides(), shape) {
            Some(strides) => Ok(self.restride(shape.to_vec(), strides, self.offset())),
            None => Ok(Tensor::from_contiguous(self.to_vec(), shape.to_vec())),
        }
    }

    /// [`Tensor::reshape`] where at most one entry may be `-1`, standing for whatever size makes
    /// the element count match (PyTorch's `reshape(-1, d)`).
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for more than one `-1` or any other negative entry,
    /// [`TensorError::ElementCount`] if no size fits.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::zeros(&[2, 3, 4]);
    /// assert_eq!(x.reshape_infer(&[-1, 4])?.shape(), &[6, 4]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Tensor<T>> {
        let op = "reshape_infer";
        let mut inferred = None;
        let mut known = 1usize;
        for (i, &s) in shape.iter().enumerate() {
            match s {
                -1 if inferred.is_none() => inferred = Some(i),
                s if s < 0 => {
                    return Err(TensorError::InvalidArgument {
                        op,
                        reason: format!(
                            "only one -1 and no other negative size allowed, got {shape:?}"
                        ),
                    })
                }
                s => known *= s as usize,
            }
        }
        let mut sizes: Vec<usize> = shape.iter().map(|&s| s.max(0) as usize).collect();
        if let Some(i) = inferred {
            if known == 0 || self.numel() % known != 0 {
                return Err(TensorError::InvalidArgument {
                    op,
                    reason: format!("cannot infer -1 in {shape:?} for {} elements", self.numel()),
                });
            }
            sizes[i] = self.numel() / known;
        }
        self.reshape(&sizes)
    }

    /// [`Tensor::reshape`] to the shape of `other` (PyTorch's `reshape_as`).
    ///
    /// # Errors
    /// [`TensorError::ElementCount`] if the element counts differ.
    pub fn reshape_as(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.reshape(other.shape())
    }

    /// Transpose of a matrix: a view swapping the two dims; 0-D and 1-D tensors come back
    /// unchanged, as in PyTorch.
    ///
    /// # Shapes
    /// - `self`: `(m, n)`; output: `(n, m)`
    ///
    /// # Errors
    /// [`TensorError::Shape`] if `self` has more than two dims (use [`Tensor::transpose`]).
    pub fn t(&self) -> Result<Tensor<T>> {
        match self.ndim() {
            0 | 1 => Ok(self.clone()),
            2 => self.transpose(0, 1),
            _ => Err(TensorError::Shape {
                op: "t",
                expected: "at most 2 dims".into(),
                got: self.shape().to_vec(),
            }),
        }
    }

    /// A view with dims `dim0` and `dim1` swapped.
    ///
    /// ```text
    /// out[.., j, .., i, ..] = self[.., i, .., j, ..]
    /// backward: grad_self = grad_out.transpose(dim0, dim1)
    /// ```
    ///
    /// # Errors
    /// [`TensorError::Dim`] if either dim is outside `-rank..rank`.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::arange(0.0, 6.0, 1.0)?.reshape(&[2, 3])?;
    /// let y = x.transpose(0, -1)?;
    /// assert_eq!(y.shape(), &[3, 2]);
    /// assert_eq!(y.to_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Result<Tensor<T>> {
        let a = normalize_dim("transpose", dim0, self.ndim())?;
        let b = normalize_dim("transpose", dim1, self.ndim())?;
        let mut shape = self.shape().to_vec();
        let mut strides = self.strides().to_vec();
        shape.swap(a, b);
        strides.swap(a, b);
        Ok(self.restride(shape, strides, self.offset()))
    }

    /// A view with the dims reordered: output dim `i` is input dim `dims[i]`.
    ///
    /// ```text
    /// out.shape[i] = self.shape[dims[i]]
    /// backward: grad_self = grad_out.permute(inverse of dims)
    /// ```
    ///
    /// # Errors
    /// [`TensorError::Shape`] if `dims` does not list every dim exactly once,
    /// [`TensorError::Dim`] for a dim out of range.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::zeros(&[2, 3, 4]);
    /// assert_eq!(x.permute(&[2, 0, 1])?.shape(), &[4, 2, 3]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn permute(&self, dims: &[isize]) -> Result<Tensor<T>> {
        let rank = self.ndim();
        let mut seen = vec![false; rank];
        let mut order = Vec::with_capacity(rank);
        for &d in dims {
            let n = normalize_dim("permute", d, rank)?;
            if seen[n] {
                break;
            }
            seen[n] = true;
            order.push(n);
        }
        if order.len() != rank || dims.len() != rank {
            return Err(TensorError::Shape {
                op: "permute",
                expected: format!("a permutation of all {rank} dims, got dims {dims:?}"),
                got: self.shape().to_vec(),
            });
        }
        let shape = order.iter().map(|&d| self.shape()[d]).collect();
        let strides = order.iter().map(|&d| self.strides()[d]).collect();
        Ok(self.restride(shape, strides, self.offset()))
    }

    /// A view without dim `dim` if its size is 1; otherwise `self` unchanged (PyTorch's
    /// `squeeze(dim)`).
    ///
    /// # Errors
    /// [`TensorError::Dim`] if `dim` is outside `-rank..rank`.
    pub fn squeeze_dim(&self, dim: isize) -> Result<Tensor<T>> {
        let d = normalize_dim("squeeze_dim", dim, self.ndim())?;
        if self.shape()[d] != 1 {
            return Ok(self.clone());
        }
        let (mut shape, mut strides) = (self.shape().to_vec(), self.strides().to_vec());
        shape.remove(d);
        strides.remove(d);
        Ok(self.restride(shape, strides, self.offset()))
    }

    /// A view without any of the size-1 dims.
    pub fn squeeze(&self) -> Tensor<T> {
        let (shape, strides) = self
            .shape()
            .iter()
            .zip(self.strides())
            .filter(|(&n, _)| n != 1)
            .unzip();
        self.restride(shape, strides, self.offset())
    }

    /// A view with a size-1 dim inserted at position `dim` (`-(rank + 1)..=rank`).
    ///
    /// # Shapes
    /// - `self`: `(d0, .., dn)`; output: `(d0, .., 1, .., dn)` with the 1 at `dim`
    ///
    /// # Errors
    /// [`TensorError::Dim`] if `dim` is outside `-(rank + 1)..=rank`.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::zeros(&[2, 3]);
    /// assert_eq!(x.unsqueeze(-1)?.shape(), &[2, 3, 1]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor<T>> {
        let d = normalize_insert_dim("unsqueeze", dim, self.ndim())?;
        let (mut shape, mut strides) = (self.shape().to_vec(), self.strides().to_vec());
        let stride = if d < shape.len() {
            shape[d] * strides[d]
        } else {
            1
        };
        shape.insert(d, 1);
        strides.insert(d, stride);
        Ok(self.restride(shape, strides, self.offset()))
    }

    /// Merges dims `start..=end` into one, via [`Tensor::reshape`] (a view when possible). A 0-D
    /// tensor becomes 1-D, as in PyTorch.
    ///
    /// # Shapes
    /// - `self`: `(d0, .., ds, .., de, .., dn)`; output: `(d0, .., ds * .. * de, .., dn)`
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a dim out of range, [`TensorError::InvalidArgument`] if `start`
    /// comes after `end`.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor<T>> {
        let rank = self.ndim().max(1);
        let s = normalize_dim("flatten", start, rank)?;
        let e = normalize_dim("flatten", end, rank)?;
        if s > e {
            return Err(TensorError::InvalidArgument {
                op: "flatten",
                reason: format!("start dim {start} comes after end dim {end}"),
            });
        }
        if self.ndim() == 0 {
            return self.reshape(&[1]);
        }
        let shape = self.shape();
        let mut out = shape[..s].to_vec();
        out.push(numel(&shape[s..=e]));
        out.extend_from_slice(&shape[e + 1..]);
        self.reshape(&out)
    }

    /// A view with the shape `shape`, repeating size-1 dims (and adding leading dims) with zero
    /// strides; no element is copied (PyTorch's `broadcast_to`).
    ///
    /// # Shapes
    /// - `self`: any shape that broadcasts to `shape` under NumPy's rules; output: `shape`
    ///
    /// # Errors
    /// [`TensorError::Broadcast`] if `shape` has fewer dims than `self`, or some aligned size of
    /// `self` is neither 1 nor equal to the target.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let row = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])?;
    /// let grid = row.broadcast_to(&[2, 3])?;
    /// assert_eq!(grid.to_vec(), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    /// assert_eq!(grid.strides(), &[0, 1]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let fail = || TensorError::Broadcast {
            op: "broadcast_to",
            lhs: self.shape().to_vec(),
            rhs: shape.to_vec(),
        };
        let lead = shape.len().checked_sub(self.ndim()).ok_or_else(fail)?;
        let mut strides = vec![0; shape.len()];
        for (i, (&n, &s)) in self.shape().iter().zip(self.strides()).enumerate() {
            let target = shape[lead + i];
            if n == target {
                strides[lead + i] = s;
            } else if n != 1 {
                return Err(fail());
            }
        }
        Ok(self.restride(shape.to_vec(), strides, self.offset()))
    }

    /// Same as [`Tensor::broadcast_to`] (PyTorch's `expand`, without the `-1` placeholder).
    ///
    /// # Errors
    /// As [`Tensor::broadcast_to`].
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor<T>> {
        self.broadcast_to(shape)
    }
}

/// Strides that lay `new_shape` over the elements of a tensor with `shape` and `strides` in the
/// same row-major order, or `None` when no strides can (a copy is needed).
///
/// Runs of dims that are contiguous with each other form blocks with a single base stride; each
/// block must be covered exactly by a run of new dims. Size-1 dims carry no layout and are
/// skipped. The element counts are assumed equal and non-zero.
fn view_strides(shape: &[usize], strides: &[usize], new_shape: &[usize]) -> Option<Vec<usize>> {
    let dims: Vec<(usize, usize)> = shape
        .iter()
        .zip(strides)
        .filter(|(&n, _)| n != 1)
        .map(|(&n, &s)| (n, s))
        .collect();
    let mut new_strides = vec![1; new_shape.len()];
    let mut next_new = new_shape.len();
    let mut block_end = dims.len();
    while block_end > 0 {
        let mut block_start = block_end - 1;
        let base = dims[block_start].1;
        let mut block_len = dims[block_start].0;
        while block_start > 0
            && dims[block_start - 1].1 == dims[block_start].1 * dims[block_start].0
        {
            block_start -= 1;
            block_len *= dims[block_start].0;
        }
        block_end = block_start;
        let mut covered = 1;
        while covered < block_len {
            next_new = next_new.checked_sub(1)?;
            new_strides[next_new] = base * covered;
            covered *= new_shape[next_new];
        }
        if covered != block_len {
            return None;
        }
    }
    Some(new_strides)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A tensor of the given shape holding `0, 1, 2, ..` so every element is distinct.
    fn iota(shape: &[usize]) -> Tensor<f64> {
        let data = (0..numel(shape)).map(|i| i as f64).collect();
        Tensor::from_vec(data, shape).unwrap()
    }

    fn small_shape() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(1usize..4, 1..5)
    }

    /// A shape, a permutation of its dims, and a new shape with the same element count.
    fn shape_and_perm() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        small_shape().prop_flat_map(|shape| {
            let perm = Just((0..shape.len()).collect::<Vec<_>>()).prop_shuffle();
            (Just(shape), perm)
        })
    }

    fn as_isize(dims: &[usize]) -> Vec<isize> {
        dims.iter().map(|&d| d as isize).collect()
    }

    proptest! {
        #[test]
        fn reshape_round_trips((shape, perm) in shape_and_perm()) {
            let x = iota(&shape).permute(&as_isize(&perm)).unwrap();
            let flat = [x.numel()];

            let there = x.reshape(&flat).unwrap();
            let back = there.reshape(x.shape()).unwrap();

            prop_assert_eq!(there.to_vec(), x.to_vec());
            prop_assert_eq!(back, x);
        }

        #[test]
        fn reshape_of_a_view_matches_reshape_of_a_copy(
            (shape, perm) in shape_and_perm(),
            split in 0usize..4,
        ) {
            // Every way of regrouping the row-major elements must read the same values,
            // whether the view path or the copy path was taken.
            let x = iota(&shape).permute(&as_isize(&perm)).unwrap();
            let n = x.numel();
            let divisors: Vec<usize> = (1..=n).filter(|d| n % d == 0).collect();
            let first = divisors[split % divisors.len()];
            let target = [first, n / first];

            let viewed = x.reshape(&target).unwrap();
            let copied = x.contiguous().reshape(&target).unwrap();

            prop_assert_eq!(viewed, copied);
        }

        #[test]
        fn transpose_twice_is_identity(shape in small_shape(), a in 0usize..4, b in 0usize..4) {
            let x = iota(&shape);
            let (a, b) = ((a % shape.len()) as isize, (b % shape.len()) as isize);

            let y = x.transpose(a, b).unwrap().transpose(a, b).unwrap();

            prop_assert_eq!(y.strides(), x.strides());
            prop_assert_eq!(y, x);
        }

        #[test]
        fn permute_then_inverse_permute_is_identity((shape, perm) in shape_and_perm()) {
            let x = iota(&shape);
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }

            let y = x.permute(&as_isize(&perm)).unwrap();
            let back = y.permute(&as_isize(&inverse)).unwrap();

            for (i, &p) in perm.iter().enumerate() {
                prop_assert_eq!(y.shape()[i], shape[p]);
            }
            prop_assert!(y.shares_storage_with(&x));
            prop_assert_eq!(back, x);
        }

    }

    #[test]
    fn reshape_of_contiguous_is_a_view() {
        let x = iota(&[2, 3, 4]);

        let y = x.reshape(&[4, 6]).unwrap();

        assert!(y.shares_storage_with(&x));
        assert_eq!(y.to_vec(), x.to_vec());
    }

    #[test]
    fn reshape_merging_untouched_dims_of_a_transpose_is_a_view() {
        let x = iota(&[2, 3, 4, 5]).transpose(0, 1).unwrap();

        let merged = x.reshape(&[3, 2, 20]).unwrap();
        let split = x.reshape(&[3, 2, 2, 2, 5]).unwrap();
        let tangled = x.reshape(&[6, 20]).unwrap();

        assert!(merged.shares_storage_with(&x));
        assert!(split.shares_storage_with(&x));
        assert!(!tangled.shares_storage_with(&x));
        assert_eq!(merged.to_vec(), x.to_vec());
        assert_eq!(split.to_vec(), x.to_vec());
        assert_eq!(tangled.to_vec(), x.to_vec());
    }

    #[test]
    fn reshape_of_broadcast_dims_stays_a_view() {
        let x = iota(&[3]).broadcast_to(&[2, 2, 3]).unwrap();

        let y = x.reshape(&[4, 3]).unwrap();

        assert!(y.shares_storage_with(&x));
        assert_eq!(y.strides(), &[0, 1]);
        assert_eq!(y.to_vec(), x.to_vec());
    }

    #[test]
    fn reshape_rejects_wrong_element_count() {
        let x = iota(&[2, 3]);

        let err = x.reshape(&[4, 2]).unwrap_err();

        assert_eq!(
            err.to_string(),
            "reshape: 6 elements cannot take shape [4, 2]"
        );
    }

    #[test]
    fn reshape_infer_fills_one_placeholder() {
        let x = iota(&[2, 3, 4]);

        assert_eq!(x.reshape_infer(&[-1, 4]).unwrap().shape(), &[6, 4]);
        assert_eq!(x.reshape_infer(&[2, -1]).unwrap().shape(), &[2, 12]);
        assert!(x.reshape_infer(&[-1, -1]).is_err());
        assert!(x.reshape_infer(&[-2, 12]).is_err());
        assert!(x.reshape_infer(&[-1, 5]).is_err());
        assert!(x.reshape_infer(&[0, -1]).is_err());
    }

    #[test]
    fn transpose_and_t_are_views() {
        let x = iota(&[2, 3]);

        let y = x.t().unwrap();

        assert!(y.shares_storage_with(&x));
        assert_eq!(y.shape(), &[3, 2]);
        assert_eq!(y.get(&[2, 1]), Some(5.0));
        assert_eq!(iota(&[4]).t().unwrap().shape(), &[4]);
        assert_eq!(
            iota(&[1, 2, 3]).t().unwrap_err().to_string(),
            "t: expected at most 2 dims, got shape [1, 2, 3]"
        );
        assert_eq!(
            x.transpose(0, 2).unwrap_err().to_string(),
            "transpose: dim 2 out of range for rank 2"
        );
    }

    #[test]
    fn permute_rejects_repeats_and_missing_dims() {
        let x = iota(&[2, 3, 4]);

        assert!(x.permute(&[0, 0, 1]).is_err());
        assert!(x.permute(&[0, 1]).is_err());
        assert!(x.permute(&[0, 1, 2, 0]).is_err());
        assert!(matches!(
            x.permute(&[0, 1, 3]),
            Err(TensorError::Dim { dim: 3, .. })
        ));
        assert_eq!(x.permute(&[-1, 0, 1]).unwrap().shape(), &[4, 2, 3]);
    }

    #[test]
    fn squeeze_and_unsqueeze_are_views() {
        let x = iota(&[2, 1, 3, 1]);

        let all = x.squeeze();
        let one = x.squeeze_dim(1).unwrap();
        let kept = x.squeeze_dim(0).unwrap();
        let added = all.unsqueeze(-1).unwrap();

        assert_eq!(all.shape(), &[2, 3]);
        assert_eq!(one.shape(), &[2, 3, 1]);
        assert_eq!(kept.shape(), &[2, 1, 3, 1]);
        assert_eq!(added.shape(), &[2, 3, 1]);
        assert!(added.is_contiguous());
        for view in [&all, &one, &added] {
            assert!(view.shares_storage_with(&x));
            assert_eq!(view.to_vec(), x.to_vec());
        }
        assert!(x.squeeze_dim(4).is_err());
        assert!(all.unsqueeze(3).is_err());
        assert_eq!(all.unsqueeze(-3).unwrap().shape(), &[1, 2, 3]);
    }

    #[test]
    fn flatten_merges_a_range_of_dims() {
        let x = iota(&[2, 3, 4, 5]);

        assert_eq!(x.flatten(1, 2).unwrap().shape(), &[2, 12, 5]);
        assert_eq!(x.flatten(0, -1).unwrap().shape(), &[120]);
        assert_eq!(x.flatten(-1, -1).unwrap().shape(), &[2, 3, 4, 5]);
        assert_eq!(Tensor::scalar(1.0f32).flatten(0, -1).unwrap().shape(), &[1]);
        assert!(x.flatten(2, 1).is_err());
        assert!(x.flatten(0, 4).is_err());
    }

    #[test]
    fn broadcast_to_uses_zero_strides() {
        let x = iota(&[3, 1]);

        let y = x.broadcast_to(&[2, 3, 4]).unwrap();

        assert!(y.shares_storage_with(&x));
        assert_eq!(y.strides(), &[0, 1, 0]);
        assert_eq!(y.get(&[1, 2, 3]), Some(2.0));
        assert_eq!(x.expand(&[3, 5]).unwrap().shape(), &[3, 5]);
        assert_eq!(
            x.broadcast_to(&[3, 2, 2]).unwrap_err().to_string(),
            "broadcast_to: cannot broadcast [3, 1] with [3, 2, 2]"
        );
        assert!(x.broadcast_to(&[3]).is_err());
    }
}
