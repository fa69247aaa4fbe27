//! The models `strata` trains: for each, its default recipe and how to build it with its data
//! and optimizer as a [`Task`].

mod classifier;
mod gan;
mod linreg;
mod lm;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use strata_autograd::Var;
use strata_data::DataError;
use strata_optim::{Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, ParamGroup, Sgd, SgdConfig};

use crate::config::{ModelKind, OptimizerKind, RunConfig, TrainConfig};
use crate::rundir::RunDir;
use crate::trainer::Task;

/// The default model config (as JSON) and training config of `model`.
pub fn defaults(model: ModelKind) -> (Value, TrainConfig) {
    match model {
        ModelKind::Gpt => lm::gpt_defaults(),
        ModelKind::CharRnn => lm::char_rnn_defaults(),
        ModelKind::Lenet | ModelKind::Mlp => classifier::defaults(model),
        ModelKind::Linreg => linreg::defaults(),
        ModelKind::Gan => gan::defaults(),
    }
}

/// Builds the task of `config`: a fresh model when `run` is `None`, else one shaped to load the
/// checkpoint of `run` (with the vocabulary or labels saved there).
///
/// # Errors
/// If the data is missing or unusable, or the model config is invalid.
pub fn build(config: &RunConfig, run: Option<&RunDir>) -> Result<Box<dyn Task>> {
    match config.model {
        ModelKind::Gpt | ModelKind::CharRnn => Ok(Box::new(lm::LmTask::new(config, run)?)),
        ModelKind::Lenet | ModelKind::Mlp => {
            Ok(Box::new(classifier::ClassifierTask::new(config, run)?))
        }
        ModelKind::Linreg => Ok(Box::new(linreg::LinregTask::new(config)?)),
        ModelKind::Gan => Ok(Box::new(gan::GanTask::new(config)?)),
    }
}

/// What a run trains on, for the summary line: the data path, or where built-in data comes
/// from.
pub fn data_label(config: &RunConfig) -> String {
    if let Some(path) = &config.train.data {
        return path.display().to_string();
    }
    match config.model {
        ModelKind::Gpt | ModelKind::CharRnn => "built-in (the embedded Shakespeare corpus)".into(),
        ModelKind::Lenet | ModelKind::Mlp => strata_data::mnist::Mnist::FASHION_MNIST_DIR.into(),
        ModelKind::Linreg | ModelKind::Gan => "synthetic (drawn from the seed)".into(),
    }
}

/// Turns a strata-data error into a message for the command line: the file and the cause said
/// once, in words (an I/O error's text already holds the cause that it also chains), and
/// without the name of an internal function (a tensor error starts with one, `from_vec: ...`).
pub fn data_error(err: DataError) -> anyhow::Error {
    match err {
        DataError::Io { path, source, .. } => {
            anyhow!("cannot read {}: {}", path.display(), io_cause(&source))
        }
        DataError::Json { path, source, .. } => {
            anyhow!("{} does not parse: {source}", path.display())
        }
        DataError::TooShort {
            what, len, context, ..
        } => anyhow!(
            "the {what} has {len} characters, but a context of {context} (block_size or \
             seq_len) needs at least {}",
            context as u128 + 1
        ),
        other => anyhow!("{}", strip_op(&other.to_string())),
    }
}

