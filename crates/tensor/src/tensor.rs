//! The `Tensor` type: a strided view over shared, copy-on-write storage.

use std::fmt;

use ndarray::{ArcArray1, ArrayD, ArrayViewD, IxDyn, ShapeBuilder};

use crate::element::{DType, Element};
use crate::error::{Result, TensorError};
use crate::shape::{contiguous_strides, numel};

/// An n-dimensional array of `f32` or `f64`.
///
/// A tensor is a view: a shape, strides and an offset into a flat buffer that several tensors
/// may share. Cloning is cheap (a reference count), and `transpose`, `permute`, `narrow`,
/// `broadcast_to` and friends return views without copying. Writing through
/// [`Tensor::data_mut`] copies the buffer first if another tensor still shares it
/// (copy-on-write), so a view never changes behind another tensor's back.
///
/// Strides are counted in elements and never negative; a zero stride repeats an element
/// (that is how a broadcast view is built).
#[derive(Clone)]
pub struct Tensor<T: Element> {
    storage: ArcArray1<T>,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

impl<T: Element> Tensor<T> {
    /// Builds a tensor from row-major data and a shape.
    ///
    /// # Errors
    /// [`TensorError::ElementCount`] if `data.len()` differs from the product of `shape`.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// assert_eq!(t.shape(), &[2, 3]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Result<Self> {
        if data.len() != numel(shape) {
            return Err(TensorError::ElementCount {
                op: "from_vec",
                len: data.len(),
                shape: shape.to_vec(),
            });
        }
        Ok(Self::from_contiguous(data, shape.to_vec()))
    }

    /// Builds a contiguous tensor; the caller guarantees `data.len() == numel(&shape)`.
    pub(crate) fn from_contiguous(data: Vec<T>, shape: Vec<usize>) -> Self {
        debug_assert_eq!(
            data.len(),
            numel(&shape),
            "bug: data length does not match shape"
        );
        crate::memory::keep_freed_memory();
        let strides = contiguous_strides(&shape);
        Self {
            storage: ArcArray1::from_vec(data),
            shape,
            strides,
            offset: 0,
        }
    }

    /// A view of `self`'s storage with another layout.
    ///
    /// The caller guarantees that every index reachable through `shape` and `strides` from
    /// `offset` lies inside the storage; [`Tensor::view`] relies on it.
    pub(crate) fn restride(&self, shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(
            shape.len(),
            strides.len(),
            "bug: shape and strides differ in rank"
        );
        debug_assert!(
            numel(&shape) == 0
                || offset
                    + shape
                        .iter()
                        .zip(&strides)
                        .map(|(&n, &s)| (n - 1) * s)
                        .sum::<usize>()
                    < self.storage.len(),
            "bug: view reaches outside its storage"
        );
        debug_assert!(
            offset <= self.storage.len(),
            "bug: view offset outside its storage"
        );
        Self {
            storage: self.storage.clone(),
            shape,
            strides,
            offset,
        }
    }

    /// Where the first element of this view sits in the shared storage, in elements.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// Takes ownership of an ndarray array.
    pub fn from_array(array: ArrayD<T>) -> Self {
        let shape = array.shape().to_vec();
        let data = if array.is_standard_layout() {
            array.into_raw_vec_and_offset().0
        } else {
            array.iter().copied().collect()
        };
        Self::from_contiguous(data, shape)
    }

