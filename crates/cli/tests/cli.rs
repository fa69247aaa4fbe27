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

/// Trains the tiny GPT for 2 steps into `out`; the shared start of the regression tests.
fn tiny_run(fx: &Fixture, out: &str) {
    assert_ok(&fx.train_gpt(out, 2, 2, &[]));
}

/// Regression: `gan` was listed in `train --help` but `strata train gan` said "not available
/// in this build yet".
#[test]
fn gan_is_listed_and_trains() {
    let fx = Fixture::new();
    fs::write(
        fx.path("gan.json"),
        r#"{"model_config": {"latent_dim": 2, "hidden_dims": [4]}, "train": {"batch_size": 8}}"#,
    )
    .unwrap();

    let help = fx.strata(&["train", "--help"]);
    let trained = fx.strata(&[
        "train", "gan", "--config", "gan.json", "--steps", "2", "--out", "run",
    ]);

    assert!(String::from_utf8_lossy(&help.stdout).contains("gan"));
    assert_ok(&trained);
}

/// Regression: two runs with the same seed wrote model.safetensors files whose bytes differed,
/// because the header's `__metadata__` keys came out in hash-map order.
#[test]
fn same_seed_gives_the_same_checkpoint_bytes() {
    let fx = Fixture::new();
    tiny_run(&fx, "a");
    tiny_run(&fx, "b");

    for file in ["model.safetensors", "optim.safetensors"] {
        let a = fs::read(fx.path("a").join(file)).unwrap();
        let b = fs::read(fx.path("b").join(file)).unwrap();
        assert!(a == b, "{file} differs between identical runs");
    }
}

