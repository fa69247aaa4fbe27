//! `Embedding`: a table of learned vectors looked up by index, PyTorch's `nn.Embedding`.

use strata_autograd::Var;
use strata_tensor::{Element, Generator, IndexTensor, Tensor};

use crate::error::{NnError, Result};
use crate::module::{prefixed, Module};

/// Options of [`Embedding`]; `Default` matches PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbeddingConfig {
    /// A row that is kept at zero at initialisation and gets no gradient, e.g. for padding
    /// tokens (PyTorch's `padding_idx`). Default `None`.
    pub padding_idx: Option<usize>,
}

/// A lookup table of `num_embeddings` vectors of size `embedding_dim`.
///
/// ```text
/// y[p] = W[indices[p]]        W: (num_embeddings, embedding_dim), W ~ N(0, 1)
/// ```
///
/// With a `padding_idx`, that row starts at zero and receives no gradient, as in PyTorch.
///
/// # Shapes
/// - input: indices of any shape `(*)`
/// - output: `(*, embedding_dim)`
#[derive(Debug)]
pub struct Embedding<T: Element> {
    weight: Var<T>,
    padding_idx: Option<usize>,
}

impl<T: Element> Embedding<T> {
    /// A table drawn from `N(0, 1)` with `gen`, without padding row.
    pub fn new(num_embeddings: usize, embedding_dim: usize, gen: &mut Generator) -> Self {
        Self::with_config(
            num_embeddings,
            embedding_dim,
            EmbeddingConfig::default(),
            gen,
        )
        .expect("bug: an embedding without padding_idx is always valid")
    }

    /// A table drawn from `N(0, 1)` with `gen`, with the options of `config`.
    ///
    /// # Errors
    /// [`NnError::Config`] if `padding_idx` is not below `num_embeddings`.
    pub fn with_config(
        num_embeddings: usize,
        embedding_dim: usize,
        config: EmbeddingConfig,
        gen: &mut Generator,
    ) -> Result<Self> {
        let mut table: Tensor<T> = gen.randn(&[num_embeddings, embedding_dim]);
        if let Some(pad) = config.padding_idx {
            check_padding(pad, num_embeddings)?;
            let data = table.data_mut();
            data[pad * embedding_dim..(pad + 1) * embedding_dim].fill(T::zero());
        }
        Ok(Self {
            weight: Var::parameter(table),
            padding_idx: config.padding_idx,
        })
    }

    /// A layer around a given `(num_embeddings, embedding_dim)` table (PyTorch's
    /// `Embedding.from_pretrained`, trainable; the padding row is left as given).
    ///
    /// # Errors
    /// [`NnError::Config`] if `weight` is not 2-D or `padding_idx` is out of range.
    pub fn from_weight(weight: Var<T>, config: EmbeddingConfig) -> Result<Self> {
        if weight.ndim() != 2 {
            return Err(NnError::Config {
                layer: "Embedding",
                reason: format!(
                    "weight must be (num_embeddings, embedding_dim), got shape {:?}",
                    weight.shape()
                ),
            });
        }
        if let Some(pad) = config.padding_idx {
            check_padding(pad, weight.shape()[0])?;
        }
        Ok(Self {
            weight,
            padding_idx: config.padding_idx,
        })
    }

    /// The table, of shape `(num_embeddings, embedding_dim)`.
    pub fn weight(&self) -> &Var<T> {
        &self.weight
    }

    /// The number of rows of the table.
    pub fn num_embeddings(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The size of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The row that gets no gradient, if any.
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }

    /// Looks up the rows named by `indices`.
    ///
    /// # Shapes
    /// - `indices`: `(*)`; output: `(*, embedding_dim)`
    ///
    /// # Errors
    /// [`NnError::Input`] if an index is not below `num_embeddings`.
    pub fn forward(&self, indices: &IndexTensor) -> Result<Var<T>> {
        let n = self.num_embeddings();
        if let Some(&bad) = indices.as_slice().iter().find(|&&i| i >= n) {
            return Err(NnError::Input {
                layer: "Embedding",
                reason: format!("index {bad} out of range for {n} embeddings"),
            });
        }
        Ok(self.weight.embedding(indices, self.padding_idx)?)
    }
}

fn check_padding(pad: usize, num_embeddings: usize) -> Result<()> {
    if pad < num_embeddings {
        Ok(())
    } else {
        Err(NnError::Config {
            layer: "Embedding",
            reason: format!("padding_idx {pad} must be below num_embeddings {num_embeddings}"),
        })
    }
}

impl<T: Element> Module<T> for Embedding<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        f(&prefixed(prefix, "weight"), &self.weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_row_starts_at_zero_and_gets_no_gradient() {
        let config = EmbeddingConfig {
            padding_idx: Some(1),
        };
        let emb = Embedding::<f64>::with_config(4, 3, config, &mut Generator::new(5)).unwrap();
        let idx = IndexTensor::from_vec(vec![1, 2, 1, 0], &[2, 2]).unwrap();

        let ys = emb.forward(&idx).unwrap();
        ys.sum_all().backward().unwrap();
        let grad = emb.weight().grad().unwrap().to_vec();

        assert_eq!(ys.shape(), &[2, 2, 3]);
        assert_eq!(&emb.weight().value().to_vec()[3..6], &[0.0; 3]);
        assert_eq!(&grad[3..6], &[0.0; 3]);
        assert_eq!(&grad[0..3], &[1.0; 3]);
        assert_eq!(&grad[6..9], &[1.0; 3]);
    }

    #[test]
    fn out_of_range_index_and_padding_are_errors() {
        let emb = Embedding::<f32>::new(4, 2, &mut Generator::new(0));
        let config = EmbeddingConfig {
            padding_idx: Some(4),
        };

        assert!(emb.forward(&IndexTensor::from_slice(&[4])).is_err());
        assert!(Embedding::<f32>::with_config(4, 2, config, &mut Generator::new(0)).is_err());
    }
}
