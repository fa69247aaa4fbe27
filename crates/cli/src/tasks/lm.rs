//! `strata train gpt` and `strata train char-rnn`: character-level language models on the
//! embedded Shakespeare corpus or on a text file or folder. GPT's default is nanoGPT's CPU
//! recipe ("baby GPT").
//!
//! The vocabulary is every character of the text; the first 90% of the characters train and
//! the last 10% validate. Step `s` trains on `batch_size` windows at random positions drawn
//! from a generator seeded by `(seed, s)`; the validation loss is the mean over `eval_iters`
//! windows drawn once from a generator seeded by the seed alone, the same at every evaluation.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use strata_autograd::{no_grad, Var};
use strata_data::corpus::SHAKESPEARE;
use strata_data::text::{read_text, CharVocab, Split, TextDataset};
use strata_models::{
    param_groups_for_decay, CellKind, CharRnn, CharRnnConfig, Gpt, GptCache, GptConfig,
    SamplingConfig,
};
use strata_nn_layers::Module;
use strata_optim::{Optimizer, StateDict};
use strata_tensor::{Generator, IndexTensor, Tensor};

use super::{clip_grad_norm, data_error, model_config, optimizer};
use crate::checkpoint::{load_vars, TensorFile};
use crate::config::{ModelKind, OptimizerKind, RunConfig, TrainConfig};
use crate::progress::Progress;
use crate::rundir::RunDir;
use crate::trainer::{step_seed, EvalOutput, SampleOptions, StepOutput, Task};

/// The share of the text used for training; the rest validates.
const TRAIN_FRACTION: f64 = 0.9;
/// Mixed into the seed of the fixed validation batches.
const VALIDATION_SALT: u64 = 0x5641_4C49_4441_5445;
/// Characters sampled at the end of training.
const FINAL_SAMPLE: usize = 200;
/// The vocabulary file of a run folder.
pub const VOCAB_FILE: &str = "vocab.json";

/// nanoGPT's CPU recipe: 4 layers, 4 heads, width 128, context 64, no dropout, no bias;
/// AdamW 1e-3, betas (0.9, 0.99), weight decay 0.1, 100 warm-up steps, cosine decay to 1e-4
/// at step 2000, gradient clipping at 1.0, batch 12, 2000 steps, evaluation every 250 steps
/// over 200 batches, seed 1337. `vocab_size` is filled in from the data.
pub fn gpt_defaults() -> (Value, TrainConfig) {
    let model = GptConfig {
        vocab_size: 0,
        block_size: 64,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        dropout: 0.0,
        bias: false,
    };
    let train = TrainConfig {
        steps: 2000,
        epochs: None,
        batch_size: 12,
        optimizer: OptimizerKind::Adamw,
        lr: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 100,
        lr_decay_steps: 2000,
        betas: (0.9, 0.99),
        weight_decay: 0.1,
        grad_clip: 1.0,
        eval_interval: 250,
        eval_iters: 200,
        log_interval: 10,
        seed: 1337,
        data: None,
    };
    (
        serde_json::to_value(model).expect("bug: GptConfig serialises"),
        train,
    )
}

/// A char-rnn's model config: the model's own fields and the training window length.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CharRnnRunConfig {
    /// The network.
    #[serde(flatten)]
    pub model: CharRnnConfig,
    /// Characters per training window (backpropagation through time). Default 64.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
}

fn default_seq_len() -> usize {
    64
}

/// A 2-layer LSTM of width 256 over 64-wide embeddings, windows of 64 characters; AdamW 2e-3,
/// betas (0.9, 0.99), no weight decay, cosine decay to 2e-4 at step 2000, clipping at 1.0,
/// batch 32, 2000 steps, evaluation every 250 steps over 50 batches, seed 1337.
pub fn char_rnn_defaults() -> (Value, TrainConfig) {
    let model = CharRnnRunConfig {
        model: CharRnnConfig {
            vocab_size: 0,
            cell: CellKind::Lstm,
            ..CharRnnConfig::default()
        },
        seq_len: default_seq_len(),
    };
    let train = TrainConfig {
        steps: 2000,
        epochs: None,
        batch_size: 32,
        optimizer: OptimizerKind::Adamw,
        lr: 2e-3,
        min_lr: 2e-4,
        warmup_steps: 0,
        lr_decay_steps: 2000,
        betas: (0.9, 0.99),
        weight_decay: 0.0,
        grad_clip: 1.0,
        eval_interval: 250,
        eval_iters: 50,
        log_interval: 10,
        seed: 1337,
        data: None,
    };
    (
        serde_json::to_value(model).expect("bug: CharRnnRunConfig serialises"),
        train,
    )
}

