//! `Flatten`: merges a range of dimensions into one, PyTorch's `nn.Flatten`.

use strata_autograd::Var;
use strata_tensor::Element;

use crate::error::Result;
use crate::module::{Forward, Module};

/// Flattens dimensions `start_dim..=end_dim` into one, PyTorch's
/// `nn.Flatten(start_dim=1, end_dim=-1)`: by default everything but the batch dimension.
///
/// # Shapes
/// - input: `(N, d1, d2, ...)`; output with the defaults: `(N, d1 * d2 * ...)`
///
/// # Errors
/// The forward fails if a dim is outside `-rank..rank` or `start_dim` comes after `end_dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flatten {
    /// The first dimension merged. Default `1`.
    pub start_dim: isize,
    /// The last dimension merged (inclusive). Default `-1`.
    pub end_dim: isize,
}

impl Default for Flatten {
    fn default() -> Self {
        Self {
            start_dim: 1,
            end_dim: -1,
        }
    }
}

impl Flatten {
    /// Flattens all dimensions but the first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Flattens dimensions `start_dim..=end_dim`.
    pub fn with_dims(start_dim: isize, end_dim: isize) -> Self {
        Self { start_dim, end_dim }
    }
}

impl<T: Element> Module<T> for Flatten {
    fn visit_parameters(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Var<T>)) {}
}

impl<T: Element> Forward<T> for Flatten {
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        Ok(xs.flatten(self.start_dim, self.end_dim)?)
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::Tensor;

    use super::*;

    #[test]
    fn flattens_all_but_batch_by_default() {
        let xs = Var::new(Tensor::<f32>::zeros(&[2, 3, 4, 5]));

        let flat = Forward::forward(&Flatten::new(), &xs).unwrap();
        let mid = Forward::forward(&Flatten::with_dims(1, 2), &xs).unwrap();

        assert_eq!(flat.shape(), &[2, 60]);
        assert_eq!(mid.shape(), &[2, 12, 5]);
    }
}
