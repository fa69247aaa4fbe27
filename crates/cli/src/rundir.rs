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

/// A new run folder being filled under a hidden temporary name beside its final one; see
/// [`RunDir::stage`].
#[derive(Debug)]
pub struct StagedRun {
    run: RunDir,
    target: PathBuf,
}

impl StagedRun {
    /// The temporary folder, to write the first files into.
    pub fn run(&self) -> &RunDir {
        &self.run
    }

    /// Renames the temporary folder to its final name (an absent or empty folder there is
    /// replaced), so the run folder appears whole or not at all.
    ///
    /// # Errors
    /// If the final name was taken in the meantime or the rename fails; the temporary folder
    /// is removed then.
    pub fn commit(self) -> Result<RunDir> {
        if let Err(err) = fs::rename(&self.run.path, &self.target) {
            let _ = fs::remove_dir_all(&self.run.path);
            return Err(err).with_context(|| {
                format!(
                    "cannot create run folder {} (did another process just fill it?)",
                    self.target.display()
                )
            });
        }
        if let Some(parent) = self.target.parent() {
            if let Ok(dir) = fs::File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(RunDir { path: self.target })
    }
}

impl RunDir {
    /// Starts the folder of a new run: `out` if given (it must be absent or empty), else
    /// `runs/<model>-<n>` with the first unused `n`. The files go into a hidden temporary
    /// folder beside it (`.<name>.partial-<pid>`) until [`StagedRun::commit`] renames it, so a
    /// run killed before its first checkpoint leaves no half-made run folder behind.
    ///
    /// # Errors
    /// If `out` is a file or holds files, or the folder cannot be created.
    pub fn stage(out: Option<&Path>, model: ModelKind) -> Result<StagedRun> {
        let target = match out {
            Some(path) => {
                check_free(path)?;
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
        let parent = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create folder {}", parent.display()))?;
        let name = target
            .file_name()
            .with_context(|| format!("--out {} does not name a folder", target.display()))?;
        let mut staging_name = std::ffi::OsString::from(".");
        staging_name.push(name);
        staging_name.push(format!(".partial-{}", std::process::id()));
        let staging = parent.join(staging_name);
        if staging.exists() {
            // Left by an earlier process with the same id that was killed; it is ours.
            let _ = fs::remove_dir_all(&staging);
        }
        fs::create_dir(&staging)
            .with_context(|| format!("cannot create run folder {}", staging.display()))?;
        Ok(StagedRun {
            run: RunDir { path: staging },
            target,
        })
    }

    /// Opens an existing run folder, checking that it holds a config and a state.
    ///
    /// # Errors
    /// If `path` is not a folder or lacks `config.json` or `state.json`.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            bail!("{} is a file, not a run folder", path.display());
        }
        if !path.is_dir() {
            bail!("run folder {} does not exist", path.display());
        }
        let dir = Self {
            path: path.to_path_buf(),
        };
        if !dir.config().is_file() {
            bail!(
                "{} is not a run folder: config.json is missing",
                path.display()
            );
        }
        if !dir.state().is_file() {
            bail!(
                "{} holds no checkpoint (state.json is missing): the run stopped before its \
                 first checkpoint; remove the folder and start the run again with `strata \
                 train`",
                path.display()
            );
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

    /// Reads `config.json`, checking it is for `expected` (the model of `state.json`) when
    /// given.
    ///
    /// # Errors
    /// If it cannot be read or parsed, or is for another model.
    pub fn read_config(&self, expected: Option<ModelKind>) -> Result<RunConfig> {
        let config: RunConfig = read_json(&self.config())?;
        if let Some(expected) = expected.filter(|&m| m != config.model) {
            bail!(
                "{}: state.json and config.json disagree: state.json says model '{expected}', \
                 config.json says '{}'",
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

/// Checks that `path` can become a new run folder: absent or an empty folder.
///
/// # Errors
/// If it is a file, or a folder holding files (saying whether they are a run to resume).
fn check_free(path: &Path) -> Result<()> {
    if path.is_file() {
        bail!("--out {} is a file; give a folder", path.display());
    }
    let holds_files = fs::read_dir(path).is_ok_and(|mut dir| dir.next().is_some());
    if !holds_files {
        return Ok(());
    }
    let is_run = path.join("config.json").is_file() && path.join("state.json").is_file();
    if is_run {
        bail!(
            "{} already holds a run; resume it with `strata resume {}` or choose another --out",
            path.display(),
            path.display()
        );
    }
    bail!(
        "{} already holds files that are not a strata run with a checkpoint; choose another \
         --out or empty the folder",
        path.display()
    );
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
        let run = RunDir::stage(Some(&dir.path().join("run")), ModelKind::Gpt)
            .unwrap()
            .commit()
            .unwrap();
        run.write_metrics(&[record(1), record(2)]).unwrap();
        let mut text = fs::read_to_string(run.metrics()).unwrap();
        text.push_str("{\"step\": 3, \"spl");
        fs::write(run.metrics(), text).unwrap();

        let back = run.read_metrics().unwrap();

        assert_eq!(back, [record(1), record(2)]);
    }

    #[test]
    fn stage_refuses_a_folder_with_files_and_open_wants_a_run() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), "x").unwrap();

        let staged = RunDir::stage(Some(dir.path()), ModelKind::Gpt);
        let open = RunDir::open(dir.path());

        assert!(staged.unwrap_err().to_string().contains("not a strata run"));
        assert!(open
            .unwrap_err()
            .to_string()
            .contains("config.json is missing"));
    }

    /// Regression: a kill in the first moments of `strata train` left a folder with only
    /// config.json and vocab.json; `resume` called it "not a run folder" and `train --out`
    /// wrongly advised resuming it. Now the folder appears only once its first checkpoint
    /// is complete.
    #[test]
    fn a_new_run_folder_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run");

        let staged = RunDir::stage(Some(&target), ModelKind::Gpt).unwrap();
        fs::write(staged.run().config(), "{}").unwrap();
        fs::write(staged.run().file("vocab.json"), "{}").unwrap();
        let before_commit = target.exists();
        let run = staged.commit().unwrap();

        assert!(
            !before_commit,
            "a killed run must leave no folder under the final name"
        );
        assert_eq!(run.path(), target);
        assert!(run.config().is_file() && run.file("vocab.json").is_file());
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["run"], "the temporary folder is gone");
    }

    /// Regression: a folder with a config but no checkpoint (left by an older build) was
    /// reported as "not a run folder: state.json is missing" by `resume`, and `train --out`
    /// told the user to resume it.
    #[test]
    fn a_folder_without_a_checkpoint_gets_the_right_advice() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), "{}").unwrap();
        fs::write(dir.path().join("vocab.json"), "{}").unwrap();

        let open = RunDir::open(dir.path()).unwrap_err().to_string();
        let staged = RunDir::stage(Some(dir.path()), ModelKind::Gpt)
            .unwrap_err()
            .to_string();

        assert!(open.contains("holds no checkpoint"), "{open}");
        assert!(open.contains("strata train"), "{open}");
        assert!(!staged.contains("resume"), "{staged}");
        assert!(staged.contains("choose another --out"), "{staged}");
    }

    /// Regression: `strata eval data/tiny.txt` said the run folder "does not exist".
    #[test]
    fn a_file_given_as_run_folder_is_named_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tiny.txt");
        fs::write(&file, "text").unwrap();

        let err = RunDir::open(&file).unwrap_err().to_string();

        assert!(err.contains("is a file, not a run folder"), "{err}");
    }
}