/// The network of a language-model run.
enum Lm {
    Gpt(Gpt<f32>),
    CharRnn(CharRnn<f32>, usize),
}

impl Lm {
    /// Builds the network of `config` for a vocabulary of `vocab_size` characters. The
    /// configured `vocab_size` must be 0 (take it from the data) or equal to it.
    fn new(config: &RunConfig, vocab_size: usize, fresh: bool, seed: u64) -> Result<Self> {
        let check = |configured: usize| {
            if fresh && configured != 0 && configured != vocab_size {
                bail!(
                    "config: model_config.vocab_size is {configured} but the data has \
                     {vocab_size} distinct characters; leave vocab_size out, it is taken from \
                     the data"
                );
            }
            if !fresh && configured != vocab_size {
                bail!(
                    "{VOCAB_FILE} has {vocab_size} characters, the model has {configured} \
                     (model_config.vocab_size in config.json); the two disagree"
                );
            }
            Ok(())
        };
        let mut gen = Generator::new(seed);
        Ok(match config.model {
            ModelKind::Gpt => {
                let mut model_config: GptConfig = model_config(config)?;
                check(model_config.vocab_size)?;
                model_config.vocab_size = vocab_size;
                Lm::Gpt(Gpt::new(&model_config, &mut gen)?)
            }
            _ => {
                let mut run_config: CharRnnRunConfig = model_config(config)?;
                check(run_config.model.vocab_size)?;
                if run_config.seq_len == 0 {
                    bail!("config: model_config.seq_len must be at least 1");
                }
                run_config.model.vocab_size = vocab_size;
                Lm::CharRnn(
                    CharRnn::new(&run_config.model, &mut gen)?,
                    run_config.seq_len,
                )
            }
        })
    }

    fn module(&self) -> &dyn Module<f32> {
        match self {
            Lm::Gpt(model) => model,
            Lm::CharRnn(model, _) => model,
        }
    }

    fn module_mut(&mut self) -> &mut dyn Module<f32> {
        match self {
            Lm::Gpt(model) => model,
            Lm::CharRnn(model, _) => model,
        }
    }

    /// The dropout probability.
    fn dropout(&self) -> f64 {
        match self {
            Lm::Gpt(model) => model.config().dropout,
            Lm::CharRnn(model, _) => model.config().dropout,
        }
    }

    /// Tokens per training window.
    fn context(&self) -> usize {
        match self {
            Lm::Gpt(model) => model.config().block_size,
            Lm::CharRnn(_, seq_len) => *seq_len,
        }
    }

    fn config_json(&self) -> Value {
        match self {
            Lm::Gpt(model) => serde_json::to_value(model.config()),
            Lm::CharRnn(model, seq_len) => serde_json::to_value(CharRnnRunConfig {
                model: model.config().clone(),
                seq_len: *seq_len,
            }),
        }
        .expect("bug: model configs serialise")
    }

    fn loss(&self, xs: &IndexTensor, ys: &IndexTensor) -> Result<Var<f32>> {
        Ok(match self {
            Lm::Gpt(model) => model.loss(xs, ys)?,
            Lm::CharRnn(model, _) => model.loss(xs, ys)?,
        })
    }

