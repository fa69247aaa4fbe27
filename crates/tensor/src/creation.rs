//! Constructors: constant tensors, ranges and the identity.

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::shape::numel;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor<T> {
        Self::full(shape, T::zero())
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Tensor<T> {
        Self::full(shape, T::one())
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: T) -> Tensor<T> {
        Tensor::from_contiguous(vec![value; numel(shape)], shape.to_vec())
    }

    /// Zeros with the shape of `self` (PyTorch's `zeros_like`).
    pub fn zeros_like(&self) -> Tensor<T> {
        Self::zeros(self.shape())
    }

    /// Ones with the shape of `self` (PyTorch's `ones_like`).
    pub fn ones_like(&self) -> Tensor<T> {
        Self::ones(self.shape())
    }

    /// The values `start, start + step, ...` below `end` (above it for a negative step), as a
    /// 1-D tensor, like `torch.arange(start, end, step)`.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] if `step` is zero or not finite, or the bounds are not
    /// finite.
    ///
    /// ```
    /// # use strata_tensor::Tensor;
    /// assert_eq!(Tensor::<f32>::arange(0.0, 5.0, 2.0)?.to_vec(), vec![0.0, 2.0, 4.0]);
    /// # Ok::<(), strata_tensor::TensorError>(())
    /// ```
    pub fn arange(start: T, end: T, step: T) -> Result<Tensor<T>> {
        if step == T::zero() || !(step.is_finite() && start.is_finite() && end.is_finite()) {
            return Err(TensorError::InvalidArgument {
                op: "arange",
                reason: format!(
                    "need finite bounds and a non-zero step, got {start}..{end} by {step}"
                ),
            });
        }
        let count = ((end.as_f64() - start.as_f64()) / step.as_f64())
            .ceil()
            .max(0.0) as usize;
        let data = (0..count)
            .map(|i| start + step * T::from_usize(i))
            .collect();
        Ok(Tensor::from_contiguous(data, vec![count]))
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive, like `torch.linspace`.
    pub fn linspace(start: T, end: T, steps: usize) -> Tensor<T> {
        let data = match steps {
            0 => Vec::new(),
            1 => vec![start],
            _ => {
                let step = (end - start) / T::from_usize(steps - 1);
                (0..steps)
                    .map(|i| {
                        if i == steps - 1 {
                            end
                        } else {
                            start + step * T::from_usize(i)
                        }
                    })
                    .collect()
            }
        };
        Tensor::from_contiguous(data, vec![steps])
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize) -> Tensor<T> {
        let mut data = vec![T::zero(); n * n];
        for i in 0..n {
            data[i * n + i] = T::one();
        }
        Tensor::from_contiguous(data, vec![n, n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arange_counts_like_pytorch() {
        assert_eq!(Tensor::<f64>::arange(0.0, 1.0, 0.25).unwrap().shape(), &[4]);
        assert_eq!(
            Tensor::<f64>::arange(3.0, 0.0, -1.0).unwrap().to_vec(),
            vec![3.0, 2.0, 1.0]
        );
        assert_eq!(Tensor::<f64>::arange(1.0, 0.0, 1.0).unwrap().numel(), 0);
        assert!(Tensor::<f64>::arange(0.0, 1.0, 0.0).is_err());
    }

    #[test]
    fn linspace_hits_both_ends() {
        let x = Tensor::<f32>::linspace(-1.0, 1.0, 5).to_vec();
        assert_eq!(x, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
    }

    #[test]
    fn eye_is_identity() {
        let e = Tensor::<f32>::eye(3);
        assert_eq!(e.get(&[1, 1]), Some(1.0));
        assert_eq!(e.get(&[0, 2]), Some(0.0));
    }
}
