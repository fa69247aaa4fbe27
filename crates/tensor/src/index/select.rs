//! Selection by position along one dim (`index_select`, `gather`), the matching scatters that
//! form their gradients (`index_add`, `scatter_add`), and `masked_fill`.

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::index_tensor::IndexTensor;
use crate::shape::{contiguous_strides, normalize_dim, numel};
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// The entries of `self` at the given positions along `dim`, in the order given (repeats
    /// allowed).
    ///
    /// ```text
    /// out[.., k, ..] = self[.., index[k], ..]
    /// backward: grad_self = zeros(self.shape).index_add(dim, index, grad_out)
    /// ```
    ///
    /// # Shapes
    /// - `self`: `(.., n, ..)` with `n` at `dim`; `index`: `(k,)`; output: `(.., k, ..)`
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::Shape`] if `index` is not 1-D,
    /// [`TensorError::Index`] for an index `>= n`.
    ///
    /// ```
    /// # use strata_tensor::{IndexTensor, Tensor};
    /// let x = Tensor::<f32>::arange(0.0, 6.0, 1.0)?.reshape(&[3, 2])?;
    /// let rows = x.index_select(0, &IndexTensor::from_slice(&[2, 0]))?;
    /// assert_eq!(rows.to_vec(), vec![4.0, 5.0, 0.0, 1.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn index_select(&self, dim: isize, index: &IndexTensor) -> Result<Tensor<T>> {
        let op = "index_select";
        let d = normalize_dim(op, dim, self.ndim())?;
        check_one_dim(op, index)?;
        index.check_bound(op, self.shape()[d])?;

        let (outer, size, inner) = split_at_dim(self.shape(), d);
        let picks = index.as_slice();
        let src = self.contiguous_slice();
        let mut out = Vec::with_capacity(outer * picks.len() * inner);
        for o in 0..outer {
            for &i in picks {
                let at = (o * size + i) * inner;
                out.extend_from_slice(&src[at..at + inner]);
            }
        }
        let mut shape = self.shape().to_vec();
        shape[d] = picks.len();
        Ok(Tensor::from_contiguous(out, shape))
    }

    /// `self` with the slices of `src` added at the given positions along `dim`; repeated
    /// positions accumulate (PyTorch's out-of-place `index_add`). This is the gradient of
    /// [`Tensor::index_select`].
    ///
    /// ```text
    /// out = self;  out[.., index[k], ..] += src[.., k, ..]     for each k
    /// ```
    ///
    /// # Shapes
    /// - `self`: `(.., n, ..)`; `index`: `(k,)`; `src`: `(.., k, ..)`; output: as `self`
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::Shape`] if `index` is not 1-D,
    /// [`TensorError::ShapeMismatch`] if `src` is not `self`'s shape with `k` at `dim`,
    /// [`TensorError::Index`] for an index `>= n`.
    pub fn index_add(&self, dim: isize, index: &IndexTensor, src: &Tensor<T>) -> Result<Tensor<T>> {
        let op = "index_add";
        let d = normalize_dim(op, dim, self.ndim())?;
        check_one_dim(op, index)?;
        let picks = index.as_slice();
        let mut expected = self.shape().to_vec();
        expected[d] = picks.len();
        if src.shape() != expected {
            return Err(TensorError::ShapeMismatch {
                op,
                what: format!(
                    "src must have self's shape with {} at dim {dim}",
                    picks.len()
                ),
                lhs: self.shape().to_vec(),
                rhs: src.shape().to_vec(),
            });
        }
        index.check_bound(op, self.shape()[d])?;

        let (outer, size, inner) = split_at_dim(self.shape(), d);
        let src = src.contiguous_slice();
        let mut out = self.to_vec();
        for o in 0..outer {
            for (k, &i) in picks.iter().enumerate() {
                let to = (o * size + i) * inner;
                let from = (o * picks.len() + k) * inner;
                add_row(&mut out[to..to + inner], &src[from..from + inner]);
            }
        }
        Ok(Tensor::from_contiguous(out, self.shape().to_vec()))
    }

    /// Picks one entry along `dim` for every position of `index` (PyTorch's `gather`).
    ///
    /// `index` has the rank of `self` and, on every dim but `dim`, at most `self`'s size; the
    /// output has `index`'s shape. For a 3-D tensor and `dim = 1`:
    ///
    /// ```text
    /// out[i][j][k] = self[i][index[i][j][k]][k]
    /// backward: grad_self = zeros(self.shape).scatter_add(dim, index, grad_out)
    /// ```
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::ShapeMismatch`] if `index` has another
    /// rank or is larger than `self` on a dim other than `dim`, [`TensorError::Index`] for an
    /// index `>= self.shape[dim]`.
    ///
    /// ```
    /// # use strata_tensor::{IndexTensor, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// let picks = IndexTensor::from_vec(vec![1, 0], &[2, 1])?;
    /// assert_eq!(x.gather(1, &picks)?.to_vec(), vec![2.0, 3.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn gather(&self, dim: isize, index: &IndexTensor) -> Result<Tensor<T>> {
        let op = "gather";
        let d = normalize_dim(op, dim, self.ndim())?;
        check_fits(op, "index", index.shape(), "self", self.shape(), Some(d))?;
        index.check_bound(op, self.shape()[d])?;

        let src = self.contiguous_slice();
        let mut src_strides = contiguous_strides(self.shape());
        let step = std::mem::replace(&mut src_strides[d], 0);
        let picks = index.as_slice();
        let mut out = Vec::with_capacity(picks.len());
        walk(index.shape(), &src_strides, &src_strides, |k, base, _| {
            out.push(src[base + picks[k] * step]);
        });
        Ok(Tensor::from_contiguous(out, index.shape().to_vec()))
    }

    /// `self` with each entry of `src` added at the position `index` names along `dim`;
    /// repeated positions accumulate (PyTorch's out-of-place `scatter_add`). This is the
    /// gradient of [`Tensor::gather`]. For a 3-D tensor and `dim = 1`:
    ///
    /// ```text
    /// out = self;  out[i][index[i][j][k]][k] += src[i][j][k]     for every (i, j, k) of index
    /// ```
    ///
    /// # Shapes
    /// `self`, `index` and `src` share one rank; `index` is at most `src`'s size on every dim
    /// and at most `self`'s size on every dim but `dim`. Only the leading `index.shape` block of
    /// `src` is read. Output: `self`'s shape.
    ///
    /// # Errors
    /// [`TensorError::Dim`] for a bad dim, [`TensorError::ShapeMismatch`] if the shapes do not
    /// fit as above, [`TensorError::Index`] for an index `>= self.shape[dim]`.
    pub fn scatter_add(
        &self,
        dim: isize,
        index: &IndexTensor,
        src: &Tensor<T>,
    ) -> Result<Tensor<T>> {
        let op = "scatter_add";
        let d = normalize_dim(op, dim, self.ndim())?;
        check_fits(op, "index", index.shape(), "self", self.shape(), Some(d))?;
        check_fits(op, "index", index.shape(), "src", src.shape(), None)?;
        index.check_bound(op, self.shape()[d])?;

        let mut out = self.to_vec();
        let mut out_strides = contiguous_strides(self.shape());
        let step = std::mem::replace(&mut out_strides[d], 0);
        let src_strides = contiguous_strides(src.shape());
        let src = src.contiguous_slice();
        let picks = index.as_slice();
        walk(
            index.shape(),
            &out_strides,
            &src_strides,
            |k, base, from| {
                out[base + picks[k] * step] += src[from];
            },
        );
        Ok(Tensor::from_contiguous(out, self.shape().to_vec()))
    }

    /// `self` with `value` wherever `mask` is non-zero; `mask` is broadcast to `self`'s shape.
    ///
    /// ```text
    /// out[i] = value if mask[i] != 0 else self[i]
    /// backward: grad_self = grad_out where mask == 0, else 0
    /// ```
    ///
    /// # Errors
    /// [`TensorError::Broadcast`] if `mask` does not broadcast to `self`'s shape.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let scores = Tensor::<f32>::zeros(&[2, 2]);
    /// let causal = Tensor::from_vec(vec![0.0, 1.0, 0.0, 0.0], &[2, 2])?;
    /// let masked = scores.masked_fill(&causal, f32::NEG_INFINITY)?;
    /// assert_eq!(masked.to_vec(), vec![0.0, f32::NEG_INFINITY, 0.0, 0.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn masked_fill(&self, mask: &Tensor<T>, value: T) -> Result<Tensor<T>> {
        let mask = mask
            .broadcast_to(self.shape())
            .map_err(|_| TensorError::Broadcast {
                op: "masked_fill",
                lhs: self.shape().to_vec(),
                rhs: mask.shape().to_vec(),
            })?;
        self.zip_map(
            &mask,
            "masked_fill",
            |x, m| {
                if m != T::zero() {
                    value
                } else {
                    x
                }
            },
        )
    }
}

