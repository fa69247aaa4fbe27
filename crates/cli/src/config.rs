//! Run configuration: which model, the model's own config (JSON, typed by each model), and the
//! training config, resolved from defaults, then a `--config` file, then command-line flags.
//!
//! The resolved config is what `config.json` in a run folder holds, and a `--config` file has
//! the same shape with every field optional:
//!
//! ```text
//! {"model": "gpt", "model_config": {"n_layer": 2}, "train": {"steps": 100, "lr": 3e-4}}
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The models `strata train` knows, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A GPT-style decoder language model on characters.
    Gpt,
    /// A recurrent (LSTM) language model on characters.
    CharRnn,
    /// LeNet-5 on (Fashion-)MNIST.
    Lenet,
    /// A multi-layer perceptron on flattened (Fashion-)MNIST.
    Mlp,
    /// Linear regression on a synthetic, seeded problem.
    Linreg,
    /// A small GAN on synthetic 2-D data.
    Gan,
}

impl ModelKind {
    /// Every model, in the order the help text lists them.
    pub const ALL: [ModelKind; 6] = [
        ModelKind::Gpt,
        ModelKind::CharRnn,
        ModelKind::Lenet,
        ModelKind::Mlp,
        ModelKind::Linreg,
        ModelKind::Gan,
    ];

    /// The command-line name, `char-rnn` for [`ModelKind::CharRnn`].
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Gpt => "gpt",
            ModelKind::CharRnn => "char-rnn",
            ModelKind::Lenet => "lenet",
            ModelKind::Mlp => "mlp",
            ModelKind::Linreg => "linreg",
            ModelKind::Gan => "gan",
        }
    }

    /// Parses a command-line name.
    ///
    /// # Errors
    /// If `name` is not one of [`ModelKind::ALL`], listing them.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .with_context(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown model '{name}' (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The optimizer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent (no momentum).
    Sgd,
    /// Adam, with L2 weight decay added to the gradient.
    Adam,
    /// AdamW, with decoupled weight decay on weights of 2 or more dimensions only.
    Adamw,
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptimizerKind::Sgd => "SGD",
            OptimizerKind::Adam => "Adam",
            OptimizerKind::Adamw => "AdamW",
        })
    }
}

/// How a run trains: steps, batches, optimizer, schedule, evaluation and logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Total optimizer steps.
    pub steps: usize,
    /// When set, `steps` is this many passes over the training set and evaluation runs once
    /// per epoch (image classifiers).
    pub epochs: Option<usize>,
    /// Examples (sequences or images) per step.
    pub batch_size: usize,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// The learning rate the cosine decay ends at.
    pub min_lr: f64,
    /// Steps of linear warm-up; 0 for none.
    pub warmup_steps: usize,
    /// The step at which the cosine decay reaches `min_lr`; 0 keeps `lr` constant after
    /// warm-up.
    pub lr_decay_steps: usize,
    /// Adam's `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// Weight decay (decoupled for AdamW, L2 for Adam and SGD).
    pub weight_decay: f64,
    /// The maximum global gradient norm; 0 turns clipping off.
    pub grad_clip: f64,
    /// Evaluate and checkpoint every this many steps (and at the end); 0 means once per
    /// epoch, for models that train in epochs.
    pub eval_interval: usize,
    /// Batches per evaluation, for models evaluated on random batches.
    pub eval_iters: usize,
    /// Log a line and a metrics record every this many steps.
    pub log_interval: usize,
    /// The seed of every random draw: initialisation, batches, dropout, evaluation batches.
    pub seed: u64,
    /// The training data: a file or folder, or none for the model's built-in data.
    pub data: Option<PathBuf>,
}

impl TrainConfig {
    /// Turns epochs into steps and an `eval_interval` of 0 into once per epoch, given the
    /// model's steps per epoch (`None` for models that do not train in epochs).
    pub fn resolve_epochs(&mut self, steps_per_epoch: Option<usize>) {
        if let Some(per_epoch) = steps_per_epoch {
            if let Some(epochs) = self.epochs {
                self.steps = epochs * per_epoch;
            }
            if self.eval_interval == 0 {
                self.eval_interval = per_epoch;
            }
        }
    }

