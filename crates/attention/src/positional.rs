//! Absolute positional encodings: the sinusoidal table of "Attention Is All You Need" and a
//! learned embedding of positions (GPT-2's `wpe`).

use strata_autograd::Var;
use strata_nn_layers::{prefixed, Module};
use strata_tensor::{Element, Generator, Tensor};

use crate::error::{config_err, shape_err, Result};

/// The sinusoidal table of "Attention Is All You Need" for positions
/// `offset..offset + seq_len`.
///
/// ```text
/// PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
/// PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))
/// ```
///
/// Angles are computed in `f64` and rounded once. An odd `d_model` ends with a sine column.
///
/// # Shapes
/// - output: `(seq_len, d_model)`
pub fn sinusoidal_encoding<T: Element>(seq_len: usize, d_model: usize, offset: usize) -> Tensor<T> {
    let mut data = Vec::with_capacity(seq_len * d_model);
    for pos in offset..offset + seq_len {
        for c in 0..d_model {
            let pair = (c / 2 * 2) as f64;
            let angle = pos as f64 / 10000f64.powf(pair / d_model as f64);
            data.push(T::from_f64(if c % 2 == 0 {
                angle.sin()
            } else {
                angle.cos()
            }));
        }
    }
    Tensor::from_vec(data, &[seq_len, d_model]).expect("bug: sinusoidal table shape")
}

/// Adds the sinusoidal table to its input; no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinusoidalPositionalEncoding {
    d_model: usize,
}

impl SinusoidalPositionalEncoding {
    /// An encoding of width `d_model`.
    pub fn new(d_model: usize) -> Self {
        Self { d_model }
    }

    /// The width of the encoding.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// `x + PE[offset..offset + seq]`, for a sequence starting at position `offset`.
    ///
    /// # Shapes
    /// - `x`: `(.., seq, d_model)`; output: the same
    ///
    /// # Errors
    /// [`crate::AttentionError::Shape`] if `x` is not `(.., seq, d_model)`.
    pub fn forward<T: Element>(&self, x: &Var<T>, offset: usize) -> Result<Var<T>> {
        let s = x.shape();
        if s.len() < 2 || s[s.len() - 1] != self.d_model {
            return Err(shape_err(
                "SinusoidalPositionalEncoding",
                format!("expected (.., seq, {}), got {s:?}", self.d_model),
            ));
        }
        let table = sinusoidal_encoding(s[s.len() - 2], self.d_model, offset);
        Ok(x.add(&Var::new(table))?)
    }
}

/// A learned embedding of positions `0..max_len`, initialised `N(0, 1)` as `nn.Embedding`.
///
/// Its one parameter is named `weight`, so it loads from a PyTorch `nn.Embedding(max_len,
/// d_model)` (GPT-2's `wpe`).
#[derive(Debug)]
pub struct LearnedPositionalEmbedding<T: Element> {
    weight: Var<T>,
}

impl<T: Element> LearnedPositionalEmbedding<T> {
    /// An embedding of `max_len` positions of width `d_model`, drawn from `gen`.
    ///
    /// # Errors
    /// [`crate::AttentionError::Config`] if `max_len` or `d_model` is zero.
    pub fn new(max_len: usize, d_model: usize, gen: &mut Generator) -> Result<Self> {
        if max_len == 0 || d_model == 0 {
            return Err(config_err(
                "LearnedPositionalEmbedding",
                format!("max_len {max_len} and d_model {d_model} must be positive"),
            ));
        }
        Ok(Self {
            weight: Var::parameter(gen.randn(&[max_len, d_model])),
        })
    }

    /// The `(max_len, d_model)` table.
    pub fn weight(&self) -> &Var<T> {
        &self.weight
    }

    /// The number of positions the table holds.
    pub fn max_len(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The embeddings of positions `offset..offset + seq_len`; add them to token embeddings.
    ///
    /// # Shapes
    /// - output: `(seq_len, d_model)`
    ///
    /// # Errors
    /// [`crate::AttentionError::Shape`] if `offset + seq_len` exceeds `max_len`.
    pub fn forward(&self, seq_len: usize, offset: usize) -> Result<Var<T>> {
        if offset + seq_len > self.max_len() {
            return Err(shape_err(
                "LearnedPositionalEmbedding",
                format!(
                    "positions {offset}..{} exceed max_len {}",
                    offset + seq_len,
                    self.max_len()
                ),
            ));
        }
        Ok(self.weight.narrow(0, offset, seq_len)?)
    }
}

impl<T: Element> Module<T> for LearnedPositionalEmbedding<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        f(&prefixed(prefix, "weight"), &self.weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoidal_table_matches_the_formula() {
        let pe: Tensor<f64> = sinusoidal_encoding(5, 6, 0);

        let want = |pos: f64, c: usize| {
            let angle = pos / 10000f64.powf((c / 2 * 2) as f64 / 6.0);
            if c % 2 == 0 {
                angle.sin()
            } else {
                angle.cos()
            }
        };
        for pos in 0..5 {
            for c in 0..6 {
                assert!((pe.get(&[pos, c]).unwrap() - want(pos as f64, c)).abs() < 1e-15);
            }
        }
        assert_eq!(pe.get(&[0, 1]), Some(1.0));
    }

    #[test]
    fn sinusoidal_offset_is_a_shifted_window() {
        let full: Tensor<f64> = sinusoidal_encoding(7, 5, 0);

        let tail: Tensor<f64> = sinusoidal_encoding(3, 5, 4);

        assert_eq!(tail.to_vec(), full.narrow(0, 4, 3).unwrap().to_vec());
    }

    #[test]
    fn learned_embedding_returns_rows_and_trains() {
        let emb = LearnedPositionalEmbedding::<f64>::new(6, 3, &mut Generator::new(0)).unwrap();

        let rows = emb.forward(2, 3).unwrap();
        rows.sum_all().backward().unwrap();

        let g = emb.weight().grad().unwrap().to_vec();
        assert_eq!(g.iter().filter(|&&x| x == 1.0).count(), 6);
        assert_eq!(
            rows.value().to_vec(),
            emb.weight().value().narrow(0, 3, 2).unwrap().to_vec()
        );
        assert!(emb.forward(4, 3).is_err());
        assert_eq!(emb.named_parameters()[0].0, "weight");
    }
}