/// Sizes before, at and after dim `d`: `(outer, size, inner)`, so a contiguous tensor's element
/// `[o, i, j]` sits at `(o * size + i) * inner + j`.
fn split_at_dim(shape: &[usize], d: usize) -> (usize, usize, usize) {
    (numel(&shape[..d]), shape[d], numel(&shape[d + 1..]))
}

fn add_row<T: Element>(dst: &mut [T], src: &[T]) {
    for (o, &x) in dst.iter_mut().zip(src) {
        *o += x;
    }
}

fn check_one_dim(op: &'static str, index: &IndexTensor) -> Result<()> {
    if index.ndim() != 1 {
        return Err(TensorError::Shape {
            op,
            expected: "a 1-D index".into(),
            got: index.shape().to_vec(),
        });
    }
    Ok(())
}

/// Checks `small` has the rank of `large` and is no larger on any dim except `free`.
fn check_fits(
    op: &'static str,
    small_name: &str,
    small: &[usize],
    large_name: &str,
    large: &[usize],
    free: Option<usize>,
) -> Result<()> {
    let fits = small.len() == large.len()
        && (0..small.len()).all(|i| Some(i) == free || small[i] <= large[i]);
    if fits {
        return Ok(());
    }
    let except = free.map_or(String::new(), |d| format!(" except dim {d}"));
    Err(TensorError::ShapeMismatch {
        op,
        what: format!("{small_name} must have the rank of {large_name} and no larger size{except}"),
        lhs: small.to_vec(),
        rhs: large.to_vec(),
    })
}