/// An I/O error in words, without the `(os error N)` suffix.
fn io_cause(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Removes a leading `Type::function: ` or `function: ` from a message.
fn strip_op(message: &str) -> &str {
    if let Some((head, rest)) = message.split_once(": ") {
        let is_op = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if is_op {
            return rest;
        }
    }
    message
}

/// Reads a model config from the JSON of `config.json`, rejecting keys the model's config
/// struct does not have (the structs fill missing keys with defaults, so a misspelt key would
/// otherwise be ignored).
///
/// # Errors
/// If the JSON does not match the model's config struct or holds an unknown key.
fn model_config<C: serde::de::DeserializeOwned + serde::Serialize>(
    config: &RunConfig,
) -> Result<C> {
    let parsed: C = serde_json::from_value(config.model_config.clone()).with_context(|| {
        format!(
            "config: model_config is not a valid {} config",
            config.model
        )
    })?;
    let known = serde_json::to_value(&parsed).context("config: cannot serialise model_config")?;
    if let (Value::Object(given), Value::Object(known)) = (&config.model_config, &known) {
        if let Some(key) = given.keys().find(|key| !known.contains_key(*key)) {
            let mut names: Vec<&String> = known.keys().collect();
            names.sort();
            let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            bail!(
                "config: unknown field model_config.{key} for {} (known: {})",
                config.model,
                names.join(", ")
            );
        }
    }
    Ok(parsed)
}

/// An optimizer of the kind `train` names over `decay` (weights, decayed) and `no_decay`
/// (biases and norm gains, never decayed), nanoGPT's split; empty groups are left out.
///
/// # Errors
/// If a hyperparameter is out of range.
fn optimizer(
    train: &TrainConfig,
    decay: Vec<Var<f32>>,
    no_decay: Vec<Var<f32>>,
) -> Result<Box<dyn Optimizer<f32>>> {
    let groups = [(decay, train.weight_decay), (no_decay, 0.0)]
        .into_iter()
        .filter(|(params, _)| !params.is_empty());
    Ok(match train.optimizer {
        OptimizerKind::Adamw => {
            let config = |weight_decay| AdamWConfig {
                lr: train.lr,
                betas: train.betas,
                weight_decay,
                ..AdamWConfig::default()
            };
            let groups = groups
                .map(|(p, wd)| ParamGroup::new(p, config(wd)))
                .collect();
            Box::new(AdamW::with_groups(groups)?)
        }
        OptimizerKind::Adam => {
            let config = |weight_decay| AdamConfig {
                lr: train.lr,
                betas: train.betas,
                weight_decay,
                ..AdamConfig::default()
            };
            let groups = groups
                .map(|(p, wd)| ParamGroup::new(p, config(wd)))
                .collect();
            Box::new(Adam::with_groups(groups)?)
        }
        OptimizerKind::Sgd => {
            let config = |weight_decay| SgdConfig {
                lr: train.lr,
                weight_decay,
                ..SgdConfig::default()
            };
            let groups = groups
                .map(|(p, wd)| ParamGroup::new(p, config(wd)))
                .collect();
            Box::new(Sgd::with_groups(groups)?)
        }
    })
}

/// Scales the gradients of `params` so that their global L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`); a `max_norm` of 0 turns clipping off.
///
/// # Errors
/// If the optimizer crate rejects the norm type (it is always 2 here).
fn clip_grad_norm(params: &[Var<f32>], max_norm: f64) -> Result<()> {
    if max_norm > 0.0 {
        strata_optim::clip_grad_norm(params, max_norm, 2.0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: lenet's summary said "data: built-in" although it read the Fashion-MNIST
    /// folder under /usr/share/datasets.
    #[test]
    fn the_data_label_names_the_default_image_folder() {
        let (model_config, train) = defaults(ModelKind::Lenet);
        let config = RunConfig {
            model: ModelKind::Lenet,
            model_config,
            train,
        };

        assert_eq!(data_label(&config), "/usr/share/datasets/fashion-mnist");
    }

    /// Regression: a missing vocab.json was reported as "CharVocab::load: run/vocab.json: No
    /// such file or directory (os error 2): No such file or directory (os error 2)", the cause
    /// twice and an internal function named.
    #[test]
    fn data_errors_name_the_cause_once_without_internal_names() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("vocab.json");
        let vocab_err = strata_data::text::CharVocab::load(&missing).unwrap_err();
        let short = strata_data::text::TextDataset::new(vec![0; 4], 8, 0.9).unwrap_err();
        let idx_path = dir.path().join("train-labels-idx1-ubyte");
        std::fs::write(&idx_path, [0u8, 0, 8, 3, 0, 0, 0, 1, 0]).unwrap();
        let idx_err = strata_data::idx::read_labels(&idx_path).unwrap_err();

        let vocab = format!("{:#}", data_error(vocab_err));
        let short = format!("{:#}", data_error(short));
        let idx = format!("{:#}", data_error(idx_err));

        assert_eq!(
            vocab,
            format!(
                "cannot read {}: No such file or directory",
                missing.display()
            )
        );
        assert!(short.starts_with("the corpus has 4 characters"), "{short}");
        assert!(!short.contains("TextDataset"), "{short}");
        let idx_prefix = format!("reading an IDX file: {}: ", idx_path.display());
        assert!(idx.starts_with(&idx_prefix), "{idx}");
        assert!(!idx.contains("read_idx"), "{idx}");
    }
}
