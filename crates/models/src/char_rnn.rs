//! `CharRnn`: a character-level recurrent language model (embedding, RNN/LSTM/GRU, linear
//! head), in the manner of Karpathy's char-rnn.

use serde::{Deserialize, Serialize};
use strata_autograd::{no_grad, Var};
use strata_nn_layers::{
    cross_entropy, prefixed, Embedding, Forward, Gru, Linear, Lstm, Module, RecurrentConfig, Rnn,
    RnnConfig,
};
use strata_tensor::{Element, Generator, IndexTensor};

use crate::error::{ModelError, Result};
use crate::parts::check_tokens;
use crate::sampling::SamplingConfig;

/// Which recurrent layer a [`CharRnn`] uses; serialized in snake case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// Elman RNN with tanh, `nn.RNN`.
    Rnn,
    /// Long short-term memory, `nn.LSTM`. The default.
    #[default]
    Lstm,
    /// Gated recurrent unit, `nn.GRU`.
    Gru,
}

/// The configuration of a [`CharRnn`].
///
/// The default suits the embedded Shakespeare corpus: 65 characters, a 2-layer LSTM of
/// width 256 over 64-wide embeddings, no dropout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CharRnnConfig {
    /// Number of token ids (characters). Default 65.
    pub vocab_size: usize,
    /// Width of the character embeddings. Default 64.
    pub embedding_dim: usize,
    /// Width of each recurrent layer's state. Default 256.
    pub hidden_size: usize,
    /// Number of stacked recurrent layers. Default 2.
    pub num_layers: usize,
    /// The recurrent cell. Default LSTM.
    pub cell: CellKind,
    /// Dropout between recurrent layers, in training mode. Default 0.0.
    pub dropout: f64,
}

impl Default for CharRnnConfig {
    fn default() -> Self {
        Self {
            vocab_size: 65,
            embedding_dim: 64,
            hidden_size: 256,
            num_layers: 2,
            cell: CellKind::Lstm,
            dropout: 0.0,
        }
    }
}

/// The recurrent state carried between calls: `h` for RNN and GRU, `(h, c)` for LSTM, each
/// `(num_layers, batch, hidden_size)`.
///
/// Pass it back to [`CharRnn::forward`] to continue a sequence; call [`CharRnnState::detach`]
/// between training windows for truncated backpropagation through time.
#[derive(Debug, Clone)]
pub enum CharRnnState<T: Element> {
    /// The hidden state of an RNN or GRU.
    Hidden(Var<T>),
    /// The hidden and cell states of an LSTM.
    Lstm(Var<T>, Var<T>),
}

impl<T: Element> CharRnnState<T> {
    /// The same state cut from the graph that produced it.
    pub fn detach(&self) -> Self {
        match self {
            CharRnnState::Hidden(h) => CharRnnState::Hidden(h.detach()),
            CharRnnState::Lstm(h, c) => CharRnnState::Lstm(h.detach(), c.detach()),
        }
    }
}

#[derive(Debug)]
enum Recurrent<T: Element> {
    Rnn(Rnn<T>),
    Lstm(Lstm<T>),
    Gru(Gru<T>),
}

/// A character-level language model.
///
/// ```text
/// idx (B, T) -> embedding (B, T, E) -> rnn, num_layers layers (B, T, H) -> head (B, T, V)
/// ```
///
/// Parameters are named as a PyTorch module with attributes `embedding` (`nn.Embedding`),
/// `rnn` (`nn.RNN`, `nn.LSTM` or `nn.GRU` with `batch_first=True`) and `head` (`nn.Linear`):
/// `embedding.weight`, `rnn.weight_ih_l0`, `rnn.weight_hh_l0`, `rnn.bias_ih_l0`, ...,
/// `head.weight`, `head.bias`; each starts as PyTorch initialises it.
///
/// ```
/// use strata_models::{CellKind, CharRnn, CharRnnConfig, SamplingConfig};
/// use strata_tensor::{Generator, IndexTensor};
///
/// let config = CharRnnConfig { vocab_size: 5, embedding_dim: 4, hidden_size: 8, num_layers: 1,
///     cell: CellKind::Gru, dropout: 0.0 };
/// let mut gen = Generator::new(0);
/// let model = CharRnn::<f32>::new(&config, &mut gen)?;
/// let idx = IndexTensor::from_vec(vec![0, 1, 2], &[1, 3])?;
/// let (logits, _state) = model.forward(&idx, None)?;
/// assert_eq!(logits.shape(), &[1, 3, 5]);
/// let text = model.generate(&idx, 4, &SamplingConfig::default(), &mut gen)?;
/// assert_eq!(text.shape(), &[1, 7]);
/// # Ok::<(), strata_models::ModelError>(())
/// ```
#[derive(Debug)]
pub struct CharRnn<T: Element> {
    config: CharRnnConfig,
    embedding: Embedding<T>,
    rnn: Recurrent<T>,
    head: Linear<T>,
}