    /// Checks the values a task needs to be built: batch size, evaluation batches, log
    /// interval, learning rate, clipping.
    ///
    /// # Errors
    /// Naming the first bad field.
    pub fn validate_hyperparameters(&self) -> Result<()> {
        let positive = [
            ("batch_size", self.batch_size),
            ("eval_iters", self.eval_iters),
            ("log_interval", self.log_interval),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            bail!("config: train.{name} must be at least 1");
        }
        if self.epochs == Some(0) {
            bail!("config: train.epochs must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            bail!(
                "config: train.lr must be a finite number >= 0, got {}",
                self.lr
            );
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0) {
            bail!(
                "config: train.min_lr must be a finite number >= 0, got {}",
                self.min_lr
            );
        }
        if self.lr_decay_steps > 0 && self.min_lr > self.lr {
            bail!(
                "config: train.min_lr ({:e}) is above train.lr ({:e}), so the decay would raise \
                 the rate; set train.min_lr <= lr in a --config file (or train.lr_decay_steps \
                 to 0 for a constant rate)",
                self.min_lr,
                self.lr
            );
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            bail!(
                "config: train.grad_clip must be >= 0, got {}",
                self.grad_clip
            );
        }
        Ok(())
    }

    /// Checks every value; call it after [`TrainConfig::resolve_epochs`].
    ///
    /// # Errors
    /// Naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        self.validate_hyperparameters()?;
        if self.steps == 0 {
            bail!("config: train.steps must be at least 1");
        }
        if self.eval_interval == 0 {
            bail!("config: train.eval_interval must be at least 1");
        }
        Ok(())
    }
}

/// Training fields given in a `--config` file; every one optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialTrain {
    steps: Option<usize>,
    epochs: Option<Option<usize>>,
    batch_size: Option<usize>,
    optimizer: Option<OptimizerKind>,
    lr: Option<f64>,
    min_lr: Option<f64>,
    warmup_steps: Option<usize>,
    lr_decay_steps: Option<usize>,
    betas: Option<(f64, f64)>,
    weight_decay: Option<f64>,
    grad_clip: Option<f64>,
    eval_interval: Option<usize>,
    eval_iters: Option<usize>,
    log_interval: Option<usize>,
    seed: Option<u64>,
    data: Option<Option<PathBuf>>,
}

/// A `--config` file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    model: Option<ModelKind>,
    model_config: Option<Value>,
    train: Option<PartialTrain>,
}

/// Training values given as command-line flags; they win over the config file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--steps`.
    pub steps: Option<usize>,
    /// `--epochs`.
    pub epochs: Option<usize>,
    /// `--batch-size`.
    pub batch_size: Option<usize>,
    /// `--lr`.
    pub lr: Option<f64>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--eval-interval`.
    pub eval_interval: Option<usize>,
    /// `--eval-iters`.
    pub eval_iters: Option<usize>,
    /// `--log-interval`.
    pub log_interval: Option<usize>,
    /// `--data`.
    pub data: Option<PathBuf>,
}

/// Everything a run needs to be rebuilt: the content of `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model.
    pub model: ModelKind,
    /// The model's own config, as the model's config struct serialises it.
    pub model_config: Value,
    /// The training config.
    pub train: TrainConfig,
}