/// Regression: with `--steps 300` the schedule still said "decay to step 2000", so a short
/// run never decayed.
#[test]
fn schedule_decays_to_the_given_steps() {
    let fx = Fixture::new();
    fs::write(
        fx.path("plain.json"),
        r#"{"model_config": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8},
            "train": {"batch_size": 4, "eval_iters": 2}}"#,
    )
    .unwrap();

    let output = fx.strata(&[
        "train",
        "gpt",
        "--data",
        "text.txt",
        "--config",
        "plain.json",
        "--out",
        "run",
        "--steps",
        "20",
        "--eval-interval",
        "20",
    ]);

    assert_ok(&output);
    assert!(stderr(&output).contains("warm-up 2, decay to step 20"));
    let config: Value =
        serde_json::from_str(&fs::read_to_string(fx.path("run/config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["lr_decay_steps"], 20);
    assert_eq!(config["train"]["warmup_steps"], 2);
    let last_lr = metrics(&fx.path("run"))
        .iter()
        .rev()
        .find(|r| r["split"] == "train")
        .unwrap()["lr"]
        .as_f64()
        .unwrap();
    // Step 20 of a decay to step 20 is within 1% of the way from min_lr (1e-4) to lr (1e-3).
    assert!(
        last_lr < 1.1e-4,
        "the last step ends near min_lr: {last_lr}"
    );
}

/// Regression: NaN weights in model.safetensors loaded silently; `sample` printed newlines and
/// `eval` printed "validation loss: NaN" with exit status 0.
#[test]
fn nan_weights_in_a_checkpoint_are_rejected() {
    let fx = Fixture::new();
    tiny_run(&fx, "run");
    let path = fx.path("run/model.safetensors");
    let bytes = fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .iter()
        .map(|(n, v)| (n.to_string(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let poisoned = blobs
        .iter_mut()
        .find(|(name, _, _)| name.ends_with("ln_f.weight"))
        .unwrap();
    poisoned.2[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView)> = blobs
        .iter()
        .map(|(n, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap();
            (n.clone(), view)
        })
        .collect();
    fs::write(&path, safetensors::serialize(views, metadata).unwrap()).unwrap();

    let sampled = fx.strata(&["sample", "run", "--tokens", "5"]);
    let evaluated = fx.strata(&["eval", "run"]);

    assert_one_error(&sampled, "ln_f.weight holds NaN");
    assert_one_error(&evaluated, "model.safetensors");
    assert!(sampled.stdout.is_empty());
}

/// Regression: a kill in the first ~0.1 s of `strata train` left a folder with only
/// config.json and vocab.json that neither `resume` nor `train --out` could use. Whenever the
/// kill lands, the folder must be absent or a complete run.
#[test]
fn an_early_kill_leaves_no_unusable_folder() {
    let fx = Fixture::new();
    for (i, delay_ms) in [0u64, 5, 20, 60].into_iter().enumerate() {
        let out = format!("run{i}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "train",
                "gpt",
                "--data",
                "text.txt",
                "--config",
                "tiny.json",
                "--out",
                &out,
                "--steps",
                "100000",
                "--eval-interval",
                "100000",
            ])
            .current_dir(fx.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();

        let run = fx.path(&out);
        if run.exists() {
            assert!(
                run.join("state.json").is_file(),
                "{out}: a run without state"
            );
            assert_ok(&fx.strata(&["eval", &out]));
        }
        let again = fx.train_gpt(&out, 2, 2, &[]);
        if run.join("state.json").is_file() && !again.status.success() {
            assert_one_error(&again, "resume it");
        }
    }
}

/// Regression: an empty data file was reported as "gpt: invalid config: vocab_size must be
/// positive".
#[test]
fn an_empty_data_file_says_it_is_empty() {
    let fx = Fixture::new();
    fs::write(fx.path("empty.txt"), "").unwrap();

    let output = fx.strata(&["train", "gpt", "--data", "empty.txt"]);

    assert_one_error(&output, "empty.txt holds no text (the file is empty)");
}

/// Regression: `--steps -1` gave clap's "unexpected argument '-1' found", `--lr -1` never
/// reached the real check, and `--temperature inf` did not say it must be finite.
#[test]
fn negative_and_infinite_numbers_reach_the_real_checks() {
    let fx = Fixture::new();
    tiny_run(&fx, "run");

    let steps = fx.strata(&["train", "linreg", "--steps", "-1"]);
    let lr = fx.strata(&["train", "linreg", "--lr", "-1"]);
    let temperature = fx.strata(&["sample", "run", "--temperature", "inf"]);
    let top_p = fx.strata(&["sample", "run", "--top-p", "-0.5"]);

    assert_one_error(&steps, "must be a whole number >= 0, got -1");
    assert_one_error(&lr, "train.lr must be a finite number >= 0, got -1");
    assert_one_error(&temperature, "--temperature must be finite");
    assert_one_error(&top_p, "--top-p must be in (0, 1], got -0.5");
}

/// Regression: `strata eval data/tiny.txt` (a file) said the run folder "does not exist".
#[test]
fn a_file_given_as_run_folder_is_named_a_file() {
    let fx = Fixture::new();

    let output = fx.strata(&["eval", "text.txt"]);

    assert_one_error(&output, "text.txt is a file, not a run folder");
}

/// Regression: a missing vocab.json gave "CharVocab::load: ...: No such file or directory (os
/// error 2): No such file or directory (os error 2)", and too short a text began with
/// "TextDataset::new:".
#[test]
fn data_errors_say_their_cause_once_in_plain_words() {
    let fx = Fixture::new();
    tiny_run(&fx, "run");
    fs::remove_file(fx.path("run/vocab.json")).unwrap();
    fs::write(fx.path("short.txt"), "tiny").unwrap();

    let missing = fx.strata(&["sample", "run"]);
    let short = fx.strata(&[
        "train",
        "gpt",
        "--data",
        "short.txt",
        "--config",
        "tiny.json",
    ]);

    assert_one_error(&missing, "vocab.json is missing");
    assert_one_error(&short, "the corpus has 4 characters");
    for output in [&missing, &short] {
        let text = stderr(output);
        assert!(!text.contains("::") && !text.contains("os error"), "{text}");
    }
}

/// Regression: a state.json and a checkpoint that disagree (step 99999 with `resume --steps
/// 4`) got the advice about --steps, and a vocab.json cut to 3 characters was not reported as
/// disagreeing with the model's vocabulary size.
#[test]
fn run_files_that_disagree_say_which_ones() {
    let fx = Fixture::new();
    tiny_run(&fx, "steps");
    tiny_run(&fx, "vocab");
    let state = fs::read_to_string(fx.path("steps/state.json")).unwrap();
    let state = state.replace("\"step\": 2,", "\"step\": 99999,");
    fs::write(fx.path("steps/state.json"), state).unwrap();
    fs::write(fx.path("vocab/vocab.json"), r#"{"chars": " ae"}"#).unwrap();
    let config: Value =
        serde_json::from_str(&fs::read_to_string(fx.path("vocab/config.json")).unwrap()).unwrap();
    let vocab_size = config["model_config"]["vocab_size"].as_u64().unwrap();

    let resumed = fx.strata(&["resume", "steps", "--steps", "4"]);
    let sampled = fx.strata(&["sample", "vocab"]);

    assert_one_error(&resumed, "the checkpoint and state.json disagree");
    assert_one_error(
        &sampled,
        &format!("vocab.json has 3 characters, the model has {vocab_size}"),
    );
}

/// Regression: a config file holding a JSON array gave "invalid length 0, expected struct
/// ConfigFile with 3 elements".
#[test]
fn a_config_that_is_not_an_object_says_so() {
    let fx = Fixture::new();
    fs::write(fx.path("array.json"), "[]").unwrap();

    let output = fx.strata(&["train", "gpt", "--config", "array.json"]);

    assert_one_error(&output, "must be a JSON object");
}

/// Regression: options that did nothing were accepted without a word: `--epochs` for gpt, a
/// `model_config.vocab_size` the data overrode, and a `min_lr` above `lr`.
#[test]
fn options_that_would_be_ignored_are_errors() {
    let fx = Fixture::new();
    fs::write(
        fx.path("vocab.json"),
        r#"{"model_config": {"vocab_size": 5, "n_layer": 1, "n_head": 2, "n_embd": 16,
            "block_size": 8}}"#,
    )
    .unwrap();
    fs::write(fx.path("min_lr.json"), r#"{"train": {"min_lr": 0.5}}"#).unwrap();
    let data = ["--data", "text.txt"];

    let epochs = fx.strata(&[&["train", "gpt", "--epochs", "1"][..], &data].concat());
    let vocab = fx.strata(&[&["train", "gpt", "--config", "vocab.json"][..], &data].concat());
    let min_lr = fx.strata(&[&["train", "gpt", "--config", "min_lr.json"][..], &data].concat());
    let eval_iters = fx.strata(&["train", "linreg", "--eval-iters", "3"]);

    assert_one_error(
        &epochs,
        "--epochs (train.epochs) applies to lenet and mlp only",
    );
    assert_one_error(&vocab, "model_config.vocab_size is 5 but the data has");
    assert_one_error(&min_lr, "train.min_lr (5e-1) is above train.lr (1e-3)");
    assert_one_error(
        &eval_iters,
        "--eval-iters (train.eval_iters) applies to gpt",
    );
}