    /// Continues `prompt` by `tokens` sampled tokens, calling `emit` with each as soon as it
    /// is drawn. The draws are those of the models' own `generate` (same generator use, same
    /// KV cache and cropping for GPT, same carried state for the char-rnn), so the tokens
    /// are the same; only they come one at a time.
    ///
    /// # Errors
    /// If the sampling config or the prompt is invalid, or `emit` fails.
    fn generate_streaming(
        &self,
        prompt: &[usize],
        tokens: usize,
        sampling: &SamplingConfig,
        gen: &mut Generator,
        emit: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<()> {
        sampling.validate()?;
        if prompt.is_empty() || tokens == 0 {
            return Ok(());
        }
        let _guard = no_grad();
        let last_row = |logits: &Var<f32>| -> Result<Vec<f64>> {
            let value = logits.value();
            let (seq, vocab) = (value.shape()[1], value.shape()[2]);
            let row = value.narrow(1, seq - 1, 1)?.to_vec();
            Ok(row[..vocab].iter().map(|&x| f64::from(x)).collect())
        };
        match self {
            Lm::Gpt(model) => {
                let block = model.config().block_size;
                let window = |row: &[usize]| -> Result<IndexTensor> {
                    let len = row.len().min(block);
                    Ok(IndexTensor::from_vec(
                        row[row.len() - len..].to_vec(),
                        &[1, len],
                    )?)
                };
                let mut row = prompt.to_vec();
                let mut cache = GptCache::new();
                let mut logits = model.forward_with_cache(&window(&row)?, &mut cache)?;
                for step in 0..tokens {
                    let token = sampling.sample(&last_row(&logits)?, gen)?;
                    row.push(token);
                    emit(token)?;
                    if step + 1 == tokens {
                        break;
                    }
                    logits = if cache.len() < block {
                        let next = IndexTensor::from_vec(vec![token], &[1, 1])?;
                        model.forward_with_cache(&next, &mut cache)?
                    } else {
                        cache.clear();
                        model.forward_with_cache(&window(&row)?, &mut cache)?
                    };
                }
            }
            Lm::CharRnn(model, _) => {
                let ids = IndexTensor::from_vec(prompt.to_vec(), &[1, prompt.len()])?;
                let (mut logits, mut state) = model.forward(&ids, None)?;
                for step in 0..tokens {
                    let token = sampling.sample(&last_row(&logits)?, gen)?;
                    emit(token)?;
                    if step + 1 == tokens {
                        break;
                    }
                    let next = IndexTensor::from_vec(vec![token], &[1, 1])?;
                    (logits, state) = model.forward(&next, Some(&state))?;
                }
            }
        }
        Ok(())
    }

    /// Every tensor by name; GPT's tied head weight appears twice, as in PyTorch.
    fn state_dict(&self) -> Vec<(String, Tensor<f32>)> {
        match self {
            Lm::Gpt(model) => model.state_dict(),
            Lm::CharRnn(model, _) => {
                let mut named = model.named_parameters();
                named.extend(model.named_buffers());
                named.into_iter().map(|(n, v)| (n, v.value())).collect()
            }
        }
    }
}

/// A language model with its text, vocabulary and optimizer.
pub struct LmTask {
    model: Lm,
    optimizer: Box<dyn Optimizer<f32>>,
    vocab: CharVocab,
    data: TextDataset,
    train: TrainConfig,
    validation: Vec<(IndexTensor, IndexTensor)>,
}

impl LmTask {
    /// Reads the text and builds the model: with a vocabulary from the text for a new run,
    /// or the one saved in `run`.
    ///
    /// # Errors
    /// If the text cannot be read, holds characters outside a saved vocabulary, is shorter
    /// than the context plus one (in either split), or the config is invalid.
    pub fn new(config: &RunConfig, run: Option<&RunDir>) -> Result<Self> {
        let train = config.train.clone();
        let text = match &train.data {
            Some(path) => {
                let text = read_text(path).map_err(data_error)?;
                if text.is_empty() {
                    let what = if path.is_dir() {
                        "its .txt files are empty"
                    } else {
                        "the file is empty"
                    };
                    bail!(
                        "the data {} holds no text ({what}); give a text of at least a few \
                         hundred characters",
                        path.display()
                    );
                }
                text
            }
            None => SHAKESPEARE.to_string(),
        };
        let vocab = match run {
            Some(run) => load_vocab(config, run)?,
            None => CharVocab::from_text(&text),
        };
        let tokens = vocab.encode(&text).map_err(|err| {
            let detail = data_error(err);
            anyhow::anyhow!("the data holds a character the run's vocabulary lacks: {detail}")
        })?;

        let model = Lm::new(config, vocab.len(), run.is_none(), train.seed)?;
        // Limitation: the models draw dropout masks from a generator they keep inside and do
        // not expose, so it cannot be saved in a checkpoint; a resumed run with dropout > 0
        // draws other masks than an uninterrupted one (its losses are statistically, not
        // bitwise, equal). Runs without dropout, the default, resume exactly.
        if run.is_some() && model.dropout() > 0.0 {
            eprintln!(
                "warning: dropout {} is on, so the resumed run will not match an \
                 uninterrupted one bit for bit",
                model.dropout()
            );
        }
        let source = train.data.as_ref().map_or_else(
            || "the built-in corpus".to_string(),
            |p| p.display().to_string(),
        );
        let data = TextDataset::new(tokens, model.context(), TRAIN_FRACTION)
            .map_err(data_error)
            .with_context(|| format!("cannot train on {source}"))?;
        let (decay, no_decay) = param_groups_for_decay(model.module());
        let optimizer = optimizer(&train, decay, no_decay)?;

        let mut val_gen = Generator::new(train.seed ^ VALIDATION_SALT);
        let validation = (0..train.eval_iters)
            .map(|_| data.sample_batch(Split::Validation, train.batch_size, &mut val_gen))
            .collect::<Result<Vec<_>, _>>()
            .map_err(data_error)?;
        Ok(Self {
            model,
            optimizer,
            vocab,
            data,
            train,
            validation,
        })
    }
}

/// Reads the vocabulary of a run folder, checking it has as many characters as the model.
///
/// # Errors
/// If the file is missing or unreadable, or its size differs from the model's.
fn load_vocab(config: &RunConfig, run: &RunDir) -> Result<CharVocab> {
    let path = run.file(VOCAB_FILE);
    if !path.is_file() {
        bail!("{} is missing", path.display());
    }
    let vocab = CharVocab::load(&path).map_err(data_error)?;
    let configured = config
        .model_config
        .get("vocab_size")
        .and_then(Value::as_u64);
    if let Some(configured) = configured.filter(|&n| n != vocab.len() as u64) {
        bail!(
            "{VOCAB_FILE} has {} characters, the model has {configured} (model_config.vocab_size \
             in config.json); the two disagree",
            vocab.len()
        );
    }
    Ok(vocab)
}

impl Task for LmTask {
    fn unit(&self) -> &'static str {
        "tok"
    }