impl RunConfig {
    /// Resolves a config: `defaults`, then the file at `config_path` (if any), then `flags`.
    ///
    /// The model config of the file is merged into the default one key by key (nested
    /// objects too), so a file may give only the fields it changes.
    ///
    /// The schedule follows the steps: when the steps are given (`--steps` or `train.steps`)
    /// and the model's default schedule decays, the cosine decay ends at the last step unless
    /// `train.lr_decay_steps` is given too, and the warm-up is `min(default warm-up,
    /// steps / 10)` unless `train.warmup_steps` is given. Without `--steps` the defaults stay
    /// as they are (GPT: warm-up 100, decay to step 2000 of 2000).
    ///
    /// # Errors
    /// If the file cannot be read, does not parse (the error gives line and column), is not a
    /// JSON object, or names another model. The result is not validated yet: see
    /// [`TrainConfig::validate`].
    pub fn resolve(
        model: ModelKind,
        defaults: (Value, TrainConfig),
        config_path: Option<&Path>,
        flags: &Overrides,
    ) -> Result<Self> {
        let (mut model_config, mut train) = defaults;
        let default_schedule = (train.warmup_steps, train.lr_decay_steps);
        let (mut steps_given, mut warmup_given, mut decay_given) = (false, false, false);
        if let Some(path) = config_path {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("config {} does not parse", path.display()))?;
            if !value.is_object() {
                bail!(
                    "config {} must be a JSON object such as {{\"model_config\": {{...}}, \
                     \"train\": {{...}}}}",
                    path.display()
                );
            }
            let file: ConfigFile = serde_json::from_str(&text)
                .with_context(|| format!("config {} does not parse", path.display()))?;
            if let Some(other) = file.model.filter(|&other| other != model) {
                bail!(
                    "config {} is for model '{other}', not '{model}'",
                    path.display()
                );
            }
            if let Some(patch) = file.model_config {
                merge(&mut model_config, patch);
            }
            if let Some(partial) = file.train {
                steps_given = partial.steps.is_some();
                warmup_given = partial.warmup_steps.is_some();
                decay_given = partial.lr_decay_steps.is_some();
                apply_partial(&mut train, partial);
            }
        }
        apply_flags(&mut train, flags);
        steps_given |= flags.steps.is_some();
        let (default_warmup, default_decay) = default_schedule;
        if steps_given && train.epochs.is_none() && default_decay > 0 {
            if !decay_given {
                train.lr_decay_steps = train.steps;
            }
            if !warmup_given {
                train.warmup_steps = default_warmup.min(train.steps / 10);
            }
        }
        Ok(Self {
            model,
            model_config,
            train,
        })
    }
}

/// Merges `patch` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn apply_partial(train: &mut TrainConfig, p: PartialTrain) {
    macro_rules! set {
        ($($field:ident),*) => {$(
            if let Some(value) = p.$field {
                train.$field = value;
            }
        )*};
    }
    set!(
        steps,
        epochs,
        batch_size,
        optimizer,
        lr,
        min_lr,
        warmup_steps,
        lr_decay_steps,
        betas,
        weight_decay,
        grad_clip,
        eval_interval,
        eval_iters,
        log_interval,
        seed,
        data
    );
    if p.steps.is_some() && p.epochs.is_none() {
        train.epochs = None;
    }
}

