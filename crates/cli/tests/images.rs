//! End-to-end tests of the image classifiers (`lenet`, `mlp`) on a tiny synthetic dataset in
//! the MNIST layout, written by the test.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Writes an IDX file: magic, big-endian dims, then the bytes.
fn write_idx(path: &Path, magic: u32, dims: &[u32], data: &[u8]) {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    fs::write(path, bytes).unwrap();
}

/// `n` 28x28 images of 4 classes; class `k` lights rows `7k..7k + 7`, with some noise.
fn images(n: usize, salt: usize) -> (Vec<u8>, Vec<u8>) {
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i * 7 + salt) % 4;
        labels.push(label as u8);
        for p in 0..784 {
            let row = p / 28;
            let lit = row / 7 == label;
            let noise = ((i * 31 + p * 17 + salt) % 23) as u8;
            pixels.push(if lit { 200 + noise } else { noise });
        }
    }
    (pixels, labels)
}

fn write_dataset(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let (train_x, train_y) = images(96, 0);
    let (test_x, test_y) = images(40, 1);
    write_idx(
        &dir.join("train-images-idx3-ubyte"),
        0x803,
        &[96, 28, 28],
        &train_x,
    );
    write_idx(&dir.join("train-labels-idx1-ubyte"), 0x801, &[96], &train_y);
    write_idx(
        &dir.join("t10k-images-idx3-ubyte"),
        0x803,
        &[40, 28, 28],
        &test_x,
    );
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), 0x801, &[40], &test_y);
}

fn strata(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn train(dir: &Path, model: &str, out: &str, epochs: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        model,
        "--data",
        "data",
        "--out",
        out,
        "--epochs",
        epochs,
        "--batch-size",
        "16",
        "--log-interval",
        "2",
    ];
    args.extend_from_slice(extra);
    strata(dir, &args)
}

fn val_records(run: &Path) -> Vec<Value> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|r| r["split"] == "val")
        .collect()
}

#[test]
fn lenet_trains_in_epochs_and_evaluates_each_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    write_dataset(&tmp.path().join("data"));

    let output = train(tmp.path(), "lenet", "run", "2", &[]);

    assert!(output.status.success(), "{}", stderr(&output));
    let run = tmp.path().join("run");
    let config: Value =
        serde_json::from_str(&fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["steps"], 12, "2 epochs of 96 / 16 steps");
    assert_eq!(config["train"]["eval_interval"], 6);
    let labels: Value =
        serde_json::from_str(&fs::read_to_string(run.join("labels.json")).unwrap()).unwrap();
    assert_eq!(labels["classes"].as_array().unwrap().len(), 4);
    let evals = val_records(&run);
    assert_eq!(evals.len(), 2);
    assert!(evals
        .iter()
        .all(|r| (0.0..=1.0).contains(&r["accuracy"].as_f64().unwrap())));
    assert!(stderr(&output).contains("epoch 2"), "{}", stderr(&output));
}

#[test]
fn mlp_learns_the_synthetic_classes_and_eval_prints_a_confusion_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    write_dataset(&tmp.path().join("data"));
    let trained = train(tmp.path(), "mlp", "run", "4", &["--lr", "0.01"]);
    assert!(trained.status.success(), "{}", stderr(&trained));

    let output = strata(tmp.path(), &["eval", "run"]);

    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("accuracy:"), "{stdout}");
    assert!(stdout.contains("confusion matrix"), "{stdout}");
    let accuracy = val_records(&tmp.path().join("run")).last().unwrap()["accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy > 0.9, "accuracy {accuracy}");
}

#[test]
fn classifier_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    write_dataset(&tmp.path().join("data"));
    assert!(train(tmp.path(), "lenet", "whole", "2", &[])
        .status
        .success());
    assert!(
        train(tmp.path(), "lenet", "killed", "2", &["--stop-at", "6"])
            .status
            .success()
    );

    let resumed = strata(tmp.path(), &["resume", "killed"]);

    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let losses = |run: &str| -> Vec<(u64, u64)> {
        fs::read_to_string(tmp.path().join(run).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .map(|r| {
                (
                    r["step"].as_u64().unwrap(),
                    r["loss"].as_f64().unwrap().to_bits(),
                )
            })
            .collect()
    };
    assert_eq!(losses("whole"), losses("killed"));
}

#[test]
fn missing_image_data_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();

    let output = strata(tmp.path(), &["train", "lenet", "--data", "nowhere"]);

    assert!(!output.status.success());
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("error: "), "{text}");
    assert!(
        text.contains("apt-get install dataset-fashion-mnist"),
        "{text}"
    );
    assert!(text.contains("--data DIR"), "{text}");
}

/// Regression: a label byte of 200 silently made 201 classes (and lost Fashion-MNIST's
/// class names) instead of being reported.
#[test]
fn an_out_of_range_label_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data);
    let (_, mut labels) = images(96, 0);
    labels[5] = 200;
    write_idx(&data.join("train-labels-idx1-ubyte"), 0x801, &[96], &labels);

    let output = train(tmp.path(), "mlp", "run", "1", &[]);

    assert!(!output.status.success());
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("training label 200 (example 5) is out of range"),
        "{text}"
    );
    assert!(!tmp.path().join("run").exists());
}

/// Regression: `strata train lenet --eval-iters N` was accepted and ignored (a classifier
/// evaluates on the whole test set), and the summary said "data: built-in" for the default
/// Fashion-MNIST folder; with --data it names the folder.
#[test]
fn lenet_rejects_eval_iters_and_names_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    write_dataset(&tmp.path().join("data"));

    let rejected = train(tmp.path(), "lenet", "a", "1", &["--eval-iters", "3"]);
    let trained = train(tmp.path(), "lenet", "b", "1", &[]);

    assert!(!rejected.status.success());
    assert!(
        stderr(&rejected).contains("--eval-iters (train.eval_iters) applies to gpt"),
        "{}",
        stderr(&rejected)
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
    let data = tmp.path().join("data").canonicalize().unwrap();
    assert!(
        stderr(&trained).contains(&format!("data: {} |", data.display())),
        "{}",
        stderr(&trained)
    );
}
