//! Ops that build a new tensor from pieces: concat, stack, pad and repeat.

use ndarray::{IxDyn, Slice};

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::shape::{normalize_dim, normalize_insert_dim, numel};
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// Joins tensors end to end along `dim` (PyTorch's `torch.cat`).
    ///
    /// All tensors must have the same rank and agree on every size except `dim`. Each input is
    /// copied in contiguous blocks, one per index of the dims before `dim`.
    ///
    /// ```text
    /// out = [t0 | t1 | ..] along dim;  out.shape[dim] = sum_k tk.shape[dim]
    /// backward: grad_tk = grad_out.narrow(dim, offset_k, tk.shape[dim])
    /// ```
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for an empty list, [`TensorError::Dim`] for a bad dim,
    /// [`TensorError::ShapeMismatch`] (naming the first tensor and the offending one) if the
    /// shapes do not agree.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let a = Tensor::<f32>::zeros(&[2, 1]);
    /// let b = Tensor::<f32>::ones(&[2, 2]);
    /// let c = Tensor::concat(&[&a, &b], -1)?;
    /// assert_eq!(c.to_vec(), vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn concat(tensors: &[&Tensor<T>], dim: isize) -> Result<Tensor<T>> {
        let first = tensors
            .first()
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "concat",
                reason: "needs at least one tensor".into(),
            })?;
        let d = normalize_dim("concat", dim, first.ndim())?;
        let mut shape = first.shape().to_vec();
        shape[d] = 0;
        for t in tensors {
            let agrees = t.ndim() == first.ndim()
                && (0..shape.len()).all(|i| i == d || t.shape()[i] == first.shape()[i]);
            if !agrees {
                return Err(TensorError::ShapeMismatch {
                    op: "concat",
                    what: format!("sizes must agree except along dim {dim}"),
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                });
            }
            shape[d] += t.shape()[d];
        }

        let outer = numel(&shape[..d]);
        let out_block = numel(&shape[d..]);
        let mut out = vec![T::zero(); numel(&shape)];
        let mut start = 0;
        for t in tensors {
            let block = numel(&t.shape()[d..]);
            let src = t.contiguous_slice();
            for o in 0..outer {
                let at = o * out_block + start;
                out[at..at + block].copy_from_slice(&src[o * block..(o + 1) * block]);
            }
            start += block;
        }
        Ok(Tensor::from_contiguous(out, shape))
    }

    /// Joins tensors of one shape along a new dim inserted at `dim` (PyTorch's `torch.stack`).
    ///
    /// ```text
    /// out.select(dim, k) = tk;  stack(ts, dim) = concat([t.unsqueeze(dim) for t in ts], dim)
    /// ```
    ///
    /// # Shapes
    /// - each input: `s`; output: `s` with `tensors.len()` inserted at `dim`
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for an empty list, [`TensorError::Dim`] if `dim` is
    /// outside `-(rank + 1)..=rank`, [`TensorError::ShapeMismatch`] if the shapes differ.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let a = Tensor::<f32>::zeros(&[3]);
    /// let s = Tensor::stack(&[&a, &a], 0)?;
    /// assert_eq!(s.shape(), &[2, 3]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn stack(tensors: &[&Tensor<T>], dim: isize) -> Result<Tensor<T>> {
        let first = tensors
            .first()
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "stack",
                reason: "needs at least one tensor".into(),
            })?;
        let d = normalize_insert_dim("stack", dim, first.ndim())?;
        if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(TensorError::ShapeMismatch {
                op: "stack",
                what: "all tensors must have the same shape".into(),
                lhs: first.shape().to_vec(),
                rhs: t.shape().to_vec(),
            });
        }
        let lifted = tensors
            .iter()
            .map(|t| t.unsqueeze(d as isize))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor<T>> = lifted.iter().collect();
        Self::concat(&refs, d as isize)
    }

    /// Pads with a constant: `pads[k] = (before, after)` adds that many `value` entries on each
    /// side of one dim.
    ///
    /// The pairs apply to the **last** `pads.len()` dims, listed in dim order: for an image batch
    /// `(n, c, h, w)`, `pad(&[(1, 1), (2, 2)], 0.0)` pads `h` by 1 and `w` by 2 on each side.
    /// PyTorch's `F.pad` takes a flat list from the last dim backwards, so the same call there
    /// is `F.pad(x, (2, 2, 1, 1))`.
    ///
    /// ```text
    /// out[.., i + before, ..] = self[.., i, ..];  every other entry = value
    /// backward: grad_self = grad_out.narrow(dim, before, self.shape[dim]) for each padded dim
    /// ```
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] if `pads` has more entries than `self` has dims.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::ones(&[1, 2]);
    /// let y = x.pad(&[(0, 1), (1, 0)], 0.0)?;
    /// assert_eq!(y.to_vec(), vec![0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn pad(&self, pads: &[(usize, usize)], value: T) -> Result<Tensor<T>> {
        let rank = self.ndim();
        let lead = rank
            .checked_sub(pads.len())
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "pad",
                reason: format!(
                    "{} (before, after) pairs for a tensor of rank {rank} (shape {:?})",
                    pads.len(),
                    self.shape()
                ),
            })?;
        let before = |axis: usize| if axis < lead { 0 } else { pads[axis - lead].0 };
        let after = |axis: usize| if axis < lead { 0 } else { pads[axis - lead].1 };
        let shape: Vec<usize> = (0..rank)
            .map(|axis| before(axis) + self.shape()[axis] + after(axis))
            .collect();

        let mut out = ndarray::ArrayD::from_elem(IxDyn(&shape), value);
        out.slice_each_axis_mut(|ax| {
            let start = before(ax.axis.index());
            Slice::from(start..start + self.shape()[ax.axis.index()])
        })
        .assign(&self.view());
        Ok(Tensor::from_array(out))
    }

    /// Tiles the tensor: dim `i` is repeated `repeats[i]` times (PyTorch's `repeat`, not
    /// NumPy's `repeat`). When `repeats` is longer than the rank, `self` is first viewed with
    /// leading size-1 dims.
    ///
    /// ```text
    /// out[i0, .., in] = self[i0 % s0, .., in % sn]     (s = self's shape padded with leading 1s)
    /// backward: grad_self = grad_out reshaped to (r0, s0, .., rn, sn) and summed over the r dims
    /// ```
    ///
    /// # Shapes
    /// - `self`: `(s0, .., sn)`; output: `(r0 * s0, .., rn * sn)`
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] if `repeats` has fewer entries than `self` has dims.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
    /// let y = x.repeat(&[2, 2])?;
    /// assert_eq!(y.to_vec(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn repeat(&self, repeats: &[usize]) -> Result<Tensor<T>> {
        let lead =
            repeats
                .len()
                .checked_sub(self.ndim())
                .ok_or_else(|| TensorError::InvalidArgument {
                    op: "repeat",
                    reason: format!(
                        "{} repeats for a tensor of rank {} (shape {:?})",
                        repeats.len(),
                        self.ndim(),
                        self.shape()
                    ),
                })?;
        let sizes = |axis: usize| {
            if axis < lead {
                1
            } else {
                self.shape()[axis - lead]
            }
        };
        let strides = |axis: usize| {
            if axis < lead {
                0
            } else {
                self.strides()[axis - lead]
            }
        };
        let out_shape: Vec<usize> = (0..repeats.len()).map(|a| repeats[a] * sizes(a)).collect();
        if numel(&out_shape) == 0 {
            return Ok(Tensor::from_contiguous(Vec::new(), out_shape));
        }

        // Interleave a zero-stride repeat dim before each dim, (r0, s0, r1, s1, ..), so that
        // reading the view in row-major order yields the tiled elements.
        let mut tiled_shape = Vec::with_capacity(2 * repeats.len());
        let mut tiled_strides = Vec::with_capacity(2 * repeats.len());
        for (axis, &r) in repeats.iter().enumerate() {
            tiled_shape.extend([r, sizes(axis)]);
            tiled_strides.extend([0, strides(axis)]);
        }
        let tiled = self.restride(tiled_shape, tiled_strides, self.offset());
        Ok(Tensor::from_contiguous(tiled.to_vec(), out_shape))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn iota(shape: &[usize]) -> Tensor<f64> {
        let data = (0..numel(shape)).map(|i| i as f64).collect();
        Tensor::from_vec(data, shape).unwrap()
    }

    fn small_shape() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(1usize..4, 1..4)
    }

    /// Every multi-index of `shape` in row-major order.
    fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
        let mut all = vec![vec![]];
        for &n in shape {
            all = all
                .into_iter()
                .flat_map(|prefix| {
                    (0..n).map(move |i| {
                        let mut idx = prefix.clone();
                        idx.push(i);
                        idx
                    })
                })
                .collect();
        }
        all
    }

    proptest! {
        #[test]
        fn split_then_concat_is_identity(
            shape in small_shape(),
            dim in 0usize..3,
            size in 1usize..4,
            transposed in any::<bool>(),
        ) {
            let mut x = iota(&shape);
            if transposed {
                x = x.transpose(0, -1).unwrap();
            }
            let dim = (dim % shape.len()) as isize;

            let parts = x.split(size, dim).unwrap();
            let refs: Vec<&Tensor<f64>> = parts.iter().collect();
            let joined = Tensor::concat(&refs, dim).unwrap();

            prop_assert_eq!(joined, x);
        }

        #[test]
        fn stack_is_unsqueeze_then_concat(
            shape in small_shape(),
            dim in 0usize..4,
            count in 1usize..4,
        ) {
            let xs: Vec<Tensor<f64>> = (0..count)
                .map(|k| iota(&shape).add_scalar(10.0 * k as f64))
                .collect();
            let refs: Vec<&Tensor<f64>> = xs.iter().collect();
            let dim = (dim % (shape.len() + 1)) as isize;

            let stacked = Tensor::stack(&refs, dim).unwrap();

            let lifted: Vec<Tensor<f64>> = xs.iter().map(|x| x.unsqueeze(dim).unwrap()).collect();
            let lifted_refs: Vec<&Tensor<f64>> = lifted.iter().collect();
            prop_assert_eq!(stacked, Tensor::concat(&lifted_refs, dim).unwrap());
        }

        #[test]
        fn pad_then_narrow_gives_back_the_input(
            shape in small_shape(),
            pads in prop::collection::vec((0usize..3, 0usize..3), 0..4),
        ) {
            let x = iota(&shape);
            let pads = &pads[..pads.len().min(shape.len())];
            let lead = shape.len() - pads.len();

            let padded = x.pad(pads, -7.0).unwrap();

            let mut inner = padded.clone();
            for (k, &(before, after)) in pads.iter().enumerate() {
                let axis = lead + k;
                prop_assert_eq!(padded.shape()[axis], before + shape[axis] + after);
                inner = inner.narrow(axis as isize, before, shape[axis]).unwrap();
            }
            let border = padded.numel() - x.numel();
            let fill_count = padded.to_vec().iter().filter(|&&v| v == -7.0).count();
            prop_assert_eq!(inner, x);
            prop_assert_eq!(fill_count, border);
        }

        #[test]
        fn repeat_matches_loop(
            shape in small_shape(),
            repeats in prop::collection::vec(1usize..3, 0..5),
        ) {
            let x = iota(&shape).transpose(0, -1).unwrap();
            let mut repeats = repeats;
            while repeats.len() < shape.len() {
                repeats.push(2);
            }
            let lead = repeats.len() - shape.len();

            let y = x.repeat(&repeats).unwrap();

            let mut expected = Vec::new();
            for idx in indices(y.shape()) {
                let src: Vec<usize> = (0..shape.len())
                    .map(|a| idx[lead + a] % x.shape()[a])
                    .collect();
                expected.push(x.get(&src).unwrap());
            }
            prop_assert_eq!(y.to_vec(), expected);
        }
    }

    #[test]
    fn concat_rejects_empty_lists_and_mismatched_shapes() {
        let a = iota(&[2, 3]);
        let b = iota(&[3, 3]);

        let empty: &[&Tensor<f64>] = &[];
        assert!(Tensor::concat(empty, 0).is_err());
        assert_eq!(
            Tensor::concat(&[&a, &b], 1).unwrap_err().to_string(),
            "concat: sizes must agree except along dim 1 (lhs [2, 3], rhs [3, 3])"
        );
        assert!(Tensor::concat(&[&a, &iota(&[6])], 0).is_err());
        assert!(Tensor::concat(&[&a, &b], 2).is_err());
        assert_eq!(Tensor::concat(&[&a, &b], 0).unwrap().shape(), &[5, 3]);
    }

    #[test]
    fn stack_rejects_different_shapes() {
        let a = iota(&[2, 3]);
        let b = iota(&[3, 2]);

        let err = Tensor::stack(&[&a, &b], 0).unwrap_err();

        assert_eq!(
            err.to_string(),
            "stack: all tensors must have the same shape (lhs [2, 3], rhs [3, 2])"
        );
        assert!(Tensor::stack(&[&a, &a], 3).is_err());
        assert_eq!(Tensor::stack(&[&a, &a], -1).unwrap().shape(), &[2, 3, 2]);
    }

    #[test]
    fn pad_and_repeat_reject_too_many_or_too_few_entries() {
        let x = iota(&[2, 3]);

        assert_eq!(
            x.pad(&[(1, 1); 3], 0.0).unwrap_err().to_string(),
            "pad: 3 (before, after) pairs for a tensor of rank 2 (shape [2, 3])"
        );
        assert_eq!(
            x.repeat(&[2]).unwrap_err().to_string(),
            "repeat: 1 repeats for a tensor of rank 2 (shape [2, 3])"
        );
    }

    #[test]
    fn pad_matches_pytorch_flat_pad_order() {
        // torch.nn.functional.pad(torch.arange(4.).reshape(2, 2), (1, 0, 0, 1), value=9)
        let x = iota(&[2, 2]);

        let y = x.pad(&[(0, 1), (1, 0)], 9.0).unwrap();

        #[rustfmt::skip]
        let expected = vec![
            9.0, 0.0, 1.0,
            9.0, 2.0, 3.0,
            9.0, 9.0, 9.0,
        ];
        assert_eq!(y.shape(), &[3, 3]);
        assert_eq!(y.to_vec(), expected);
    }

    #[test]
    fn repeat_with_a_zero_count_is_empty() {
        let x = iota(&[2]);

        let y = x.repeat(&[3, 0]).unwrap();

        assert_eq!(y.shape(), &[3, 0]);
        assert_eq!(y.numel(), 0);
    }

    #[test]
    fn concat_of_a_broadcast_view_copies_its_values() {
        let row = iota(&[3]).broadcast_to(&[2, 3]).unwrap();
        let block = iota(&[1, 3]);

        let joined = Tensor::concat(&[&row, &block], 0).unwrap();

        assert_eq!(
            joined.to_vec(),
            vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
        );
    }
}
