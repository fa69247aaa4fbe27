//! End-to-end tests of the `strata` binary: tiny runs (a few steps of a tiny model on a small
//! text) so that the whole file runs in seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A small text: long enough for both splits at context 8, varied enough to learn from.
fn corpus() -> String {
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
        .repeat(12)
}

/// A tiny GPT and a short schedule, as a `--config` file.
const TINY_GPT: &str = r#"{
  "model_config": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8},
  "train": {"batch_size": 4, "eval_iters": 2, "log_interval": 1, "warmup_steps": 2,
            "lr_decay_steps": 8}
}"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("text.txt"), corpus()).unwrap();
        fs::write(dir.path().join("tiny.json"), TINY_GPT).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn strata(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    }

    /// Trains the tiny GPT into `out` for `steps` steps, checkpointing every `every`.
    fn train_gpt(&self, out: &str, steps: usize, every: usize, extra: &[&str]) -> Output {
        let (steps, every) = (steps.to_string(), every.to_string());
        let mut args = vec![
            "train",
            "gpt",
            "--data",
            "text.txt",
            "--config",
            "tiny.json",
            "--out",
            out,
            "--steps",
            &steps,
            "--eval-interval",
            &every,
            "--threads",
            "1",
        ];
        args.extend_from_slice(extra);
        self.strata(&args)
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_ok(output: &Output) {
    assert!(output.status.success(), "failed: {}", stderr(output));
}

/// Exits non-zero with exactly one `error:` line on stderr, holding `needle`, and no panic.
fn assert_one_error(output: &Output, needle: &str) {
    let text = stderr(output);
    assert!(!output.status.success(), "succeeded: {text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line in: {text}");
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
}

fn metrics(run: &Path) -> Vec<Value> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `(split, step, loss bits)` of every metrics record.
fn losses(run: &Path) -> Vec<(String, u64, u64)> {
    metrics(run)
        .iter()
        .map(|r| {
            (
                r["split"].as_str().unwrap().to_string(),
                r["step"].as_u64().unwrap(),
                r["loss"].as_f64().unwrap().to_bits(),
            )
        })
        .collect()
}

/// Every tensor of a safetensors file: name, shape and raw bytes, sorted by name.
fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = file
        .iter()
        .map(|(name, view)| {
            (
                name.to_string(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn gpt_train_writes_a_complete_run_folder() {
    let fx = Fixture::new();

    let output = fx.train_gpt("run", 6, 3, &[]);

    assert_ok(&output);
    let run = fx.path("run");
    for file in [
        "config.json",
        "vocab.json",
        "model.safetensors",
        "optim.safetensors",
        "state.json",
        "metrics.jsonl",
        "loss.svg",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let records = metrics(&run);
    assert_eq!(records.iter().filter(|r| r["split"] == "train").count(), 6);
    assert_eq!(records.iter().filter(|r| r["split"] == "val").count(), 2);
    assert!(records
        .iter()
        .all(|r| r["loss"].as_f64().unwrap().is_finite()));
    let state: Value =
        serde_json::from_str(&fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 6);
    assert_eq!(state["finished"], true);
    let config: Value =
        serde_json::from_str(&fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"], "gpt");
    assert_eq!(config["model_config"]["n_embd"], 16);
    assert!(config["model_config"]["vocab_size"].as_u64().unwrap() > 10);
    assert_eq!(config["train"]["steps"], 6);
    let svg = fs::read_to_string(run.join("loss.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
    let leftovers: Vec<_> = fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("sample"), "{stdout}");
    assert!(stderr(&output).contains("parameters:"));
}

#[test]
fn resumed_run_matches_an_uninterrupted_one_bit_for_bit() {
    let fx = Fixture::new();
    assert_ok(&fx.train_gpt("whole", 8, 4, &[]));

    assert_ok(&fx.train_gpt("killed", 8, 4, &["--stop-at", "4"]));
    let stopped = losses(&fx.path("killed"));
    let resumed = fx.strata(&["resume", "killed", "--threads", "1"]);

    assert_ok(&resumed);
    assert_eq!(
        stopped.len(),
        5,
        "4 train records and 1 eval before the stop"
    );
    assert_eq!(losses(&fx.path("whole")), losses(&fx.path("killed")));
    assert!(
        tensors(&fx.path("whole/model.safetensors"))
            == tensors(&fx.path("killed/model.safetensors"))
    );
    assert!(
        tensors(&fx.path("whole/optim.safetensors"))
            == tensors(&fx.path("killed/optim.safetensors"))
    );
}

#[test]
fn metrics_past_the_checkpoint_are_dropped_on_resume() {
    let fx = Fixture::new();
    assert_ok(&fx.train_gpt("whole", 6, 3, &[]));
    assert_ok(&fx.train_gpt("run", 6, 3, &["--stop-at", "3"]));
    // A kill after step 5 leaves two records past the checkpoint at step 3.
    let mut text = fs::read_to_string(fx.path("run/metrics.jsonl")).unwrap();
    text.push_str("{\"step\":4,\"split\":\"train\",\"loss\":9.0,\"elapsed_secs\":0.0}\n");
    text.push_str("{\"step\":5,\"split\":\"train\",\"lo");
    fs::write(fx.path("run/metrics.jsonl"), text).unwrap();

    assert_ok(&fx.strata(&["resume", "run"]));

    assert_eq!(losses(&fx.path("whole")), losses(&fx.path("run")));
}

#[test]
fn sample_generates_the_requested_characters() {
    let fx = Fixture::new();
    assert_ok(&fx.train_gpt("run", 2, 2, &[]));

    let output = fx.strata(&[
        "sample", "run", "--prompt", "All", "--tokens", "37", "--seed", "3",
    ]);
    let again = fx.strata(&[
        "sample", "run", "--prompt", "All", "--tokens", "37", "--seed", "3",
    ]);

    assert_ok(&output);
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let text = text.strip_suffix('\n').unwrap();
    assert!(text.starts_with("All"));
    assert_eq!(text.chars().count(), 3 + 37);
    assert_eq!(output.stdout, again.stdout, "same seed, same sample");
}

#[test]
fn eval_reports_the_validation_loss() {
    let fx = Fixture::new();
    assert_ok(&fx.train_gpt("run", 2, 2, &[]));

    let output = fx.strata(&["eval", "run"]);

    assert_ok(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last_val = metrics(&fx.path("run"))
        .iter()
        .rev()
        .find(|r| r["split"] == "val")
        .unwrap()["loss"]
        .as_f64()
        .unwrap();
    assert!(
        stdout.contains(&format!("validation loss: {last_val:.4}")),
        "{stdout}"
    );
}

#[test]
fn bad_inputs_give_one_error_line() {
    let fx = Fixture::new();
    fs::write(fx.path("short.txt"), "tiny").unwrap();
    fs::write(fx.path("broken.json"), "{\n  \"train\": {\"steps\": 3,}\n}").unwrap();
    fs::write(fx.path("lenet.json"), r#"{"model": "lenet"}"#).unwrap();
    fs::write(fx.path("bad.bin"), [0xffu8, 0xfe, 0x00]).unwrap();
    fs::write(fx.path("typo.json"), r#"{"model_config": {"n_layers": 2}}"#).unwrap();

    assert_one_error(&fx.strata(&["train", "resnet"]), "unknown model 'resnet'");
    assert_one_error(
        &fx.strata(&["train", "gpt", "--data", "missing.txt"]),
        "missing.txt",
    );
    assert_one_error(
        &fx.strata(&["train", "gpt", "--data", "bad.bin"]),
        "bad.bin",
    );
    assert_one_error(
        &fx.strata(&[
            "train",
            "gpt",
            "--data",
            "short.txt",
            "--config",
            "tiny.json",
        ]),
        "4",
    );
    assert_one_error(
        &fx.strata(&["train", "gpt", "--config", "broken.json"]),
        "line 2 column",
    );
    assert_one_error(
        &fx.strata(&["train", "gpt", "--config", "lenet.json"]),
        "lenet",
    );
    assert_one_error(&fx.strata(&["train", "gpt", "--steps", "x"]), "--steps");
    assert_one_error(&fx.strata(&["train"]), "<MODEL>");
    assert_one_error(
        &fx.strata(&["train", "linreg", "--threads", "0"]),
        "--threads",
    );
    assert_one_error(
        &fx.strata(&["train", "linreg", "--batch-size", "0"]),
        "batch_size",
    );
    assert_one_error(&fx.strata(&["resume", "nowhere"]), "nowhere");
    assert_one_error(&fx.strata(&["sample", "."]), "not a run folder");
}

#[test]
fn run_folders_are_checked_before_use() {
    let fx = Fixture::new();
    assert_ok(&fx.train_gpt("run", 2, 2, &[]));

    let reuse = fx.train_gpt("run", 2, 2, &[]);
    let finished = fx.strata(&["resume", "run"]);
    let unknown = fx.strata(&["sample", "run", "--prompt", "Zebra"]);
    let state = fs::read_to_string(fx.path("run/state.json")).unwrap();
    fs::write(
        fx.path("run/state.json"),
        state.replace("\"gpt\"", "\"lenet\""),
    )
    .unwrap();
    let other_model = fx.strata(&["resume", "run", "--steps", "4"]);

    assert_one_error(&reuse, "already holds a run; resume it");
    assert_one_error(&finished, "--steps");
    assert_one_error(&unknown, "never saw");
    assert_one_error(
        &other_model,
        "state.json and config.json disagree: state.json says model 'lenet', config.json says \
         'gpt'",
    );
}

#[test]
fn a_corrupt_checkpoint_is_a_clear_error() {
    let fx = Fixture::new();
    assert_ok(&fx.train_gpt("run", 4, 2, &["--stop-at", "2"]));
    let model = fx.path("run/model.safetensors");
    let bytes = fs::read(&model).unwrap();
    fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();

    let resumed = fx.strata(&["resume", "run"]);
    let sampled = fx.strata(&["sample", "run", "--tokens", "5"]);

    assert_one_error(&resumed, "model.safetensors is corrupt");
    assert_one_error(&sampled, "model.safetensors is corrupt");
}

#[test]
fn linreg_recovers_the_true_weights() {
    let fx = Fixture::new();

    let output = fx.strata(&["train", "linreg", "--out", "run", "--log-interval", "100"]);

    assert_ok(&output);
    let text = stderr(&output);
    let line = text
        .lines()
        .find(|l| l.starts_with("weight: fitted"))
        .unwrap();
    let numbers: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .filter_map(|s| s.parse().ok())
        .collect();
    let (fitted, truth) = numbers.split_at(numbers.len() / 2);
    assert_eq!(fitted.len(), 3, "{line}");
    for (f, t) in fitted.iter().zip(truth) {
        assert!((f - t).abs() < 0.05, "{line}");
    }
}

#[test]
fn char_rnn_trains_resumes_exactly_and_samples() {
    let fx = Fixture::new();
    let tiny = r#"{
      "model_config": {"embedding_dim": 8, "hidden_size": 16, "num_layers": 1, "seq_len": 8},
      "train": {"batch_size": 4, "eval_iters": 2, "log_interval": 1, "steps": 6,
                "eval_interval": 3}
    }"#;
    fs::write(fx.path("rnn.json"), tiny).unwrap();
    let train = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "train", "char-rnn", "--data", "text.txt", "--config", "rnn.json",
        ];
        args.extend_from_slice(&["--out", out]);
        args.extend_from_slice(extra);
        fx.strata(&args)
    };
    assert_ok(&train("whole", &[]));
    assert_ok(&train("killed", &["--stop-at", "3"]));

    let resumed = fx.strata(&["resume", "killed"]);
    let sampled = fx.strata(&["sample", "whole", "--prompt", "Sp", "--tokens", "12"]);

    assert_ok(&resumed);
    assert_eq!(losses(&fx.path("whole")), losses(&fx.path("killed")));
    assert_ok(&sampled);
    let text = String::from_utf8(sampled.stdout).unwrap();
    assert_eq!(
        text.trim_end_matches('\n').chars().count(),
        2 + 12,
        "{text:?}"
    );
    let config: Value =
        serde_json::from_str(&fs::read_to_string(fx.path("whole/config.json")).unwrap()).unwrap();
    assert_eq!(config["model_config"]["seq_len"], 8);
    assert_eq!(config["model_config"]["cell"], "lstm");
}

#[test]
fn gan_resume_restores_both_optimizers_exactly() {
    let fx = Fixture::new();
    let tiny = r#"{"model_config": {"latent_dim": 4, "hidden_dims": [8]},
                   "train": {"batch_size": 16, "log_interval": 1, "steps": 6,
                             "eval_interval": 3}}"#;
    fs::write(fx.path("gan.json"), tiny).unwrap();
    let train = |out: &str, extra: &[&str]| {
        let mut args = vec!["train", "gan", "--config", "gan.json", "--out", out];
        args.extend_from_slice(extra);
        fx.strata(&args)
    };
    assert_ok(&train("whole", &[]));
    assert_ok(&train("killed", &["--stop-at", "3"]));

    let resumed = fx.strata(&["resume", "killed"]);
    let evaluated = fx.strata(&["eval", "whole"]);
    let sampled = fx.strata(&["sample", "whole"]);

    assert_ok(&resumed);
    assert_eq!(losses(&fx.path("whole")), losses(&fx.path("killed")));
    assert!(
        tensors(&fx.path("whole/optim.safetensors"))
            == tensors(&fx.path("killed/optim.safetensors"))
    );
    assert_ok(&evaluated);
    assert!(String::from_utf8_lossy(&evaluated.stdout).contains("modes"));
    assert_one_error(&sampled, "does not generate text");
}