    fn model_config_json(&self) -> Value {
        self.model.config_json()
    }

    fn write_run_files(&self, run: &RunDir) -> Result<()> {
        self.vocab.save(run.file(VOCAB_FILE))?;
        Ok(())
    }

    fn num_parameters(&self) -> usize {
        self.model.module().num_parameters()
    }

    fn train_step(&mut self, step: usize, lr: f64) -> Result<StepOutput> {
        let mut gen = Generator::new(step_seed(self.train.seed, step as u64));
        let (xs, ys) = self
            .data
            .sample_batch(Split::Train, self.train.batch_size, &mut gen)
            .map_err(data_error)?;
        self.optimizer.set_lr(lr);
        self.optimizer.zero_grad();
        let loss = self.model.loss(&xs, &ys)?;
        loss.backward()?;
        clip_grad_norm(&self.model.module().parameters(), self.train.grad_clip)?;
        self.optimizer.step()?;
        Ok(StepOutput {
            loss: f64::from(loss.value().item()?),
            items: xs.numel(),
        })
    }

    fn evaluate(&mut self) -> Result<EvalOutput> {
        self.model.module_mut().eval();
        let losses = {
            let _guard = no_grad();
            self.validation
                .iter()
                .map(|(xs, ys)| Ok(f64::from(self.model.loss(xs, ys)?.value().item()?)))
                .collect::<Result<Vec<f64>>>()
        };
        self.model.module_mut().train();
        let losses = losses?;
        Ok(EvalOutput {
            loss: losses.iter().sum::<f64>() / losses.len() as f64,
            accuracy: None,
            details: vec![format!(
                "{} validation batches of {} x {} characters",
                losses.len(),
                self.train.batch_size,
                self.data.context()
            )],
        })
    }

    fn model_tensors(&self) -> Vec<(String, Tensor<f32>)> {
        self.model.state_dict()
    }

    fn optim_state(&self) -> StateDict<f32> {
        self.optimizer.state_dict()
    }

    fn load_model(&mut self, path: &Path, mut file: TensorFile) -> Result<()> {
        // GPT's tied head weight is saved twice, as PyTorch's state_dict holds it; it is the
        // same variable as the token embedding.
        if let Lm::Gpt(_) = self.model {
            file.tensors.remove("lm_head.weight");
        }
        let module = self.model.module();
        let mut named = module.named_parameters();
        named.extend(module.named_buffers());
        load_vars(path, &named, file.tensors)
    }

