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

/// A whole number of at least 0, with a clear message for negative or fractional input.
fn count(text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| {
        if text.trim_start().starts_with('-') {
            format!("must be a whole number >= 0, got {text}")
        } else {
            format!("must be a whole number, got {text}")
        }
    })
}

/// A seed: a whole number from 0 to 2^64 - 1.
fn seed(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("must be a whole number from 0 to 2^64 - 1, got {text}"))
}

/// `strata train`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
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
    /// Total optimizer steps. The learning-rate schedule follows: unless the config file
    /// sets train.lr_decay_steps (or train.warmup_steps), the cosine decay ends at the last
    /// step and the warm-up is min(default warm-up, steps / 10). Without --steps the model's
    /// recipe is kept (gpt: 2000 steps, warm-up 100, decay to step 2000).
    #[arg(long, value_parser = count)]
    pub steps: Option<usize>,
    /// Passes over the training set (lenet and mlp only); replaces --steps.
    #[arg(long, value_parser = count)]
    pub epochs: Option<usize>,
    /// Examples per step.
    #[arg(long, value_parser = count)]
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of every random draw.
    #[arg(long, value_parser = seed)]
    pub seed: Option<u64>,
    /// Evaluate and checkpoint every N steps.
    #[arg(long, value_parser = count)]
    pub eval_interval: Option<usize>,
    /// Validation batches per evaluation (gpt and char-rnn only).
    #[arg(long, value_parser = count)]
    pub eval_iters: Option<usize>,
    /// Log every N steps.
    #[arg(long, value_parser = count)]
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
    #[arg(long, value_parser = count)]
    pub threads: Option<usize>,
    /// Stop after the checkpoint at this step, as if killed there (for testing resume).
    #[arg(long, hide = true, value_parser = count)]
    pub stop_at: Option<usize>,
}

/// `strata resume`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct ResumeArgs {
    /// The run folder.
    pub run_dir: PathBuf,
    /// A new total number of steps, to train a finished run further. The learning-rate
    /// schedule stays the one the run started with (past its decay, the rate stays at min_lr).
    #[arg(long, value_parser = count)]
    pub steps: Option<usize>,
    /// Run options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `strata sample`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct SampleArgs {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Text to continue; default: a newline. It may start with a hyphen.
    #[arg(long, default_value = "\n", allow_hyphen_values = true)]
    pub prompt: String,
    /// Characters to generate; they are printed as they come.
    #[arg(long, default_value_t = 500, value_parser = count)]
    pub tokens: usize,
    /// Softmax temperature, a finite number >= 0; 0 is greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Keep the K most likely characters.
    #[arg(long, value_parser = count)]
    pub top_k: Option<usize>,
    /// Keep the most likely characters up to total probability P.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Sampling seed.
    #[arg(long, default_value_t = 1337, value_parser = seed)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = count)]
    pub threads: Option<usize>,
}

/// `strata eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = count)]
    pub threads: Option<usize>,
}
