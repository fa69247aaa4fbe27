//! The command-line interface: subcommands and flags, parsed with clap's derive API.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

/// Train, resume, sample and evaluate Strata models.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and write a run folder.
    Train(TrainArgs),
    /// Continue a run from its last checkpoint.
    Resume(ResumeArgs),
    /// Generate text from a language-model run.
    Sample(SampleArgs),
    /// Evaluate a run's checkpoint on its held-out data.
    Eval(EvalArgs),
}

/// `strata train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The model: gpt, char-rnn, lenet, mlp, linreg or gan.
    pub model: String,
    /// Training data: a text file or folder (gpt, char-rnn) or an MNIST-layout folder (lenet,
    /// mlp). Default: the embedded Shakespeare corpus, or /usr/share/datasets/fashion-mnist.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A JSON file of config values: {"model_config": {...}, "train": {...}}, any subset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The run folder (absent or empty). Default: runs/MODEL-N.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Training flags that override the config.
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Run options that are not part of the config.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Training values that override the config file.
#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// Total optimizer steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Passes over the training set (image models); replaces --steps.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Examples per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of every random draw.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate and checkpoint every N steps.
    #[arg(long)]
    pub eval_interval: Option<usize>,
    /// Validation batches per evaluation.
    #[arg(long)]
    pub eval_iters: Option<usize>,
    /// Log every N steps.
    #[arg(long)]
    pub log_interval: Option<usize>,
}

impl OverrideArgs {
    /// The overrides, with `data` from `--data`.
    pub fn to_overrides(&self, data: Option<PathBuf>) -> Overrides {
        Overrides {
            steps: self.steps,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            eval_interval: self.eval_interval,
            eval_iters: self.eval_iters,
            log_interval: self.log_interval,
            data,
        }
    }
}

/// Options of a training process that do not change its results.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Stop after the checkpoint at this step, as if killed there (for testing resume).
    #[arg(long, hide = true)]
    pub stop_at: Option<usize>,
}

/// `strata resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run folder.
    pub run_dir: PathBuf,
    /// A new total number of steps, to train a finished run further.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Run options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `strata sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Text to continue; default: a newline.
    #[arg(long, default_value = "\n")]
    pub prompt: String,
    /// Characters to generate.
    #[arg(long, default_value_t = 500)]
    pub tokens: usize,
    /// Softmax temperature; 0 is greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Keep the K most likely characters.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Keep the most likely characters up to total probability P.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Sampling seed.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `strata eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}
