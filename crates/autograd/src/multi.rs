//! Ops over lists of variables (`concat`, `stack`, `split`, `chunk`).
//!
//! The derivatives table describes ops with a fixed number of inputs, so `concat`, whose
//! inputs are a list, has its backward rule written here by hand: each input receives the
//! slice of the output gradient it contributed. The others are built from `concat`, `narrow`
//! and `unsqueeze`, so they need no rule of their own.

use strata_tensor::{normalize_dim, Element, Tensor};

use crate::error::Result;
use crate::var::{Backward, Var};

impl<T: Element> Var<T> {
    /// Joins variables along an existing dim (PyTorch's `torch.cat`).
    ///
    /// ```text
    /// y = [x_1, ..., x_n] along dim     dx_i = the slice of dy that x_i filled
    /// ```
    ///
    /// # Errors
    /// If the list is empty, `dim` is out of range, or the shapes differ outside `dim`.
    pub fn concat(vars: &[&Var<T>], dim: isize) -> Result<Var<T>> {
        let values: Vec<Tensor<T>> = vars.iter().map(|v| v.value()).collect();
        let refs: Vec<&Tensor<T>> = values.iter().collect();
        let value = Tensor::concat(&refs, dim)?;
        let axis = normalize_dim("concat", dim, value.ndim())?;
        let sizes: Vec<usize> = vars.iter().map(|v| v.shape()[axis]).collect();
        let inputs: Vec<Var<T>> = vars.iter().map(|&v| v.clone()).collect();
        Ok(Var::record(value, "concat", inputs, || {
            Box::new(ConcatBackward { axis, sizes })
        }))
    }

    /// Joins variables along a new dim (PyTorch's `torch.stack`).
    ///
    /// # Errors
    /// If the list is empty, the shapes differ, or `dim` is out of range.
    pub fn stack(vars: &[&Var<T>], dim: isize) -> Result<Var<T>> {
        let rank = vars.first().map_or(0, |v| v.ndim());
        let axis = strata_tensor::normalize_insert_dim("stack", dim, rank)?;
        let lifted: Vec<Var<T>> = vars
            .iter()
            .map(|v| v.unsqueeze(axis as isize))
            .collect::<Result<_>>()?;
        Var::concat(&lifted.iter().collect::<Vec<_>>(), axis as isize)
    }

    /// Splits into pieces of `size` along `dim` (the last may be shorter), as views.
    ///
    /// # Errors
    /// If `size` is zero or `dim` is out of range.
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Var<T>>> {
        let axis = normalize_dim("split", dim, self.ndim())?;
        if size == 0 {
            return Err(strata_tensor::TensorError::InvalidArgument {
                op: "split",
                reason: "split size must be positive".into(),
            }
            .into());
        }
        let total = self.shape()[axis];
        (0..total)
            .step_by(size)
            .map(|start| self.narrow(dim, start, size.min(total - start)))
            .collect()
    }

    /// Splits into `chunks` nearly equal pieces along `dim`, as PyTorch's `chunk` does (pieces
    /// of `ceil(n / chunks)`, so there may be fewer than `chunks`).
    ///
    /// # Errors
    /// If `chunks` is zero or `dim` is out of range.
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Var<T>>> {
        let axis = normalize_dim("chunk", dim, self.ndim())?;
        if chunks == 0 {
            return Err(strata_tensor::TensorError::InvalidArgument {
                op: "chunk",
                reason: "the number of chunks must be positive".into(),
            }
            .into());
        }
        self.split(self.shape()[axis].div_ceil(chunks).max(1), dim)
    }
}

struct ConcatBackward {
    axis: usize,
    sizes: Vec<usize>,
}

impl<T: Element> Backward<T> for ConcatBackward {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn backward(
        &self,
        inputs: &[Var<T>],
        _: &Var<T>,
        grad: &Var<T>,
    ) -> Result<Vec<Option<Var<T>>>> {
        let mut start = 0;
        let mut grads = Vec::with_capacity(inputs.len());
        for (input, &len) in inputs.iter().zip(&self.sizes) {
            grads.push(if input.requires_grad() {
                Some(grad.narrow(self.axis as isize, start, len)?)
            } else {
                None
            });
            start += len;
        }
        Ok(grads)
    }
}
