//! Lookups by class or token id: `one_hot`, `embedding` and its backward kernel.

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::index_tensor::IndexTensor;
use crate::parallel::PAR_THRESHOLD;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// One-hot encoding: a trailing dim of `num_classes` holding 1 at each index and 0 elsewhere
    /// (PyTorch's `F.one_hot`, with the class count always given).
    ///
    /// ```text
    /// out[.., c] = 1 if c == index[..] else 0
    /// ```
    ///
    /// # Shapes
    /// - `index`: any shape `s`; output: `(*s, num_classes)`
    ///
    /// # Errors
    /// [`TensorError::Index`] for an index `>= num_classes`.
    ///
    /// ```
    /// # use strata_tensor::{IndexTensor, Tensor};
    /// let y = Tensor::<f32>::one_hot(&IndexTensor::from_slice(&[2, 0]), 3)?;
    /// assert_eq!(y.to_vec(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn one_hot(index: &IndexTensor, num_classes: usize) -> Result<Tensor<T>> {
        index.check_bound("one_hot", num_classes)?;
        let mut out = vec![T::zero(); index.numel() * num_classes];
        for (k, &c) in index.as_slice().iter().enumerate() {
            out[k * num_classes + c] = T::one();
        }
        let mut shape = index.shape().to_vec();
        shape.push(num_classes);
        Ok(Tensor::from_contiguous(out, shape))
    }

    /// Rows of a 2-D `weight` table picked by `indices` (PyTorch's `F.embedding`). Each row is
    /// one slice copy; large lookups copy rows on rayon's threads.
    ///
    /// ```text
    /// out[.., :] = weight[indices[..], :]
    /// backward: grad_weight = Tensor::embedding_backward(grad_out, indices, num_embeddings, ..)
    /// ```
    ///
    /// # Shapes
    /// - `weight`: `(num_embeddings, embedding_dim)`; `indices`: any shape `s`;
    ///   output: `(*s, embedding_dim)`
    ///
    /// # Errors
    /// [`TensorError::Shape`] if `weight` is not 2-D, [`TensorError::Index`] for an index
    /// `>= num_embeddings`.
    ///
    /// ```
    /// # use strata_tensor::{IndexTensor, Tensor};
    /// let table = Tensor::<f32>::arange(0.0, 6.0, 1.0)?.reshape(&[3, 2])?;
    /// let tokens = IndexTensor::from_vec(vec![2, 2, 0], &[1, 3])?;
    /// let vectors = Tensor::embedding(&table, &tokens)?;
    /// assert_eq!(vectors.shape(), &[1, 3, 2]);
    /// assert_eq!(vectors.to_vec(), vec![4.0, 5.0, 4.0, 5.0, 0.0, 1.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn embedding(weight: &Tensor<T>, indices: &IndexTensor) -> Result<Tensor<T>> {
        let op = "embedding";
        if weight.ndim() != 2 {
            return Err(TensorError::Shape {
                op,
                expected: "a 2-D weight (num_embeddings, embedding_dim)".into(),
                got: weight.shape().to_vec(),
            });
        }
        let (rows, dim) = (weight.shape()[0], weight.shape()[1]);
        indices.check_bound(op, rows)?;

        let mut shape = indices.shape().to_vec();
        shape.push(dim);
        let mut out = vec![T::zero(); indices.numel() * dim];
        if dim > 0 {
            let table = weight.contiguous_slice();
            let copy_row = |(row, &i): (&mut [T], &usize)| {
                row.copy_from_slice(&table[i * dim..(i + 1) * dim]);
            };
            if out.len() >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
                out.par_chunks_mut(dim)
                    .zip(indices.as_slice().par_iter())
                    .for_each(copy_row);
            } else {
                out.chunks_mut(dim)
                    .zip(indices.as_slice())
                    .for_each(copy_row);
            }
        }
        Ok(Tensor::from_contiguous(out, shape))
    }

    /// The gradient of [`Tensor::embedding`] with respect to its weight: the rows of `grad`
    /// summed into the table rows their indices name. Rows whose index equals `padding_idx`
    /// are skipped, so that entry gets no gradient (PyTorch's `padding_idx`).
    ///
    /// Rows are added in index order on one thread, so the sums do not depend on scheduling.
    ///
    /// ```text
    /// grad_weight[r, :] = sum over positions p with indices[p] == r (r != padding_idx)
    ///                     of grad[p, :]
    /// ```
    ///
    /// # Shapes
    /// - `grad`: `(*s, embedding_dim)`; `indices`: `s`; output: `(num_embeddings, embedding_dim)`
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] if `grad` is not `indices.shape` plus one trailing dim,
    /// [`TensorError::Index`] for an index `>= num_embeddings`.
    pub fn embedding_backward(
        grad: &Tensor<T>,
        indices: &IndexTensor,
        num_embeddings: usize,
        padding_idx: Option<usize>,
    ) -> Result<Tensor<T>> {
        let op = "embedding_backward";
        let fits =
            grad.ndim() == indices.ndim() + 1 && grad.shape()[..indices.ndim()] == *indices.shape();
        if !fits {
            return Err(TensorError::ShapeMismatch {
                op,
                what: "grad must be the indices' shape plus a trailing embedding dim".into(),
                lhs: grad.shape().to_vec(),
                rhs: indices.shape().to_vec(),
            });
        }
        indices.check_bound(op, num_embeddings)?;

        let dim = grad.shape()[indices.ndim()];
        let mut out = vec![T::zero(); num_embeddings * dim];
        if dim > 0 {
            let grad = grad.contiguous_slice();
            for (g, &i) in grad.chunks(dim).zip(indices.as_slice()) {
                if Some(i) == padding_idx {
                    continue;
                }
                for (o, &x) in out[i * dim..(i + 1) * dim].iter_mut().zip(g) {
                    *o += x;
                }
            }
        }
        Ok(Tensor::from_contiguous(out, vec![num_embeddings, dim]))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn iota(shape: &[usize]) -> Tensor<f64> {
        let data = (0..shape.iter().product()).map(|i| i as f64).collect();
        Tensor::from_vec(data, shape).unwrap()
    }

    proptest! {
        #[test]
        fn embedding_backward_matches_one_hot_matmul(
            rows in 1usize..5,
            dim in 1usize..4,
            ids in prop::collection::vec(0usize..100, 1..8),
            pad in prop::option::of(0usize..5),
        ) {
            // grad_weight = one_hot(ids)^T @ grad, written out as loops over a dense one-hot.
            let ids: Vec<usize> = ids.iter().map(|&i| i % rows).collect();
            let index = IndexTensor::from_slice(&ids);
            let grad = iota(&[ids.len(), dim]).add_scalar(1.0);
            let hot = Tensor::<f64>::one_hot(&index, rows).unwrap();

            let got = Tensor::embedding_backward(&grad, &index, rows, pad).unwrap();

            let mut expected = vec![0.0; rows * dim];
            for r in 0..rows {
                if Some(r) == pad {
                    continue;
                }
                for p in 0..ids.len() {
                    for j in 0..dim {
                        expected[r * dim + j] +=
                            hot.get(&[p, r]).unwrap() * grad.get(&[p, j]).unwrap();
                    }
                }
            }
            prop_assert_eq!(got.shape(), &[rows, dim][..]);
            prop_assert_eq!(got.to_vec(), expected);
        }
    }

    #[test]
    fn embedding_picks_rows_of_a_transposed_table() {
        let table = iota(&[2, 3]).t().unwrap();
        let index = IndexTensor::from_vec(vec![1, 0, 2, 1], &[2, 2]).unwrap();

        let out = Tensor::embedding(&table, &index).unwrap();

        assert_eq!(out.shape(), &[2, 2, 2]);
        assert_eq!(out.to_vec(), vec![1.0, 4.0, 0.0, 3.0, 2.0, 5.0, 1.0, 4.0]);
    }

    #[test]
    fn embedding_large_lookup_agrees_with_index_select() {
        // Large enough to take the parallel path.
        let table = iota(&[50, 64]);
        let ids: Vec<usize> = (0..2048).map(|i| (i * 7) % 50).collect();
        let index = IndexTensor::from_slice(&ids);

        let out = Tensor::embedding(&table, &index).unwrap();

        assert_eq!(out, table.index_select(0, &index).unwrap());
    }

    #[test]
    fn embedding_errors_name_op_and_shapes() {
        let table = iota(&[3, 2]);
        let index = IndexTensor::from_slice(&[0, 3]);

        assert_eq!(
            Tensor::embedding(&table, &index).unwrap_err().to_string(),
            "embedding: index 3 out of range for size 3"
        );
        assert_eq!(
            Tensor::embedding(&iota(&[6]), &index)
                .unwrap_err()
                .to_string(),
            "embedding: expected a 2-D weight (num_embeddings, embedding_dim), got shape [6]"
        );
        assert_eq!(
            Tensor::embedding_backward(&iota(&[3, 2]), &index, 3, None)
                .unwrap_err()
                .to_string(),
            "embedding_backward: grad must be the indices' shape plus a trailing embedding dim \
             (lhs [3, 2], rhs [2])"
        );
        assert_eq!(
            Tensor::embedding_backward(&iota(&[2, 2]), &index, 3, None)
                .unwrap_err()
                .to_string(),
            "embedding_backward: index 3 out of range for size 3"
        );
    }

    #[test]
    fn one_hot_rejects_class_out_of_range() {
        let index = IndexTensor::from_vec(vec![0, 1, 4, 2], &[2, 2]).unwrap();

        let err = Tensor::<f32>::one_hot(&index, 4).unwrap_err();
        let ok = Tensor::<f32>::one_hot(&index, 5).unwrap();

        assert_eq!(err.to_string(), "one_hot: index 4 out of range for size 4");
        assert_eq!(ok.shape(), &[2, 2, 5]);
        assert_eq!(ok.get(&[1, 0, 4]), Some(1.0));
        assert_eq!(ok.to_vec().iter().sum::<f32>(), 4.0);
    }
}