impl<T: Element> CharRnn<T> {
    /// Builds the model, drawing weights from `gen`.
    ///
    /// # Errors
    /// [`ModelError::Config`] for a zero size or layer count, or dropout outside `[0, 1)`.
    pub fn new(config: &CharRnnConfig, gen: &mut Generator) -> Result<Self> {
        let sizes = [config.vocab_size, config.embedding_dim, config.hidden_size];
        if sizes.contains(&0) || config.num_layers == 0 || !(0.0..1.0).contains(&config.dropout) {
            return Err(ModelError::Config {
                model: "char_rnn",
                reason: format!("sizes must be positive and dropout in [0, 1), got {config:?}"),
            });
        }
        let (e, h) = (config.embedding_dim, config.hidden_size);
        let recurrent = RecurrentConfig {
            num_layers: config.num_layers,
            batch_first: true,
            dropout: config.dropout,
            ..RecurrentConfig::default()
        };
        let embedding = Embedding::new(config.vocab_size, e, gen);
        let rnn = match config.cell {
            CellKind::Rnn => {
                let rnn_config = RnnConfig {
                    num_layers: config.num_layers,
                    batch_first: true,
                    dropout: config.dropout,
                    ..RnnConfig::default()
                };
                Recurrent::Rnn(Rnn::new(e, h, rnn_config, gen)?)
            }
            CellKind::Lstm => Recurrent::Lstm(Lstm::new(e, h, recurrent, gen)?),
            CellKind::Gru => Recurrent::Gru(Gru::new(e, h, recurrent, gen)?),
        };
        Ok(Self {
            config: config.clone(),
            embedding,
            rnn,
            head: Linear::new(h, config.vocab_size, gen),
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &CharRnnConfig {
        &self.config
    }

    /// Next-token logits for every position, and the state after the last one.
    ///
    /// # Shapes
    /// - `idx`: `(B, T)` token ids, `T >= 1`; `state`: see [`CharRnnState`] (zeros if `None`)
    /// - output: `(B, T, vocab_size)`
    ///
    /// # Errors
    /// [`ModelError::Input`] for a wrong shape or an id outside the vocabulary, or a state of
    /// the wrong kind; [`ModelError::Nn`] for a state of the wrong shape.
    pub fn forward(
        &self,
        idx: &IndexTensor,
        state: Option<&CharRnnState<T>>,
    ) -> Result<(Var<T>, CharRnnState<T>)> {
        if idx.ndim() != 2 || idx.numel() == 0 {
            return Err(ModelError::Input {
                model: "char_rnn",
                reason: format!("expected non-empty (batch, seq) ids, got {:?}", idx.shape()),
            });
        }
        check_tokens("char_rnn", idx, self.config.vocab_size)?;
        let xs = self.embedding.forward(idx)?;
        let wrong_state = || ModelError::Input {
            model: "char_rnn",
            reason: "the state's kind does not match the recurrent cell".into(),
        };
        let (out, next) = match (&self.rnn, state) {
            (Recurrent::Rnn(rnn), None) => hidden(rnn.forward(&xs, None)?),
            (Recurrent::Rnn(rnn), Some(CharRnnState::Hidden(h))) => {
                hidden(rnn.forward(&xs, Some(h))?)
            }
            (Recurrent::Gru(gru), None) => hidden(gru.forward(&xs, None)?),
            (Recurrent::Gru(gru), Some(CharRnnState::Hidden(h))) => {
                hidden(gru.forward(&xs, Some(h))?)
            }
            (Recurrent::Lstm(lstm), None) => lstm_state(lstm.forward(&xs, None)?),
            (Recurrent::Lstm(lstm), Some(CharRnnState::Lstm(h, c))) => {
                lstm_state(lstm.forward(&xs, Some((h, c)))?)
            }
            _ => return Err(wrong_state()),
        };
        Ok((self.head.forward(&out)?, next))
    }

    /// Mean cross entropy of the next-token predictions against `targets`, from a zero state.
    ///
    /// # Shapes
    /// - `idx`, `targets`: `(B, T)`; output: a scalar
    ///
    /// # Errors
    /// As for [`CharRnn::forward`], and [`ModelError::Input`] if `targets` has another shape.
    pub fn loss(&self, idx: &IndexTensor, targets: &IndexTensor) -> Result<Var<T>> {
        if targets.shape() != idx.shape() {
            return Err(ModelError::Input {
                model: "char_rnn",
                reason: format!(
                    "targets shape {:?} differs from idx shape {:?}",
                    targets.shape(),
                    idx.shape()
                ),
            });
        }
        let (logits, _) = self.forward(idx, None)?;
        let n = idx.numel();
        let flat = logits.reshape(&[n, self.config.vocab_size])?;
        Ok(cross_entropy(&flat, &targets.reshape(&[n])?)?)
    }

    /// Continues each row of `prompt` by `max_new_tokens` sampled tokens, carrying the
    /// recurrent state (the prompt is read once, then one token per step), without recording
    /// a graph.
    ///
    /// Inter-layer dropout follows the model's mode: call [`Module::eval`] first when the
    /// config has dropout.
    ///
    /// # Shapes
    /// - `prompt`: `(B, T)` with `T >= 1`; output: `(B, T + max_new_tokens)`
    ///
    /// # Errors
    /// [`ModelError::Input`] for an invalid prompt, [`ModelError::Config`] for an invalid
    /// sampling config.
    pub fn generate(
        &self,
        prompt: &IndexTensor,
        max_new_tokens: usize,
        sampling: &SamplingConfig,
        gen: &mut Generator,
    ) -> Result<IndexTensor> {
        sampling.validate()?;
        let _guard = no_grad();
        let (logits, mut state) = self.forward(prompt, None)?;
        let (b_sz, prompt_len) = (prompt.shape()[0], prompt.shape()[1]);
        let vocab = self.config.vocab_size;
        let mut rows: Vec<Vec<usize>> = prompt
            .as_slice()
            .chunks(prompt_len)
            .map(<[usize]>::to_vec)
            .collect();
        let mut last = logits.value().narrow(1, prompt_len - 1, 1)?.to_vec();
        for step in 0..max_new_tokens {
            let mut next = Vec::with_capacity(b_sz);
            for (b, row) in rows.iter_mut().enumerate() {
                let row_logits: Vec<f64> = last[b * vocab..(b + 1) * vocab]
                    .iter()
                    .map(|x| x.as_f64())
                    .collect();
                let token = sampling.sample(&row_logits, gen)?;
                row.push(token);
                next.push(token);
            }
            if step + 1 == max_new_tokens {
                break;
            }
            let (logits, new_state) =
                self.forward(&IndexTensor::from_vec(next, &[b_sz, 1])?, Some(&state))?;
            state = new_state;
            last = logits.value().to_vec();
        }
        Ok(IndexTensor::from_vec(
            rows.concat(),
            &[b_sz, prompt_len + max_new_tokens],
        )?)
    }
}

fn hidden<T: Element>((out, h): (Var<T>, Var<T>)) -> (Var<T>, CharRnnState<T>) {
    (out, CharRnnState::Hidden(h))
}

fn lstm_state<T: Element>((out, (h, c)): (Var<T>, (Var<T>, Var<T>))) -> (Var<T>, CharRnnState<T>) {
    (out, CharRnnState::Lstm(h, c))
}

impl<T: Element> Module<T> for CharRnn<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        self.embedding
            .visit_parameters(&prefixed(prefix, "embedding"), f);
        let rnn = prefixed(prefix, "rnn");
        match &self.rnn {
            Recurrent::Rnn(m) => m.visit_parameters(&rnn, f),
            Recurrent::Lstm(m) => m.visit_parameters(&rnn, f),
            Recurrent::Gru(m) => m.visit_parameters(&rnn, f),
        }
        self.head.visit_parameters(&prefixed(prefix, "head"), f);
    }

    fn set_training(&mut self, training: bool) {
        match &mut self.rnn {
            Recurrent::Rnn(m) => m.set_training(training),
            Recurrent::Lstm(m) => m.set_training(training),
            Recurrent::Gru(m) => m.set_training(training),
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_optim::{Adam, AdamConfig, Optimizer};

    use super::*;

    fn tiny(cell: CellKind) -> CharRnnConfig {
        CharRnnConfig {
            vocab_size: 7,
            embedding_dim: 8,
            hidden_size: 24,
            num_layers: 2,
            cell,
            dropout: 0.0,
        }
    }

    fn ids(data: &[usize], shape: &[usize]) -> IndexTensor {
        IndexTensor::from_vec(data.to_vec(), shape).unwrap()
    }

    #[test]
    fn names_follow_pytorch() {
        let model = CharRnn::<f32>::new(&tiny(CellKind::Lstm), &mut Generator::new(0)).unwrap();

        let named: Vec<(String, Vec<usize>)> = model
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec()))
            .collect();

        assert_eq!(named[0], ("embedding.weight".into(), vec![7, 8]));
        assert_eq!(named[1], ("rnn.weight_ih_l0".into(), vec![96, 8]));
        assert_eq!(named[5], ("rnn.weight_ih_l1".into(), vec![96, 24]));
        assert_eq!(named[9], ("head.weight".into(), vec![7, 24]));
        assert_eq!(named.len(), 11);
    }

    #[test]
    fn carried_state_matches_one_long_pass() {
        for cell in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let model = CharRnn::<f64>::new(&tiny(cell), &mut Generator::new(1)).unwrap();
            let seq = ids(&[1, 2, 3, 4, 5, 6], &[1, 6]);

            let (full, _) = model.forward(&seq, None).unwrap();
            let (a, state) = model.forward(&ids(&[1, 2, 3, 4], &[1, 4]), None).unwrap();
            let (b, _) = model.forward(&ids(&[5, 6], &[1, 2]), Some(&state)).unwrap();

            let joined = Var::concat(&[&a, &b], 1).unwrap().value().to_vec();
            for (x, y) in joined.iter().zip(full.value().to_vec()) {
                assert!((x - y).abs() < 1e-12, "{cell:?}");
            }
        }
    }

