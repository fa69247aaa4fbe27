//! The training loop shared by every model: learning-rate schedule, logging, evaluation,
//! checkpoints, metrics and the loss plot. What differs between models sits behind [`Task`].
//!
//! Exact resume rests on two rules. Every random draw of step `s` comes from a generator
//! seeded by `(seed, s)` (see [`step_seed`]), so batches do not depend on how many steps ran in
//! this process. And a checkpoint holds all the state that carries from one step to the next:
//! parameters, buffers and the optimizer's state, bit for bit.
//!
//! A checkpoint is committed in three moves, each an atomic write or rename: the model and
//! optimizer files are written under pending names, then `state.json` (the commit point), then
//! the pending files are renamed over the final ones. [`recover`] finishes or discards a
//! checkpoint a kill interrupted, so the folder always holds one consistent checkpoint.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use strata_optim::StateDict;
use strata_tensor::Tensor;

use crate::checkpoint::{load_tensors, save_tensors, TensorFile};
use crate::config::{RunConfig, TrainConfig};
use crate::fsutil::write_atomic;
use crate::plot::write_loss_plot;
use crate::progress::{clock, Progress, StepLine};
use crate::rundir::{Record, RunDir, RunState};

/// What one training step reports.
#[derive(Debug, Clone, Copy)]
pub struct StepOutput {
    /// The loss of the step's batch.
    pub loss: f64,
    /// Tokens or images in the batch, for throughput.
    pub items: usize,
}

/// What an evaluation reports.
#[derive(Debug, Clone, Default)]
pub struct EvalOutput {
    /// The mean validation (or test) loss.
    pub loss: f64,
    /// Accuracy, for classifiers.
    pub accuracy: Option<f64>,
    /// Further lines for `strata eval` (a confusion matrix, fitted weights).
    pub details: Vec<String>,
}

/// Sampling options of `strata sample`.
#[derive(Debug, Clone, Copy)]
pub struct SampleOptions {
    /// Characters to generate.
    pub tokens: usize,
    /// Softmax temperature.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p`.
    pub top_p: Option<f64>,
    /// The sampling seed.
    pub seed: u64,
}

/// A model with its data and optimizer, as the training loop drives it.
pub trait Task {
    /// What throughput counts: `tok` for language models, `img` for images.
    fn unit(&self) -> &'static str;

    /// Writes the files the run folder needs besides the checkpoint (`vocab.json`,
    /// `labels.json`); the default writes none.
    ///
    /// # Errors
    /// If a file cannot be written.
    fn write_run_files(&self, run: &RunDir) -> Result<()> {
        let _ = run;
        Ok(())
    }

    /// The model config as built, with sizes taken from the data filled in (`vocab_size`);
    /// what `config.json` records.
    fn model_config_json(&self) -> serde_json::Value;

    /// The number of trainable parameter elements.
    fn num_parameters(&self) -> usize;

    /// Steps in one pass over the training set, for epoch-based runs.
    fn steps_per_epoch(&self) -> Option<usize> {
        None
    }

    /// Runs optimizer step `step` (0-based) at learning rate `lr`.
    ///
    /// # Errors
    /// If a forward or backward pass fails.
    fn train_step(&mut self, step: usize, lr: f64) -> Result<StepOutput>;

    /// Evaluates on the held-out data, leaving training state untouched.
    ///
    /// # Errors
    /// If a forward pass fails.
    fn evaluate(&mut self) -> Result<EvalOutput>;

    /// The model's parameters and buffers by name.
    fn model_tensors(&self) -> Vec<(String, Tensor<f32>)>;

    /// The optimizer's state (several optimizers combine theirs into one).
    fn optim_state(&self) -> StateDict<f32>;

    /// Loads parameters and buffers saved by [`Task::model_tensors`].
    ///
    /// # Errors
    /// If names or shapes do not match the model.
    fn load_model(&mut self, path: &Path, file: TensorFile) -> Result<()>;

    /// Loads optimizer state saved by [`Task::optim_state`].
    ///
    /// # Errors
    /// If the state does not match the optimizer.
    fn load_optim(&mut self, state: &StateDict<f32>) -> Result<()>;

    /// Prints what the model shows at the end of training (a text sample, fitted weights).
    ///
    /// # Errors
    /// If generating fails.
    fn finish(&mut self, progress: &Progress) -> Result<()> {
        let _ = progress;
        Ok(())
    }

    /// Generates text after `prompt`, for language models, handing each character to `emit`
    /// as soon as it is drawn (so a long sample can be printed as it comes).
    ///
    /// # Errors
    /// If the model does not generate text, the prompt holds unknown characters, or `emit`
    /// fails.
    fn sample(
        &mut self,
        prompt: &str,
        options: &SampleOptions,
        emit: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let _ = (prompt, options, emit);
        bail!("sample: this model does not generate text")
    }
}