    fn load_optim(&mut self, state: &StateDict<f32>) -> Result<()> {
        Ok(self.optimizer.load_state_dict(state)?)
    }

    fn finish(&mut self, _progress: &Progress) -> Result<()> {
        let options = SampleOptions {
            tokens: FINAL_SAMPLE,
            temperature: 1.0,
            top_k: None,
            top_p: None,
            seed: self.train.seed,
        };
        let prompt = if self.vocab.id('\n').is_some() {
            "\n".to_string()
        } else {
            self.vocab.chars()[0].to_string()
        };
        let mut text = String::new();
        self.sample(&prompt, &options, &mut |piece| {
            text.push_str(piece);
            Ok(())
        })?;
        println!("--- sample ({FINAL_SAMPLE} characters) ---\n{prompt}{text}");
        Ok(())
    }

    fn sample(
        &mut self,
        prompt: &str,
        options: &SampleOptions,
        emit: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        if prompt.is_empty() {
            bail!("sample: the prompt is empty; give at least one character");
        }
        let ids = self.vocab.encode(prompt).map_err(|err| {
            let known: String = self.vocab.chars().iter().collect();
            anyhow::anyhow!(
                "sample: the prompt holds a character the model never saw ({}; known: \
                 {known:?})",
                data_error(err)
            )
        })?;
        let sampling = SamplingConfig {
            temperature: options.temperature,
            top_k: options.top_k,
            top_p: options.top_p,
        };
        self.model.module_mut().eval();
        let mut gen = Generator::new(options.seed);
        let vocab = &self.vocab;
        let out = self.model.generate_streaming(
            &ids,
            options.tokens,
            &sampling,
            &mut gen,
            &mut |token| emit(&vocab.decode(&[token]).map_err(data_error)?),
        );
        self.model.module_mut().train();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(model: &Lm, prompt: &[usize], tokens: usize, seed: u64) -> Vec<usize> {
        let mut out = Vec::new();
        let sampling = SamplingConfig::default();
        model
            .generate_streaming(
                prompt,
                tokens,
                &sampling,
                &mut Generator::new(seed),
                &mut |t| {
                    out.push(t);
                    Ok(())
                },
            )
            .unwrap();
        out
    }

    fn whole(model: &Lm, prompt: &[usize], tokens: usize, seed: u64) -> Vec<usize> {
        let ids = IndexTensor::from_vec(prompt.to_vec(), &[1, prompt.len()]).unwrap();
        let sampling = SamplingConfig::default();
        let mut gen = Generator::new(seed);
        let out = match model {
            Lm::Gpt(m) => m.generate(&ids, tokens, &sampling, &mut gen).unwrap(),
            Lm::CharRnn(m, _) => m.generate(&ids, tokens, &sampling, &mut gen).unwrap(),
        };
        out.as_slice()[prompt.len()..].to_vec()
    }

    /// Regression: `sample --tokens 20000` printed nothing until the whole sample was done.
    /// The streamed tokens come one by one and must be exactly those of the models' own
    /// `generate`, past GPT's context length (where its cache is rebuilt) too.
    #[test]
    fn sampling_streams_the_same_tokens_as_generate() {
        let gpt_config = GptConfig {
            vocab_size: 7,
            block_size: 5,
            n_layer: 1,
            n_head: 2,
            n_embd: 8,
            dropout: 0.0,
            bias: false,
        };
        let rnn_config = CharRnnConfig {
            vocab_size: 7,
            embedding_dim: 4,
            hidden_size: 8,
            num_layers: 1,
            ..CharRnnConfig::default()
        };
        let gpt = Lm::Gpt(Gpt::new(&gpt_config, &mut Generator::new(1)).unwrap());
        let rnn = Lm::CharRnn(
            CharRnn::new(&rnn_config, &mut Generator::new(2)).unwrap(),
            4,
        );

        for model in [&gpt, &rnn] {
            for prompt in [&[3usize][..], &[1, 2, 3, 4, 5, 6, 0]] {
                let streamed = streamed(model, prompt, 12, 9);
                assert_eq!(streamed.len(), 12);
                assert_eq!(streamed, whole(model, prompt, 12, 9));
            }
        }
    }
}