/// Visits every position of `shape` in row-major order, calling `f(k, a, b)` with the position's
/// rank `k` and its offsets under the strides `a` and `b`.
fn walk(shape: &[usize], a: &[usize], b: &[usize], mut f: impl FnMut(usize, usize, usize)) {
    let count = numel(shape);
    let mut pos = vec![0; shape.len()];
    let (mut off_a, mut off_b) = (0, 0);
    for k in 0..count {
        f(k, off_a, off_b);
        for axis in (0..shape.len()).rev() {
            pos[axis] += 1;
            off_a += a[axis];
            off_b += b[axis];
            if pos[axis] < shape[axis] {
                break;
            }
            off_a -= a[axis] * shape[axis];
            off_b -= b[axis] * shape[axis];
            pos[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Dimension;
    use proptest::prelude::*;

    use super::*;

    fn iota(shape: &[usize]) -> Tensor<f64> {
        let data = (0..numel(shape)).map(|i| i as f64).collect();
        Tensor::from_vec(data, shape).unwrap()
    }

    /// A 3-D shape, a dim, and an index tensor valid for `gather` along that dim.
    fn gather_case() -> impl Strategy<Value = (Vec<usize>, usize, IndexTensor)> {
        (
            prop::collection::vec(1usize..4, 3),
            0usize..3,
            prop::collection::vec(1usize..4, 3),
        )
            .prop_flat_map(|(shape, dim, index_shape)| {
                let index_shape: Vec<usize> = (0..3)
                    .map(|i| {
                        if i == dim {
                            index_shape[i]
                        } else {
                            index_shape[i].min(shape[i])
                        }
                    })
                    .collect();
                let bound = shape[dim];
                let values = prop::collection::vec(0..bound, numel(&index_shape));
                (Just(shape), Just(dim), Just(index_shape), values)
            })
            .prop_map(|(shape, dim, index_shape, values)| {
                (
                    shape,
                    dim,
                    IndexTensor::from_vec(values, &index_shape).unwrap(),
                )
            })
    }

    proptest! {
        #[test]
        fn gather_matches_loop((shape, dim, index) in gather_case()) {
            let x = iota(&shape).add_scalar(0.5);

            let y = x.gather(dim as isize, &index).unwrap();

            let s = index.shape();
            let mut expected = Vec::new();
            for i in 0..s[0] {
                for j in 0..s[1] {
                    for k in 0..s[2] {
                        let mut at = [i, j, k];
                        at[dim] = index.as_slice()[(i * s[1] + j) * s[2] + k];
                        expected.push(x.get(&at).unwrap());
                    }
                }
            }
            prop_assert_eq!(y.shape(), s);
            prop_assert_eq!(y.to_vec(), expected);
        }

        #[test]
        fn scatter_add_matches_loop((shape, dim, index) in gather_case(), extra in 0usize..2) {
            // src may be larger than index; only its leading block is read.
            let x = iota(&shape);
            let src_shape: Vec<usize> = index.shape().iter().map(|&n| n + extra).collect();
            let src = iota(&src_shape).mul_scalar(0.25);

            let y = x.scatter_add(dim as isize, &index, &src).unwrap();

            let mut expected = x.to_array();
            let s = index.shape();
            for i in 0..s[0] {
                for j in 0..s[1] {
                    for k in 0..s[2] {
                        let mut at = [i, j, k];
                        at[dim] = index.as_slice()[(i * s[1] + j) * s[2] + k];
                        expected[&at[..]] += src.get(&[i, j, k]).unwrap();
                    }
                }
            }
            prop_assert_eq!(y, Tensor::from_array(expected));
        }

        #[test]
        fn index_select_then_index_add_matches_loop(
            shape in prop::collection::vec(1usize..4, 1..4),
            dim in 0usize..3,
            picks in prop::collection::vec(0usize..100, 0..6),
        ) {
            let dim = dim % shape.len();
            let picks: Vec<usize> = picks.iter().map(|&p| p % shape[dim]).collect();
            let index = IndexTensor::from_slice(&picks);
            let x = iota(&shape).transpose(0, -1).unwrap().contiguous();
            let x = x.reshape(&shape).unwrap();

            let selected = x.index_select(dim as isize, &index).unwrap();
            let summed = Tensor::zeros(&shape).index_add(dim as isize, &index, &selected).unwrap();

            let counts: Vec<f64> = (0..shape[dim])
                .map(|i| picks.iter().filter(|&&p| p == i).count() as f64)
                .collect();
            let x = x.to_array();
            let mut expected_sum = x.clone();
            for (at, v) in expected_sum.indexed_iter_mut() {
                *v *= counts[at[dim]];
            }
            for (at, &v) in selected.to_array().indexed_iter() {
                let mut from = at.slice().to_vec();
                from[dim] = picks[from[dim]];
                prop_assert_eq!(v, x[from.as_slice()]);
            }
            prop_assert_eq!(summed, Tensor::from_array(expected_sum));
        }
    }

    #[test]
    fn gather_rejects_out_of_range_index_without_panicking() {
        let x = iota(&[2, 3]);
        let index = IndexTensor::from_vec(vec![0, 3], &[2, 1]).unwrap();

        let err = x.gather(1, &index).unwrap_err();

        assert_eq!(err.to_string(), "gather: index 3 out of range for size 3");
    }

    #[test]
    fn gather_and_scatter_add_reject_misshapen_index() {
        let x = iota(&[2, 3]);
        let flat = IndexTensor::from_slice(&[0, 1]);
        let wide = IndexTensor::from_vec(vec![0; 8], &[2, 4]).unwrap();
        let tall = IndexTensor::from_vec(vec![0; 3], &[3, 1]).unwrap();

        assert_eq!(
            x.gather(1, &flat).unwrap_err().to_string(),
            "gather: index must have the rank of self and no larger size except dim 1 \
             (lhs [2], rhs [2, 3])"
        );
        assert!(x.gather(1, &wide).is_ok());
        assert!(x.gather(1, &tall).is_err());
        assert!(x.scatter_add(1, &wide, &iota(&[2, 4])).is_ok());
        assert_eq!(
            x.scatter_add(1, &wide, &iota(&[2, 3]))
                .unwrap_err()
                .to_string(),
            "scatter_add: index must have the rank of src and no larger size \
             (lhs [2, 4], rhs [2, 3])"
        );
        assert!(x.scatter_add(1, &tall, &iota(&[3, 1])).is_err());
        assert!(x.gather(2, &wide).is_err());
    }

    #[test]
    fn index_select_and_index_add_check_their_arguments() {
        let x = iota(&[3, 2]);
        let index = IndexTensor::from_slice(&[0, 3]);
        let nested = IndexTensor::from_vec(vec![0, 1], &[1, 2]).unwrap();

        assert_eq!(
            x.index_select(0, &index).unwrap_err().to_string(),
            "index_select: index 3 out of range for size 3"
        );
        assert_eq!(
            x.index_select(0, &nested).unwrap_err().to_string(),
            "index_select: expected a 1-D index, got shape [1, 2]"
        );
        assert!(x.index_add(0, &index, &iota(&[2, 2])).is_err());
        assert_eq!(
            x.index_add(0, &IndexTensor::from_slice(&[1]), &iota(&[2, 2]))
                .unwrap_err()
                .to_string(),
            "index_add: src must have self's shape with 1 at dim 0 (lhs [3, 2], rhs [2, 2])"
        );
    }

    #[test]
    fn masked_fill_broadcasts_the_mask() {
        let x = iota(&[2, 3]);
        let column = Tensor::from_vec(vec![1.0, 0.0, 1.0], &[3]).unwrap();

        let y = x.masked_fill(&column, -1.0).unwrap();

        assert_eq!(y.to_vec(), vec![-1.0, 1.0, -1.0, -1.0, 4.0, -1.0]);
        assert_eq!(
            x.masked_fill(&iota(&[2, 2, 3]), 0.0)
                .unwrap_err()
                .to_string(),
            "masked_fill: cannot broadcast [2, 3] with [2, 2, 3]"
        );
        assert!(x.masked_fill(&iota(&[2]), 0.0).is_err());
    }
}
