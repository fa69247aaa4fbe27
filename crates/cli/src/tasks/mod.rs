//! The models `strata` trains: for each, its default recipe and how to build it with its data
//! and optimizer as a [`Task`].

mod classifier;
mod gan;
mod linreg;
mod lm;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use strata_autograd::Var;
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