    #[test]
    fn wrong_state_kind_is_an_error() {
        let model = CharRnn::<f32>::new(&tiny(CellKind::Gru), &mut Generator::new(0)).unwrap();
        let h = Var::new(strata_tensor::Tensor::zeros(&[2, 1, 24]));
        let state = CharRnnState::Lstm(h.clone(), h);

        let result = model.forward(&ids(&[1], &[1, 1]), Some(&state));

        assert!(matches!(result, Err(ModelError::Input { .. })));
    }

    #[test]
    fn training_drives_the_loss_to_zero_and_greedy_generation_recites() {
        for cell in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let model = CharRnn::<f32>::new(&tiny(cell), &mut Generator::new(2)).unwrap();
            let text = [1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6];
            let idx = ids(&text[..12], &[1, 12]);
            let targets = ids(&text[1..], &[1, 12]);
            let config = AdamConfig {
                lr: 0.02,
                ..AdamConfig::default()
            };
            let mut adam = Adam::new(model.parameters(), config).unwrap();

            let mut loss = f32::INFINITY;
            for _ in 0..60 {
                adam.zero_grad();
                let l = model.loss(&idx, &targets).unwrap();
                l.backward().unwrap();
                adam.step().unwrap();
                loss = l.value().item().unwrap();
            }
            let out = model
                .generate(
                    &ids(&[1], &[1, 1]),
                    6,
                    &SamplingConfig::greedy(),
                    &mut Generator::new(0),
                )
                .unwrap();

            assert!(loss < 0.05, "{cell:?}: loss {loss}");
            assert_eq!(out.as_slice(), &[1, 2, 3, 4, 5, 6, 0], "{cell:?}");
        }
    }
}