fn apply_flags(train: &mut TrainConfig, flags: &Overrides) {
    if let Some(steps) = flags.steps {
        train.steps = steps;
        train.epochs = None;
    }
    if let Some(epochs) = flags.epochs {
        train.epochs = Some(epochs);
    }
    macro_rules! set {
        ($($field:ident),*) => {$(
            if let Some(value) = flags.$field {
                train.$field = value;
            }
        )*};
    }
    set!(
        batch_size,
        lr,
        seed,
        eval_interval,
        eval_iters,
        log_interval
    );
    if let Some(data) = &flags.data {
        train.data = Some(data.clone());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaults() -> (Value, TrainConfig) {
        let train = TrainConfig {
            steps: 10,
            epochs: None,
            batch_size: 4,
            optimizer: OptimizerKind::Adamw,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 0,
            lr_decay_steps: 0,
            betas: (0.9, 0.99),
            weight_decay: 0.1,
            grad_clip: 1.0,
            eval_interval: 5,
            eval_iters: 2,
            log_interval: 1,
            seed: 1,
            data: None,
        };
        (json!({"n_layer": 4, "inner": {"a": 1, "b": 2}}), train)
    }

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let text = r#"{"model_config": {"inner": {"b": 3}}, "train": {"steps": 7, "lr": 0.5}}"#;
        std::fs::write(&path, text).unwrap();
        let flags = Overrides {
            lr: Some(0.25),
            ..Overrides::default()
        };

        let config = RunConfig::resolve(ModelKind::Gpt, defaults(), Some(&path), &flags).unwrap();

        assert_eq!(
            config.model_config,
            json!({"n_layer": 4, "inner": {"a": 1, "b": 3}})
        );
        assert_eq!(config.train.steps, 7);
        assert_eq!(config.train.lr, 0.25);
    }

    #[test]
    fn a_config_that_does_not_parse_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, "{\n  \"train\": {\"steps\": \"many\"}\n}").unwrap();

        let err = RunConfig::resolve(
            ModelKind::Gpt,
            defaults(),
            Some(&path),
            &Overrides::default(),
        )
        .unwrap_err();

        let message = format!("{err:#}");
        assert!(message.contains("line 2 column"), "{message}");
    }

    #[test]
    fn unknown_fields_and_other_models_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("typo.json");
        let other = dir.path().join("other.json");
        std::fs::write(&typo, r#"{"train": {"stepz": 3}}"#).unwrap();
        std::fs::write(&other, r#"{"model": "lenet"}"#).unwrap();
        let flags = Overrides::default();

        let typo_err = RunConfig::resolve(ModelKind::Gpt, defaults(), Some(&typo), &flags);
        let other_err = RunConfig::resolve(ModelKind::Gpt, defaults(), Some(&other), &flags);

        assert!(format!("{:#}", typo_err.unwrap_err()).contains("stepz"));
        assert!(format!("{:#}", other_err.unwrap_err()).contains("'lenet'"));
    }

    fn gpt_like_defaults() -> (Value, TrainConfig) {
        let (model, mut train) = defaults();
        (train.steps, train.warmup_steps, train.lr_decay_steps) = (2000, 100, 2000);
        (model, train)
    }

    /// Regression: with `--steps 300` the schedule still decayed to step 2000, so a short run
    /// never decayed.
    #[test]
    fn schedule_follows_steps_unless_given_explicitly() {
        let dir = tempfile::tempdir().unwrap();
        let explicit = dir.path().join("explicit.json");
        std::fs::write(
            &explicit,
            r#"{"train": {"lr_decay_steps": 250, "warmup_steps": 7}}"#,
        )
        .unwrap();
        let steps = |n| Overrides {
            steps: Some(n),
            ..Overrides::default()
        };
        let resolve = |path: Option<&Path>, flags: &Overrides| {
            RunConfig::resolve(ModelKind::Gpt, gpt_like_defaults(), path, flags)
                .unwrap()
                .train
        };

        let short = resolve(None, &steps(300));
        let tiny = resolve(None, &steps(5));
        let default = resolve(None, &Overrides::default());
        let kept = resolve(Some(&explicit), &steps(300));

        assert_eq!((short.warmup_steps, short.lr_decay_steps), (30, 300));
        assert_eq!((tiny.warmup_steps, tiny.lr_decay_steps), (0, 5));
        assert_eq!((default.warmup_steps, default.lr_decay_steps), (100, 2000));
        assert_eq!((kept.warmup_steps, kept.lr_decay_steps), (7, 250));
    }

    /// Regression: a config file holding a JSON array was reported as "invalid length 0,
    /// expected struct ConfigFile with 3 elements".
    #[test]
    fn a_config_that_is_not_an_object_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, "[]").unwrap();

        let err = RunConfig::resolve(
            ModelKind::Gpt,
            defaults(),
            Some(&path),
            &Overrides::default(),
        )
        .unwrap_err();

        let message = format!("{err:#}");
        assert!(message.contains("must be a JSON object"), "{message}");
        assert!(!message.contains("ConfigFile"), "{message}");
    }

    /// Regression: a `min_lr` above `lr` was accepted, making the "decay" raise the rate.
    #[test]
    fn min_lr_above_lr_is_rejected_when_the_rate_decays() {
        let (_, mut train) = defaults();
        (train.lr, train.min_lr, train.lr_decay_steps) = (1e-4, 1e-3, 10);
        let decaying = train.validate_hyperparameters();
        train.lr_decay_steps = 0;
        let constant = train.validate_hyperparameters();

        let err = decaying.unwrap_err().to_string();
        assert!(
            err.contains("train.min_lr (1e-3) is above train.lr (1e-4)"),
            "{err}"
        );
        assert!(constant.is_ok());
    }

    #[test]
    fn model_names_parse_and_unknown_ones_list_the_choices() {
        assert_eq!(ModelKind::parse("char-rnn").unwrap(), ModelKind::CharRnn);
        let err = ModelKind::parse("resnet").unwrap_err().to_string();
        assert!(
            err.contains("gpt, char-rnn, lenet, mlp, linreg, gan"),
            "{err}"
        );
    }
}