/// The seed of step `step`'s random draws: `seed` mixed with a SplitMix64 hash of the step,
/// so neighbouring steps get unrelated streams.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    let mut z = step.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    seed ^ (z ^ (z >> 31))
}

/// The learning rate of step `step` (0-based), nanoGPT's schedule:
///
/// ```text
/// step < warmup:          lr * (step + 1) / (warmup + 1)
/// step > decay:           min_lr
/// otherwise:              min_lr + 0.5 * (1 + cos(pi * r)) * (lr - min_lr),
///                         r = (step - warmup) / (decay - warmup)
/// ```
///
/// A `lr_decay_steps` of 0 keeps `lr` constant after the warm-up.
pub fn learning_rate(train: &TrainConfig, step: usize) -> f64 {
    let (warmup, decay) = (train.warmup_steps, train.lr_decay_steps);
    if step < warmup {
        return train.lr * (step + 1) as f64 / (warmup + 1) as f64;
    }
    if decay == 0 {
        return train.lr;
    }
    if step > decay || decay <= warmup {
        return train.min_lr;
    }
    let ratio = (step - warmup) as f64 / (decay - warmup) as f64;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
    train.min_lr + coeff * (train.lr - train.min_lr)
}

fn pending(path: &Path) -> PathBuf {
    let name = path.file_name().expect("bug: checkpoint files have names");
    let mut pending = std::ffi::OsString::from(".pending-");
    pending.push(name);
    path.with_file_name(pending)
}

/// The metadata key of the step a checkpoint file was saved at.
const STEP_KEY: &str = "strata.step";

/// The step a checkpoint file was saved at, from its safetensors metadata.
fn file_step(path: &Path) -> Option<usize> {
    let bytes = fs::read(path).ok()?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
    header.metadata().as_ref()?.get(STEP_KEY)?.parse().ok()
}

/// Checks that the step recorded in a checkpoint file's metadata is `step`.
fn check_step(path: &Path, recorded: Option<&String>, step: usize) -> Result<()> {
    match recorded.and_then(|s| s.parse::<usize>().ok()) {
        Some(found) if found == step => Ok(()),
        found => bail!(
            "the checkpoint and state.json disagree: {} is from step {}, but state.json says \
             step {step}",
            path.display(),
            found.map_or("unknown".to_string(), |s| s.to_string())
        ),
    }
}

/// Checks that the model file of `run` is from the step `state.json` records, before anything
/// else trusts that step. A file whose header does not read is left for the loader to report
/// as corrupt.
///
/// # Errors
/// If the file is missing or from another step.
pub fn check_model_step(run: &RunDir, state: &RunState) -> Result<()> {
    let path = run.model();
    if !path.is_file() {
        bail!(
            "{} is missing: {} holds no checkpoint",
            path.display(),
            run.path().display()
        );
    }
    match file_step(&path) {
        Some(found) => check_step(&path, Some(&found.to_string()), state.step),
        None => Ok(()),
    }
}

/// Finishes or discards a checkpoint that a kill interrupted: pending files of the step in
/// `state.json` are renamed into place, others removed.
///
/// # Errors
/// If `state.json` cannot be read or a rename fails.
pub fn recover(run: &RunDir) -> Result<RunState> {
    let state = run.read_state()?;
    for path in [run.model(), run.optim()] {
        let pending = pending(&path);
        if !pending.exists() {
            continue;
        }
        if file_step(&pending) == Some(state.step) {
            fs::rename(&pending, &path)
                .with_context(|| format!("cannot finish checkpoint {}", path.display()))?;
        } else {
            let _ = fs::remove_file(&pending);
        }
    }
    Ok(state)
}

/// Loads the checkpoint of `run` into `task`, checking both files are at `state.step`.
///
/// # Errors
/// If a file is missing, corrupt, of another step, or does not match the model.
pub fn load_checkpoint(run: &RunDir, state: &RunState, task: &mut dyn Task) -> Result<()> {
    load_model(run, state, task)?;
    let path = run.optim();
    let mut optim = StateDict::<f32>::load(&path)?;
    check_step(&path, optim.metadata.remove(STEP_KEY).as_ref(), state.step)?;
    for (name, tensor) in &optim.tensors {
        if tensor.contiguous_slice().iter().any(|v| !v.is_finite()) {
            bail!(
                "{}: {name} holds a NaN or an infinity; a checkpoint must hold finite numbers \
                 only",
                path.display()
            );
        }
    }
    task.load_optim(&optim)
        .with_context(|| format!("{} does not match the optimizer", path.display()))
}

