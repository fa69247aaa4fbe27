//! `IndexTensor`: integer indices with a shape, for gather, embedding lookups, targets and
//! argmax results (PyTorch's `LongTensor`).

use crate::error::{Result, TensorError};
use crate::shape::numel;

/// An n-dimensional array of `usize` indices in row-major order.
///
/// Tensors hold floats only; ops that take or return positions (`gather`, `index_select`,
/// embedding lookup, `argmax`, max-pooling indices, class targets) use this type instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTensor {
    data: Vec<usize>,
    shape: Vec<usize>,
}

impl IndexTensor {
    /// Builds an index tensor from row-major data and a shape.
    ///
    /// # Errors
    /// [`TensorError::ElementCount`] if `data.len()` differs from the product of `shape`.
    ///
    /// ```
    /// # use strata_tensor::IndexTensor;
    /// let targets = IndexTensor::from_vec(vec![2, 0, 1], &[3])?;
    /// assert_eq!(targets.as_slice(), &[2, 0, 1]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn from_vec(data: Vec<usize>, shape: &[usize]) -> Result<Self> {
        if data.len() != numel(shape) {
            return Err(TensorError::ElementCount {
                op: "IndexTensor::from_vec",
                len: data.len(),
                shape: shape.to_vec(),
            });
        }
        Ok(Self {
            data,
            shape: shape.to_vec(),
        })
    }

    /// A 1-D index tensor.
    pub fn from_slice(data: &[usize]) -> Self {
        Self {
            data: data.to_vec(),
            shape: vec![data.len()],
        }
    }

    /// The size of each dimension.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The number of indices.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The indices in row-major order.
    pub fn as_slice(&self) -> &[usize] {
        &self.data
    }

    /// The indices, consuming `self`.
    pub fn into_vec(self) -> Vec<usize> {
        self.data
    }

    /// The same indices with another shape of equal element count.
    ///
    /// # Errors
    /// [`TensorError::ElementCount`] if the element counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        Self::from_vec(self.data.clone(), shape)
    }

    /// Checks every index is below `bound`, naming `op` in the error.
    ///
    /// # Errors
    /// [`TensorError::Index`] for the first index out of range.
    pub fn check_bound(&self, op: &'static str, bound: usize) -> Result<()> {
        match self.data.iter().find(|&&i| i >= bound) {
            Some(&i) => Err(TensorError::Index {
                op,
                index: i as i64,
                size: bound,
            }),
            None => Ok(()),
        }
    }
}
