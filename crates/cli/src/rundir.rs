//! The run folder: its file names, `state.json` (where training stopped) and `metrics.jsonl`
//! (one record per logged step and per evaluation).
//!
//! ```text
//! runs/gpt-1/
//!   config.json        the resolved config (model config + training config)
//!   vocab.json         the character vocabulary (language models) or labels.json (classifiers)
//!   model.safetensors  the model's parameters and buffers at the last checkpoint
//!   optim.safetensors  the optimizer's state at the last checkpoint
//!   state.json         step, seed, best validation loss, ... at the last checkpoint
//!   metrics.jsonl      one JSON object per logged step and evaluation
//!   loss.svg           training and validation loss against step
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{ModelKind, RunConfig};
use crate::fsutil::{read_json, write_atomic, write_json_atomic};

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates the folder for a new run: `out` if given (it must be absent or empty), else
    /// `runs/<model>-<n>` with the first unused `n`.
    ///
    /// # Errors
    /// If `out` holds files, or the folder cannot be created.
    pub fn create(out: Option<&Path>, model: ModelKind) -> Result<Self> {
        let path = match out {
            Some(path) => {
                let holds_files = fs::read_dir(path).is_ok_and(|mut dir| dir.next().is_some());
                if holds_files {
                    bail!(
                        "{} already holds files; resume it with `strata resume {}` or choose \
                         another --out",
                        path.display(),
                        path.display()
                    );
                }
                path.to_path_buf()
            }
            None => {
                let runs = Path::new("runs");
                (1..)
                    .map(|n| runs.join(format!("{model}-{n}")))
                    .find(|candidate| !candidate.exists())
                    .expect("bug: some run number is free")
            }
        };
        fs::create_dir_all(&path)
            .with_context(|| format!("cannot create run folder {}", path.display()))?;
        Ok(Self { path })
    }

    /// Opens an existing run folder, checking that it holds a config and a state.
    ///
    /// # Errors
    /// If `path` is not a folder or lacks `config.json` or `state.json`.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            bail!("run folder {} does not exist", path.display());
        }
        let dir = Self {
            path: path.to_path_buf(),
        };
        for file in [dir.config(), dir.state()] {
            if !file.is_file() {
                bail!(
                    "{} is not a run folder: {} is missing",
                    path.display(),
                    file.file_name()
                        .expect("bug: run files have names")
                        .to_string_lossy()
                );
            }
        }
        Ok(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.path.join("config.json")
    }

    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// `model.safetensors`.
    pub fn model(&self) -> PathBuf {
        self.path.join("model.safetensors")
    }

    /// `optim.safetensors`.
    pub fn optim(&self) -> PathBuf {
        self.path.join("optim.safetensors")
    }

    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    /// `loss.svg`.
    pub fn plot(&self) -> PathBuf {
        self.path.join("loss.svg")
    }

    /// A file of the folder by name (`vocab.json`, `labels.json`).
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `config.json`.
    ///
    /// # Errors
    /// If it cannot be written.
    pub fn write_config(&self, config: &RunConfig) -> Result<()> {
        write_json_atomic(&self.config(), config)
    }

    /// Reads `config.json`, checking it is for `expected` when given.
    ///
    /// # Errors
    /// If it cannot be read or parsed, or is for another model.
    pub fn read_config(&self, expected: Option<ModelKind>) -> Result<RunConfig> {
        let config: RunConfig = read_json(&self.config())?;
        if let Some(expected) = expected.filter(|&m| m != config.model) {
            bail!(
                "{} is a '{}' run, not a '{expected}' run",
                self.path.display(),
                config.model
            );
        }
        Ok(config)
    }

    /// Reads `state.json`.
    ///
    /// # Errors
    /// If it cannot be read or parsed.
    pub fn read_state(&self) -> Result<RunState> {
        read_json(&self.state())
    }

    /// Writes `state.json`.
    ///
    /// # Errors
    /// If it cannot be written.
    pub fn write_state(&self, state: &RunState) -> Result<()> {
        write_json_atomic(&self.state(), state)
    }

    /// Reads `metrics.jsonl`, skipping lines that do not parse; an absent file reads as empty.
    ///
    /// # Errors
    /// If the file exists but cannot be read.
    pub fn read_metrics(&self) -> Result<Vec<Record>> {
        let path = self.metrics();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// Rewrites `metrics.jsonl` atomically with `records`, one JSON object a line.
    ///
    /// # Errors
    /// If it cannot be written.
    pub fn write_metrics(&self, records: &[Record]) -> Result<()> {
        let mut bytes = Vec::new();
        for record in records {
            serde_json::to_writer(&mut bytes, record).context("cannot serialise a metric")?;
            bytes.push(b'\n');
        }
        write_atomic(&self.metrics(), &bytes)
    }
}

/// Where training stood at the last checkpoint: the content of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The model, checked again on resume.
    pub model: ModelKind,
    /// Optimizer steps done.
    pub step: usize,
    /// The total steps of the run.
    pub total_steps: usize,
    /// The run's seed.
    pub seed: u64,
    /// The lowest validation loss seen so far, if any evaluation ran.
    pub best_val_loss: Option<f64>,
    /// The validation loss of the last evaluation.
    pub last_val_loss: Option<f64>,
    /// Wall-clock seconds spent training, over every process that worked on the run.
    pub elapsed_secs: f64,
    /// Whether the run reached `total_steps`.
    pub finished: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The step this record follows (1 for the first optimizer step).
    pub step: usize,
    /// `"train"` for a logged training step, `"val"` for an evaluation.
    pub split: String,
    /// The loss: the step's training loss, or the mean validation loss.
    pub loss: f64,
    /// The mean training loss since the previous log line (training records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_avg: Option<f64>,
    /// The learning rate of the step (training records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Classification accuracy (evaluation of classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Tokens or images per second of training compute since the previous log line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// Wall-clock seconds since the run began.
    pub elapsed_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize) -> Record {
        Record {
            step,
            split: "train".into(),
            loss: 1.5,
            loss_avg: None,
            lr: Some(0.1),
            accuracy: None,
            throughput: None,
            elapsed_secs: 0.0,
        }
    }

    #[test]
    fn metrics_round_trip_and_partial_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(Some(&dir.path().join("run")), ModelKind::Gpt).unwrap();
        run.write_metrics(&[record(1), record(2)]).unwrap();
        let mut text = fs::read_to_string(run.metrics()).unwrap();
        text.push_str("{\"step\": 3, \"spl");
        fs::write(run.metrics(), text).unwrap();

        let back = run.read_metrics().unwrap();

        assert_eq!(back, [record(1), record(2)]);
    }

    #[test]
    fn create_refuses_a_folder_with_files_and_open_wants_a_run() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), "x").unwrap();

        let create = RunDir::create(Some(dir.path()), ModelKind::Gpt);
        let open = RunDir::open(dir.path());

        assert!(create
            .unwrap_err()
            .to_string()
            .contains("already holds files"));
        assert!(open
            .unwrap_err()
            .to_string()
            .contains("config.json is missing"));
    }
}