/// Loads the model file of `run` into `task`, checking it is at `state.step`.
///
/// # Errors
/// If the file is missing, corrupt, of another step, or does not match the model.
pub fn load_model(run: &RunDir, state: &RunState, task: &mut dyn Task) -> Result<()> {
    let path = run.model();
    let model = load_tensors(&path)?;
    check_step(&path, model.metadata.get(STEP_KEY), state.step)?;
    task.load_model(&path, model)
}

/// Writes a checkpoint of `task` at `state.step` and commits it (see the module docs).
///
/// # Errors
/// If a file cannot be written.
pub fn save_checkpoint(run: &RunDir, state: &RunState, task: &dyn Task) -> Result<()> {
    let metadata = BTreeMap::from([
        (STEP_KEY.to_string(), state.step.to_string()),
        ("strata.model".to_string(), state.model.name().to_string()),
        ("format".to_string(), "pt".to_string()),
    ]);
    let (model, optim) = (run.model(), run.optim());
    save_tensors(&pending(&model), &task.model_tensors(), metadata)?;
    let mut optim_state = task.optim_state();
    optim_state
        .metadata
        .insert(STEP_KEY.into(), state.step.to_string());
    write_atomic(&pending(&optim), &optim_state.to_bytes())?;
    run.write_state(state)?;
    for path in [model, optim] {
        fs::rename(pending(&path), &path)
            .with_context(|| format!("cannot commit checkpoint {}", path.display()))?;
    }
    Ok(())
}

/// How [`train`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every step ran.
    Finished,
    /// `--stop-at` stopped the run after a checkpoint.
    Stopped,
}

/// Trains `task` from `state.step` to `config.train.steps`, evaluating and checkpointing every
/// `eval_interval` steps and at the end; stops early after the checkpoint at `stop_at`.
///
/// # Errors
/// If a step, an evaluation or a write fails, or the loss stops being finite.
pub fn train(
    run: &RunDir,
    config: &RunConfig,
    task: &mut dyn Task,
    mut state: RunState,
    mut records: Vec<Record>,
    stop_at: Option<usize>,
) -> Result<Outcome> {
    let train = &config.train;
    let total = train.steps;
    let spe = task.steps_per_epoch();
    let progress = Progress::new(state.step, total, task.unit());
    let prior_secs = state.elapsed_secs;
    let secs = |p: &Progress| prior_secs + p.elapsed().as_secs_f64();
    let mut window: Vec<f64> = Vec::new();
    let (mut window_items, mut window_secs) = (0usize, 0.0f64);

    for step in state.step..total {
        let lr = learning_rate(train, step);
        let started = std::time::Instant::now();
        let out = task.train_step(step, lr)?;
        window_secs += started.elapsed().as_secs_f64();
        if !out.loss.is_finite() {
            bail!(
                "training diverged: the loss is {} at step {}",
                out.loss,
                step + 1
            );
        }
        let done = step + 1;
        window.push(out.loss);
        window_items += out.items;

        if done % train.log_interval == 0 || done == total {
            let loss_avg = window.iter().sum::<f64>() / window.len() as f64;
            let line = StepLine {
                step: done,
                epoch: spe.map(|spe| step / spe + 1),
                loss: out.loss,
                loss_avg,
                lr,
                throughput: window_items as f64 / window_secs.max(1e-9),
            };
            progress.log_step(&line);
            records.push(Record {
                step: done,
                split: "train".into(),
                loss: out.loss,
                loss_avg: Some(loss_avg),
                lr: Some(lr),
                accuracy: None,
                throughput: Some(line.throughput),
                elapsed_secs: secs(&progress),
            });
            run.write_metrics(&records)?;
            window.clear();
            (window_items, window_secs) = (0, 0.0);
        } else {
            progress.tick(done);
        }

        if done % train.eval_interval == 0 || done == total {
            let eval = task.evaluate()?;
            let accuracy = eval
                .accuracy
                .map_or(String::new(), |a| format!(" | accuracy {:.2}%", 100.0 * a));
            progress.println(&format!(
                "eval step {done}: val loss {:.4}{accuracy}",
                eval.loss
            ));
            records.push(Record {
                step: done,
                split: "val".into(),
                loss: eval.loss,
                loss_avg: None,
                lr: None,
                accuracy: eval.accuracy,
                throughput: None,
                elapsed_secs: secs(&progress),
            });
            run.write_metrics(&records)?;
            state.step = done;
            state.last_val_loss = Some(eval.loss);
            state.best_val_loss = Some(state.best_val_loss.map_or(eval.loss, |b| b.min(eval.loss)));
            state.elapsed_secs = secs(&progress);
            state.finished = done == total;
            save_checkpoint(run, &state, task)?;
            write_loss_plot(&run.plot(), &format!("{} loss", config.model), &records)?;
            if stop_at == Some(done) && done < total {
                progress.finish();
                eprintln!("stopped after the checkpoint at step {done} (--stop-at)");
                return Ok(Outcome::Stopped);
            }
        }
    }
    progress.finish();

    let last_train = records.iter().rev().find(|r| r.split == "train");
    eprintln!(
        "done: {total} steps | final train loss {} | val loss {} (best {}) | {}",
        last_train.map_or("-".into(), |r| format!("{:.4}", r.loss)),
        state
            .last_val_loss
            .map_or("-".into(), |l| format!("{l:.4}")),
        state
            .best_val_loss
            .map_or("-".into(), |l| format!("{l:.4}")),
        clock(state.elapsed_secs)
    );
    eprintln!("checkpoint: {}", run.model().display());
    task.finish(&progress)?;
    Ok(Outcome::Finished)
}