    /// A zero-dimensional tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Self::from_contiguous(vec![value], Vec::new())
    }

    /// The size of each dimension.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The strides of each dimension, in elements.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// The number of dimensions (PyTorch's `dim()`).
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The size of dimension `dim` (negative counts from the end).
    ///
    /// # Errors
    /// [`TensorError::Dim`] if `dim` is out of range.
    pub fn size(&self, dim: isize) -> Result<usize> {
        Ok(self.shape[crate::shape::normalize_dim("size", dim, self.ndim())?])
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Whether the elements lie in row-major order without gaps (offset aside).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&n, &s) in self.shape.iter().zip(&self.strides).rev() {
            if n != 1 && s != expected {
                return false;
            }
            expected *= n;
        }
        true
    }

    /// Whether two tensors share one buffer (one may be a view of the other).
    pub fn shares_storage_with(&self, other: &Tensor<T>) -> bool {
        self.storage.as_ptr() == other.storage.as_ptr()
    }

    /// An ndarray view of the elements, with this tensor's layout.
    pub fn view(&self) -> ArrayViewD<'_, T> {
        let dim = IxDyn(&self.shape).strides(IxDyn(&self.strides));
        // SAFETY: `restride` and the constructors keep every reachable index inside the storage,
        // strides are non-negative, and the storage outlives the borrow of `self`. Aliasing from
        // zero strides is allowed for read-only views.
        unsafe { ArrayViewD::from_shape_ptr(dim, self.storage.as_ptr().add(self.offset)) }
    }

    /// The storage from this view's first element to its end: element `index` of the view
    /// is `strided_data()[sum(index[d] * strides()[d])]`, what strided kernels such as
    /// [`crate::kernels::gemm`] read without copying.
    pub fn strided_data(&self) -> &[T] {
        let all = self
            .storage
            .as_slice()
            .expect("bug: storage is always contiguous");
        &all[self.offset..]
    }

    /// The elements as a slice, when they are contiguous.
    pub fn as_slice(&self) -> Option<&[T]> {
        if self.is_contiguous() {
            let all = self
                .storage
                .as_slice()
                .expect("bug: storage is always contiguous");
            Some(&all[self.offset..self.offset + self.numel()])
        } else {
            None
        }
    }

    /// Whether the view covers a dense block of memory with no gaps or repeats: row-major
    /// order or any permutation of it, such as a transpose.
    pub fn is_dense(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
        let mut dims: Vec<(usize, usize)> = self
            .strides
            .iter()
            .zip(&self.shape)
            .filter(|&(_, &n)| n != 1)
            .map(|(&s, &n)| (s, n))
            .collect();
        dims.sort_unstable();
        let mut expected = 1;
        for (s, n) in dims {
            if s != expected {
                return false;
            }
            expected *= n;
        }
        true
    }

    /// The elements in memory order, when the view is dense ([`Tensor::is_dense`]).
    ///
    /// Work that does not depend on the order of the elements (a sum of squares, scaling
    /// each element) can run over this slice and skip the copy that a transposed view needs
    /// to become row-major. For a contiguous tensor it is [`Tensor::as_slice`].
    pub fn as_slice_memory_order(&self) -> Option<&[T]> {
        if self.is_dense() {
            let all = self
                .storage
                .as_slice()
                .expect("bug: storage is always contiguous");
            Some(&all[self.offset..self.offset + self.numel()])
        } else {
            None
        }
    }

    /// The elements as a mutable slice in memory order, for in-place updates that do not
    /// depend on element order.
    ///
    /// A dense view that owns its whole buffer (a transposed gradient, say) is updated where
    /// it lies; anything else is first copied as [`Tensor::data_mut`] does, and the slice is
    /// then row-major. Shared buffers are copied first (copy-on-write), as there.
    pub fn data_mut_memory_order(&mut self) -> &mut [T] {
        let whole = self.offset == 0 && self.storage.len() == self.numel();
        if !(whole && self.is_dense()) {
            return self.data_mut();
        }
        self.storage
            .as_slice_mut()
            .expect("bug: storage is always contiguous")
    }

    /// The elements in row-major order, borrowed when contiguous and copied otherwise.
    pub fn contiguous_slice(&self) -> std::borrow::Cow<'_, [T]> {
        match self.as_slice() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(self.gather_rows()),
        }
    }

    /// Copies a non-contiguous view into row-major order, a whole last-dim row at a time
    /// where rows are contiguous (much faster than an element iterator for transposed views).
    fn gather_rows(&self) -> Vec<T> {
        let rank = self.ndim();
        if rank >= 2 && self.strides[rank - 2] == 1 && self.shape[rank - 2] > 1 {
            return self.gather_transposed();
        }
        let mut out = Vec::with_capacity(self.numel());
        if rank == 0 || self.strides[rank - 1] != 1 {
            out.extend(self.view().iter().copied());
            return out;
        }
        // Unit stride on the last dim: copy each row as a slice, walking the leading dims
        // with an odometer (ndarray's dynamic-rank lane iterator costs more than a short row).
        let n = self.shape[rank - 1];
        if n == 0 || self.numel() == 0 {
            return out;
        }
        let src = self
            .storage
            .as_slice()
            .expect("bug: storage is always contiguous");
        let lead = &self.shape[..rank - 1];
        let lead_strides = &self.strides[..rank - 1];
        let mut index = vec![0usize; lead.len()];
        let mut base = self.offset;
        for _ in 0..self.numel() / n {
            out.extend_from_slice(&src[base..base + n]);
            for d in (0..lead.len()).rev() {
                index[d] += 1;
                base += lead_strides[d];
                if index[d] < lead[d] {
                    break;
                }
                base -= lead_strides[d] * lead[d];
                index[d] = 0;
            }
        }
        out
    }

    /// Copies a view whose last two dims are a transposed matrix (unit stride on the
    /// second-to-last dim) in cache-sized tiles.
    fn gather_transposed(&self) -> Vec<T> {
        const TILE: usize = 32;
        let rank = self.ndim();
        let (m, n) = (self.shape[rank - 2], self.shape[rank - 1]);
        let col_stride = self.strides[rank - 1];
        let src = self
            .storage
            .as_slice()
            .expect("bug: storage is always contiguous");
        let lead = &self.shape[..rank - 2];
        let lead_strides = &self.strides[..rank - 2];
        let batches: usize = lead.iter().product();
        let mut out = vec![T::zero(); self.numel()];
        let mut index = vec![0usize; lead.len()];
        for b in 0..batches {
            let base = self.offset
                + index
                    .iter()
                    .zip(lead_strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            let dst = &mut out[b * m * n..(b + 1) * m * n];
            for i0 in (0..m).step_by(TILE) {
                for j0 in (0..n).step_by(TILE) {
                    for j in j0..(j0 + TILE).min(n) {
                        let col = base + j * col_stride;
                        for i in i0..(i0 + TILE).min(m) {
                            dst[i * n + j] = src[col + i];
                        }
                    }
                }
            }
            for d in (0..lead.len()).rev() {
                index[d] += 1;
                if index[d] < lead[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out
    }

    /// The elements in row-major order.
    pub fn to_vec(&self) -> Vec<T> {
        self.contiguous_slice().into_owned()
    }

    /// A copy as an owned ndarray array in standard layout.
    pub fn to_array(&self) -> ArrayD<T> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.to_vec())
            .expect("bug: element count matches shape")
    }

    /// A contiguous tensor with the same elements: `self` itself (a cheap clone) when already
    /// contiguous, a copy otherwise.
    pub fn contiguous(&self) -> Tensor<T> {
        if self.is_contiguous() {
            self.clone()
        } else {
            Self::from_contiguous(self.to_vec(), self.shape.clone())
        }
    }

    /// The elements as a mutable row-major slice, for in-place updates.
    ///
    /// Copies first when the tensor is a non-contiguous view, a part of a larger buffer, or
    /// shares its buffer with another tensor (copy-on-write), so other tensors never see the
    /// change.
    pub fn data_mut(&mut self) -> &mut [T] {
        let whole = self.offset == 0 && self.storage.len() == self.numel();
        if !(whole && self.is_contiguous()) {
            *self = Self::from_contiguous(self.to_vec(), self.shape.clone());
        }
        self.storage
            .as_slice_mut()
            .expect("bug: storage is always contiguous")
    }

    /// The single value of a one-element tensor.
    ///
    /// # Errors
    /// [`TensorError::Shape`] if the tensor does not hold exactly one element.
    pub fn item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(TensorError::Shape {
                op: "item",
                expected: "exactly one element".into(),
                got: self.shape.clone(),
            });
        }
        Ok(self
            .view()
            .iter()
            .copied()
            .next()
            .expect("bug: one element"))
    }

    /// The element at a multi-index, or `None` when the index is out of range.
    pub fn get(&self, index: &[usize]) -> Option<T> {
        self.view().get(IxDyn(index)).copied()
    }

    /// Converts the elements to another element type.
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        let data = self
            .view()
            .iter()
            .map(|&x| U::from_f64(x.as_f64()))
            .collect();
        Tensor::from_contiguous(data, self.shape.clone())
    }
}

