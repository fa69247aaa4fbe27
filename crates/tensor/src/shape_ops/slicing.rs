//! Ops that select part of a dim as a view: narrow, slice, split and chunk.

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::shape::{normalize_dim, numel};
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// A view of `len` entries of dim `dim` starting at `start`.
    ///
    /// ```text
    /// out[.., i, ..] = self[.., start + i, ..]     for i in 0..len
    /// backward: grad_self = grad_out padded with zeros back to self's size along dim
    /// ```
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::Index`] if `start + len` exceeds the
    /// size of `dim`.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::arange(0.0, 6.0, 1.0)?.reshape(&[2, 3])?;
    /// assert_eq!(x.narrow(1, 1, 2)?.to_vec(), vec![1.0, 2.0, 4.0, 5.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor<T>> {
        let d = normalize_dim("narrow", dim, self.ndim())?;
        let size = self.shape()[d];
        let end = start.checked_add(len).filter(|&e| e <= size);
        if end.is_none() {
            return Err(TensorError::Index {
                op: "narrow",
                index: start.saturating_add(len) as i64,
                size,
            });
        }
        Ok(self.slice_view(d, start, len, 1))
    }

    /// A view of every `step`-th entry of dim `dim` from `start` up to (not including) `end`,
    /// like Python's `x[start:end:step]` on that dim. As in Python, `start` and `end` are
    /// clamped to the size of the dim, and `start >= end` gives an empty dim.
    ///
    /// ```text
    /// out[.., i, ..] = self[.., start + i * step, ..]     for start + i * step < end
    /// ```
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::InvalidArgument`] if `step` is 0.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::arange(0.0, 10.0, 1.0)?;
    /// assert_eq!(x.slice(0, 1, 8, 3)?.to_vec(), vec![1.0, 4.0, 7.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn slice(&self, dim: isize, start: usize, end: usize, step: usize) -> Result<Tensor<T>> {
        let d = normalize_dim("slice", dim, self.ndim())?;
        if step == 0 {
            return Err(TensorError::InvalidArgument {
                op: "slice",
                reason: "step must be at least 1".into(),
            });
        }
        let size = self.shape()[d];
        let (start, end) = (start.min(size), end.min(size));
        let len = if end > start {
            (end - start).div_ceil(step)
        } else {
            0
        };
        Ok(self.slice_view(d, start, len, step))
    }

    /// Views of consecutive pieces of `size` entries along `dim`; the last is shorter when
    /// `size` does not divide the dim (PyTorch's `split(int, dim)`).
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::InvalidArgument`] if `size` is 0.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let x = Tensor::<f32>::zeros(&[5, 2]);
    /// let parts = x.split(2, 0)?;
    /// let sizes: Vec<usize> = parts.iter().map(|p| p.shape()[0]).collect();
    /// assert_eq!(sizes, vec![2, 2, 1]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor<T>>> {
        let d = normalize_dim("split", dim, self.ndim())?;
        if size == 0 {
            return Err(TensorError::InvalidArgument {
                op: "split",
                reason: "split size must be at least 1".into(),
            });
        }
        let total = self.shape()[d];
        if total == 0 {
            return Ok(vec![self.clone()]);
        }
        Ok((0..total)
            .step_by(size)
            .map(|start| self.slice_view(d, start, size.min(total - start), 1))
            .collect())
    }

    /// Views of consecutive pieces of the given sizes along `dim` (PyTorch's
    /// `split(list, dim)`), e.g. separating fused query, key and value projections.
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::InvalidArgument`] if the sizes do not
    /// add up to the size of `dim`.
    pub fn split_with_sizes(&self, sizes: &[usize], dim: isize) -> Result<Vec<Tensor<T>>> {
        let d = normalize_dim("split_with_sizes", dim, self.ndim())?;
        let total: usize = sizes.iter().sum();
        if total != self.shape()[d] {
            return Err(TensorError::InvalidArgument {
                op: "split_with_sizes",
                reason: format!(
                    "sizes {sizes:?} add up to {total}, not to the size {} of dim {dim}",
                    self.shape()[d]
                ),
            });
        }
        let mut start = 0;
        Ok(sizes
            .iter()
            .map(|&len| {
                let part = self.slice_view(d, start, len, 1);
                start += len;
                part
            })
            .collect())
    }

    /// Splits `dim` into `chunks` views of equal size `ceil(size / chunks)`, the last possibly
    /// smaller; as in PyTorch, fewer than `chunks` pieces come back when the size runs out.
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::InvalidArgument`] if `chunks` is 0.
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor<T>>> {
        let d = normalize_dim("chunk", dim, self.ndim())?;
        if chunks == 0 {
            return Err(TensorError::InvalidArgument {
                op: "chunk",
                reason: "number of chunks must be at least 1".into(),
            });
        }
        self.split(self.shape()[d].div_ceil(chunks).max(1), dim)
    }

    /// The view `start, start + step, ..` (`len` entries) along the normalised dim `d`; the
    /// caller has checked the range.
    pub(crate) fn slice_view(&self, d: usize, start: usize, len: usize, step: usize) -> Tensor<T> {
        let mut shape = self.shape().to_vec();
        let mut strides = self.strides().to_vec();
        // An empty view keeps the old offset, which is known to lie inside the storage.
        let offset = if len == 0 || numel(&shape) == 0 {
            self.offset()
        } else {
            self.offset() + start * strides[d]
        };
        shape[d] = len;
        strides[d] *= step;
        self.restride(shape, strides, offset)
    }
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

    proptest! {
        #[test]
        fn narrow_matches_loop(
            shape in prop::collection::vec(1usize..5, 2..3),
            start in 0usize..5,
            len in 0usize..5,
        ) {
            let x = iota(&shape);
            let (start, len) = (start % shape[1], len % (shape[1] - start % shape[1] + 1));

            let y = x.narrow(1, start, len).unwrap();

            let mut expected = Vec::new();
            for i in 0..shape[0] {
                for j in start..start + len {
                    expected.push(x.get(&[i, j]).unwrap());
                }
            }
            prop_assert_eq!(y.shape(), &[shape[0], len][..]);
            prop_assert_eq!(y.to_vec(), expected);
        }

        #[test]
        fn slice_matches_loop(
            shape in prop::collection::vec(1usize..6, 2..3),
            start in 0usize..7,
            end in 0usize..7,
            step in 1usize..4,
        ) {
            let x = iota(&shape).t().unwrap();

            let y = x.slice(0, start, end, step).unwrap();

            let mut expected = Vec::new();
            let rows: Vec<usize> = (start..end.min(x.shape()[0])).step_by(step).collect();
            for &i in &rows {
                for j in 0..x.shape()[1] {
                    expected.push(x.get(&[i, j]).unwrap());
                }
            }
            prop_assert_eq!(y.shape(), &[rows.len(), x.shape()[1]][..]);
            prop_assert_eq!(y.to_vec(), expected);
        }

        #[test]
        fn split_pieces_cover_the_dim_in_order(shape in small_shape(), size in 1usize..4) {
            let x = iota(&shape);
            let last = shape.len() - 1;

            let parts = x.split(size, -1).unwrap();

            let mut start = 0;
            for part in &parts {
                let len = part.shape()[last];
                prop_assert!(len >= 1 && len <= size);
                prop_assert!(part.shares_storage_with(&x));
                prop_assert_eq!(part, &x.narrow(-1, start, len).unwrap());
                start += len;
            }
            prop_assert_eq!(start, shape[last]);
        }
    }

    #[test]
    fn narrow_rejects_ranges_past_the_end() {
        let x = iota(&[2, 3]);

        let err = x.narrow(1, 2, 2).unwrap_err();

        assert_eq!(err.to_string(), "narrow: index 4 out of range for size 3");
        assert!(x.narrow(1, usize::MAX, 2).is_err());
        assert_eq!(x.narrow(1, 3, 0).unwrap().shape(), &[2, 0]);
    }

    #[test]
    fn slice_clamps_like_python_and_rejects_zero_step() {
        let x = iota(&[5]);

        assert_eq!(x.slice(0, 3, 100, 1).unwrap().to_vec(), vec![3.0, 4.0]);
        assert_eq!(x.slice(0, 7, 9, 1).unwrap().shape(), &[0]);
        assert_eq!(x.slice(0, 4, 2, 1).unwrap().shape(), &[0]);
        assert_eq!(
            x.slice(0, 0, 5, 0).unwrap_err().to_string(),
            "slice: step must be at least 1"
        );
    }

    #[test]
    fn split_with_sizes_and_chunk_follow_pytorch() {
        let x = iota(&[7, 2]);

        let parts = x.split_with_sizes(&[3, 0, 4], 0).unwrap();
        let chunks = x.chunk(3, 0).unwrap();
        let six = iota(&[6]).chunk(4, 0).unwrap();

        let sizes = |ts: &[Tensor<f64>]| ts.iter().map(|t| t.shape()[0]).collect::<Vec<_>>();
        assert_eq!(sizes(&parts), vec![3, 0, 4]);
        assert_eq!(parts[2].to_vec(), x.narrow(0, 3, 4).unwrap().to_vec());
        assert_eq!(sizes(&chunks), vec![3, 3, 1]);
        // PyTorch gives three chunks of two here, not four.
        assert_eq!(sizes(&six), vec![2, 2, 2]);
        assert!(x.split_with_sizes(&[3, 3], 0).is_err());
        assert!(x.chunk(0, 0).is_err());
        assert!(x.split(0, 0).is_err());
    }

    #[test]
    fn cloned_view_written_through_data_mut_leaves_base_alone() {
        let base = iota(&[2, 3]);
        let view = base.t().unwrap().narrow(0, 1, 2).unwrap();
        let mut copy = view.clone();

        copy.data_mut().fill(-1.0);

        assert_eq!(base.to_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(view.to_vec(), vec![1.0, 4.0, 2.0, 5.0]);
        assert_eq!(copy.to_vec(), vec![-1.0; 4]);
    }
}