/// Keeps the records of steps up to `step`, dropping those a killed run logged after its last
/// checkpoint, so a resumed run's metrics match an uninterrupted run's.
pub fn records_up_to(records: Vec<Record>, step: usize) -> Vec<Record> {
    records.into_iter().filter(|r| r.step <= step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptimizerKind;

    fn train_config(warmup: usize, decay: usize) -> TrainConfig {
        TrainConfig {
            steps: 10,
            epochs: None,
            batch_size: 1,
            optimizer: OptimizerKind::Adamw,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: warmup,
            lr_decay_steps: decay,
            betas: (0.9, 0.99),
            weight_decay: 0.0,
            grad_clip: 0.0,
            eval_interval: 1,
            eval_iters: 1,
            log_interval: 1,
            seed: 0,
            data: None,
        }
    }

    #[test]
    fn schedule_warms_up_then_decays_to_min_lr() {
        let config = train_config(100, 2000);

        assert!((learning_rate(&config, 0) - 1e-3 / 101.0).abs() < 1e-15);
        assert!((learning_rate(&config, 100) - 1e-3).abs() < 1e-15);
        assert!((learning_rate(&config, 1050) - 5.5e-4).abs() < 1e-12);
        assert!((learning_rate(&config, 2000) - 1e-4).abs() < 1e-15);
        assert_eq!(learning_rate(&config, 5000), 1e-4);
        assert_eq!(learning_rate(&train_config(0, 0), 7), 1e-3);
    }

    #[test]
    fn step_seeds_differ_between_steps_and_seeds() {
        assert_ne!(step_seed(1, 0), step_seed(1, 1));
        assert_ne!(step_seed(1, 0), step_seed(2, 0));
        assert_eq!(step_seed(5, 9), step_seed(5, 9));
    }

    fn state_at(step: usize) -> RunState {
        RunState {
            model: crate::config::ModelKind::Gpt,
            step,
            total_steps: 10,
            seed: 0,
            best_val_loss: None,
            last_val_loss: None,
            elapsed_secs: 0.0,
            finished: false,
        }
    }

    fn write_pending(path: &Path, step: usize) {
        let metadata = BTreeMap::from([(STEP_KEY.to_string(), step.to_string())]);
        let tensor = Tensor::from_vec(vec![step as f32], &[1]).unwrap();
        save_tensors(&pending(path), &[("w".into(), tensor)], metadata).unwrap();
    }

    #[test]
    fn recover_finishes_a_committed_checkpoint_and_drops_an_uncommitted_one() {
        // A kill after state.json (the commit point) leaves pending files of its step, which
        // must be renamed into place; a kill before it leaves pending files of a later step,
        // which must go, keeping the previous checkpoint.
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::stage(Some(&dir.path().join("run")), crate::config::ModelKind::Gpt)
            .unwrap()
            .commit()
            .unwrap();
        run.write_state(&state_at(4)).unwrap();
        write_pending(&run.model(), 4);
        write_pending(&run.optim(), 6);
        let previous = Tensor::from_vec(vec![2.0f32], &[1]).unwrap();
        save_tensors(&run.optim(), &[("w".into(), previous)], BTreeMap::new()).unwrap();

        let state = recover(&run).unwrap();

        assert_eq!(state.step, 4);
        assert!(!pending(&run.model()).exists() && !pending(&run.optim()).exists());
        assert_eq!(
            load_tensors(&run.model()).unwrap().tensors["w"].to_vec(),
            [4.0]
        );
        assert_eq!(
            load_tensors(&run.optim()).unwrap().tensors["w"].to_vec(),
            [2.0]
        );
    }

    #[test]
    fn records_past_the_checkpoint_are_dropped() {
        let record = |step| Record {
            step,
            split: "train".into(),
            loss: 1.0,
            loss_avg: None,
            lr: None,
            accuracy: None,
            throughput: None,
            elapsed_secs: 0.0,
        };

        let kept = records_up_to(vec![record(1), record(2), record(3)], 2);

        assert_eq!(kept.iter().map(|r| r.step).collect::<Vec<_>>(), [1, 2]);
    }
}