impl<T: Element> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({:?}, shape={:?}, dtype={})",
            self.view(),
            self.shape,
            T::DTYPE.name()
        )
    }
}

impl<T: Element> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.view(), f)
    }
}

impl<T: Element> From<ArrayD<T>> for Tensor<T> {
    fn from(array: ArrayD<T>) -> Self {
        Self::from_array(array)
    }
}

impl<T: Element> PartialEq for Tensor<T> {
    /// Same shape and the same elements (IEEE equality: NaN differs from itself).
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.view() == other.view()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_checks_element_count() {
        let err = Tensor::<f32>::from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "from_vec: 5 elements cannot take shape [2, 3]"
        );
    }

    #[test]
    fn data_mut_copies_shared_storage() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
        let mut b = a.clone();
        assert!(b.shares_storage_with(&a));

        b.data_mut()[0] = 10.0;

        assert_eq!(a.to_vec(), vec![1.0, 2.0, 3.0]);
        assert_eq!(b.to_vec(), vec![10.0, 2.0, 3.0]);
        assert!(!b.shares_storage_with(&a));
    }

    #[test]
    fn copies_of_transposed_and_strided_views_match_element_order() {
        let data: Vec<f64> = (0..2 * 3 * 40 * 37).map(f64::from).collect();
        let base = Tensor::from_vec(data, &[2, 3, 40, 37]).unwrap();
        let views = [
            base.transpose(-2, -1).unwrap(),
            base.permute(&[1, 0, 3, 2]).unwrap(),
            base.slice(2, 1, 40, 3).unwrap(),
            base.transpose(0, 2).unwrap(),
            base.permute(&[0, 2, 1, 3]).unwrap(),
            base.narrow(3, 5, 10).unwrap().narrow(1, 1, 2).unwrap(),
            base.narrow(0, 1, 1)
                .unwrap()
                .broadcast_to(&[4, 3, 40, 37])
                .unwrap(),
        ];

        for view in &views {
            let expected: Vec<f64> = view.view().iter().copied().collect();
            assert_eq!(view.to_vec(), expected, "shape {:?}", view.shape());
        }
    }

    #[test]
    fn item_requires_one_element() {
        assert_eq!(Tensor::scalar(2.5f64).item().unwrap(), 2.5);
        assert!(Tensor::from_vec(vec![1.0f32, 2.0], &[2])
            .unwrap()
            .item()
            .is_err());
    }

    #[test]
    fn memory_order_slices_cover_dense_views_only() {
        let base = Tensor::from_vec((0..24).map(f64::from).collect(), &[2, 3, 4]).unwrap();
        let transposed = base.permute(&[2, 0, 1]).unwrap();
        let sliced = base.narrow(2, 1, 2).unwrap();
        let repeated = base
            .narrow(0, 0, 1)
            .unwrap()
            .broadcast_to(&[3, 3, 4])
            .unwrap();

        assert!(transposed.is_dense() && !transposed.is_contiguous());
        assert_eq!(
            transposed.as_slice_memory_order().unwrap(),
            base.as_slice().unwrap()
        );
        assert!(!sliced.is_dense() && sliced.as_slice_memory_order().is_none());
        assert!(!repeated.is_dense());
    }

    #[test]
    fn data_mut_memory_order_updates_a_transpose_in_place_and_copies_shared_buffers() {
        let base = Tensor::from_vec((0..6).map(f64::from).collect(), &[2, 3]).unwrap();
        let mut alone = base
            .transpose(0, 1)
            .unwrap()
            .contiguous()
            .transpose(0, 1)
            .unwrap();
        let mut shared = base.transpose(0, 1).unwrap();

        alone
            .data_mut_memory_order()
            .iter_mut()
            .for_each(|x| *x *= 2.0);
        shared
            .data_mut_memory_order()
            .iter_mut()
            .for_each(|x| *x *= 2.0);

        assert!(!alone.is_contiguous());
        assert_eq!(alone.to_vec(), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(shared.to_vec(), vec![0.0, 6.0, 2.0, 8.0, 4.0, 10.0]);
        assert_eq!(base.to_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}
