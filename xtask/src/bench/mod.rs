//! `cargo xtask bench`: Strata's criterion benchmarks side by side with a PyTorch reference.
//!
//! For every workload in [`workloads`] and each thread count in [`THREADS`], the runner runs
//! the Strata benchmark executable (built once with `cargo bench --no-run`, then run directly
//! so its peak memory is its own, not cargo's), then the reference script, alternating so that
//! both see the machine in the same state. It prints a table and writes `docs/benchmarks.md`.
//! A workload whose bench target does not exist yet is reported as "not built"; if the Python
//! interpreter lacks torch or numpy, Strata runs alone.

mod parse;
mod report;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cmd::Cmd;

use report::SystemInfo;

/// Thread counts every workload runs at, through `RAYON_NUM_THREADS` for Strata and
/// `torch.set_num_threads` for the reference.
pub const THREADS: [usize; 2] = [1, 2];

/// The reference script for tensor operations.
const TENSOR_OPS: &str = "bench/reference/tensor_ops.py";

/// The reference script for autograd.
const AUTOGRAD: &str = "bench/reference/autograd.py";

/// The reference script for the model workloads (training steps, generation, attention).
const MODELS: &str = "bench/reference/models.py";

/// Environment variables that pin OpenBLAS to an older kernel and cache size on some machines
/// (they slow numpy down); removed for the reference processes only, so that the reference
/// runs as it would on a default install.
const REFERENCE_UNSET: [&str; 2] = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];

/// Where the report is written, relative to the workspace root.
const REPORT: &str = "docs/benchmarks.md";

/// One benchmarked operation: how to run it on each side and how much work one iteration does.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Criterion benchmark ID (`group/function`), also the row label.
    pub id: &'static str,
    /// Cargo package holding the bench target.
    pub package: &'static str,
    /// Bench target name (`benches/<bench>.rs`).
    pub bench: &'static str,
    /// Reference script (relative to the workspace root) and the workload name it knows.
    pub reference: Option<(&'static str, &'static str)>,
    /// Work per iteration, for the throughput column.
    pub work: Option<Work>,
}

/// An amount of work per iteration in some unit (floating-point operations, elements).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// How many units one iteration performs.
    pub amount: f64,
    /// The unit, e.g. `FLOP` or `elem`.
    pub unit: &'static str,
}

/// The outcome of one side of one measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It ran: median seconds per iteration and peak resident memory in KiB.
    Measured {
        /// Median time per iteration, in seconds.
        median_s: f64,
        /// Peak resident set size of the process, in KiB.
        max_rss_kib: u64,
    },
    /// The bench target does not exist (yet).
    NotBuilt,
    /// Not run, for the reason given (shown in the table).
    Skipped(String),
    /// It ran and failed; the error.
    Failed(String),
}

/// One row of results: one workload at one thread count.
#[derive(Debug, Clone)]
pub struct Row {
    /// Workload label.
    pub workload: String,
    /// Thread count.
    pub threads: usize,
    /// Work per iteration, if known.
    pub work: Option<Work>,
    /// Strata's result.
    pub strata: Outcome,
    /// The reference's result.
    pub reference: Outcome,
}

/// The benchmark suite. Add a row to extend it; the bench target and the reference script
/// must agree with it on sizes (`add/16M` and `sum/16M` mean 2^24 elements).
pub fn workloads() -> Vec<Workload> {
    let gemm = |id, m: f64, k: f64, n: f64| Workload {
        id,
        package: "strata-tensor",
        bench: "gemm",
        reference: Some((TENSOR_OPS, id)),
        work: Some(Work {
            amount: 2.0 * m * k * n,
            unit: "FLOP",
        }),
    };
    let elementwise = |id, elements: f64| Workload {
        id,
        package: "strata-tensor",
        bench: "elementwise",
        reference: Some((TENSOR_OPS, id)),
        work: Some(Work {
            amount: elements,
            unit: "elem",
        }),
    };
    let model = |id, bench, amount, unit| Workload {
        id,
        package: "strata-models",
        bench,
        reference: Some((MODELS, id)),
        work: Some(Work { amount, unit }),
    };
    // FlashAttention's count for causal attention, forward and backward: the forward does
    // 4 S^2 D per head (two products), the backward 2.5 times that, causality halves both.
    // Batch 1, 8 heads of dimension 64.
    let attention = |id, seq: f64| model(id, "attention", 7.0 * seq * seq * 64.0 * 8.0, "FLOP");
    // Forward, input and weight gradients: three products of 2 * N * OH * OW * O * C * KH * KW.
    let conv = |id, flop: f64| Workload {
        id,
        package: "strata-tensor",
        bench: "conv",
        reference: Some((MODELS, id)),
        work: Some(Work {
            amount: flop,
            unit: "FLOP",
        }),
    };
    let conv_flop =
        |n: f64, c: f64, o: f64, out: f64, k: f64| 3.0 * 2.0 * n * out * out * o * c * k * k;
    let sixteen_mi = f64::from(1u32 << 24);
    vec![
        gemm("gemm/256", 256.0, 256.0, 256.0),
        gemm("gemm/512", 512.0, 512.0, 512.0),
        gemm("gemm/1024", 1024.0, 1024.0, 1024.0),
        gemm("gemm/2048", 2048.0, 2048.0, 2048.0),
        gemm("gemm/768x128x384", 768.0, 128.0, 384.0),
        gemm("gemm/768x512x128", 768.0, 512.0, 128.0),
        elementwise("add/16M", sixteen_mi),
        elementwise("sum/16M", sixteen_mi),
        Workload {
            id: "autograd/add_2x2",
            package: "strata-autograd",
            bench: "autograd",
            reference: Some((AUTOGRAD, "autograd/add_2x2")),
            work: None,
        },
        Workload {
            id: "autograd/mlp_784_256_256_10_b64",
            package: "strata-autograd",
            bench: "autograd",
            reference: Some((AUTOGRAD, "autograd/mlp_784_256_256_10_b64")),
            work: Some(Work {
                // Forward and backward: three GEMMs per layer of 2 * 64 * in * out each.
                amount: 3.0 * 2.0 * 64.0 * (784.0 * 256.0 + 256.0 * 256.0 + 256.0 * 10.0),
                unit: "FLOP",
            }),
        },
        conv(
            "conv2d/lenet1_fwd_bwd",
            conv_flop(64.0, 1.0, 6.0, 28.0, 5.0),
        ),
        conv(
            "conv2d/lenet2_fwd_bwd",
            conv_flop(64.0, 6.0, 16.0, 10.0, 5.0),
        ),
        conv(
            "conv2d/c64_3x3_fwd_bwd",
            conv_flop(64.0, 64.0, 64.0, 32.0, 3.0),
        ),
        // Language-model steps count batch * context tokens per step.
        model("train/gpt_char_b12", "train", 12.0 * 64.0, "tokens"),
        model("train/lenet_b64", "train", 64.0, "images"),
        model("train/lstm_char_b32", "train", 32.0 * 64.0, "tokens"),
        model("generate/gpt_char_500", "generate", 500.0, "tokens"),
        attention("attention/sdpa_causal_256", 256.0),
        attention("attention/sdpa_causal_1024", 1024.0),
        attention("attention/sdpa_causal_4096", 4096.0),
    ]
}

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fewer samples and shorter warm-up, for a rough picture in a few minutes.
    pub quick: bool,
    /// Run only workloads whose ID contains this text.
    pub filter: Option<String>,
}

/// Runs the suite, prints the table and writes `docs/benchmarks.md`.
///
/// # Errors
/// If cargo cannot build the existing bench targets, the report cannot be written, or any
/// measurement failed (after the table is printed and written).
pub fn run(root: &Path, options: &Options) -> Result<()> {
    let selected: Vec<Workload> = workloads()
        .into_iter()
        .filter(|w| options.filter.as_deref().is_none_or(|f| w.id.contains(f)))
        .collect();
    if selected.is_empty() {
        bail!("no workload matches the filter; see the table in xtask/src/bench/mod.rs");
    }
    let metadata = crate::cargo_metadata(root)?;
    let layout = Layout::from_metadata(&metadata)?;
    let executables = build(&layout, &selected)?;
    let python = std::env::var("STRATA_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let reference_versions = reference_versions(&python);
    if let Err(why) = &reference_versions {
        eprintln!("bench: {why}; running Strata alone");
    }

    let mut rows = Vec::new();
    for workload in &selected {
        for threads in THREADS {
            let exe = executables.get(&(workload.package, workload.bench));
            let strata = match exe {
                Some(exe) => run_strata(&layout, workload, exe, threads, options.quick),
                None => Outcome::NotBuilt,
            };
            let reference = match (&reference_versions, workload.reference) {
                (Err(_), _) => Outcome::Skipped("no torch".to_string()),
                (Ok(_), None) => Outcome::Skipped("no reference".to_string()),
                (Ok(_), Some((script, name))) => {
                    run_reference(root, &python, script, name, threads, options.quick)
                }
            };
            rows.push(Row {
                workload: workload.id.to_string(),
                threads,
                work: workload.work,
                strata,
                reference,
            });
        }
    }

    print!("\n{}", report::text_table(&rows));
    let info = SystemInfo {
        reference: match reference_versions {
            Ok(versions) => versions,
            Err(why) => format!("not run ({why})"),
        },
        quick: options.quick,
        ..system_info()
    };
    let report_path = root.join(REPORT);
    // The hand-written reading of the figures is kept across runs.
    let previous = fs::read_to_string(&report_path).unwrap_or_default();
    let mut text = report::markdown(&rows, &info);
    text.push_str(report::kept_notes(&previous));
    fs::write(&report_path, text)
        .with_context(|| format!("cannot write {}", report_path.display()))?;
    eprintln!("bench: wrote {REPORT}");
    fail_on_errors(&rows)
}

/// Where things are in the workspace, from `cargo metadata`.
struct Layout {
    target_dir: PathBuf,
    /// Package name to its directory and its bench target names.
    packages: HashMap<String, (PathBuf, Vec<String>)>,
}

impl Layout {
    fn from_metadata(metadata: &Value) -> Result<Layout> {
        let target_dir = metadata["target_directory"]
            .as_str()
            .context("cargo metadata lacks target_directory")?
            .into();
        let mut packages = HashMap::new();
        for package in metadata["packages"].as_array().into_iter().flatten() {
            let (Some(name), Some(manifest)) =
                (package["name"].as_str(), package["manifest_path"].as_str())
            else {
                continue;
            };
            let dir = Path::new(manifest)
                .parent()
                .unwrap_or(Path::new("."))
                .into();
            let benches = package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bench"))
                })
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect();
            packages.insert(name.to_string(), (dir, benches));
        }
        Ok(Layout {
            target_dir,
            packages,
        })
    }

    fn has_bench(&self, package: &str, bench: &str) -> bool {
        self.packages
            .get(package)
            .is_some_and(|(_, benches)| benches.iter().any(|b| b == bench))
    }
}

/// Builds the bench targets that exist, one cargo call per package, and returns their
/// executables keyed by (package, bench).
fn build(
    layout: &Layout,
    selected: &[Workload],
) -> Result<HashMap<(&'static str, &'static str), PathBuf>> {
    let mut wanted: Vec<(&'static str, &'static str)> = Vec::new();
    for w in selected {
        if !layout.has_bench(w.package, w.bench) {
            eprintln!(
                "bench: {} has no bench target `{}`: not built",
                w.package, w.bench
            );
        } else if !wanted.contains(&(w.package, w.bench)) {
            wanted.push((w.package, w.bench));
        }
    }
    let mut executables = HashMap::new();
    let mut packages: Vec<&str> = wanted.iter().map(|&(p, _)| p).collect();
    packages.sort_unstable();
    packages.dedup();
    for package in packages {
        let mut cmd = Cmd::cargo().args([
            "bench",
            "--no-run",
            "--message-format=json-render-diagnostics",
            "--package",
            package,
        ]);
        for &(_, bench) in wanted.iter().filter(|(p, _)| *p == package) {
            cmd = cmd.args(["--bench", bench]);
        }
        for (bench, exe) in parse::bench_executables(&cmd.read()?)? {
            if let Some(&key) = wanted.iter().find(|(p, b)| *p == package && *b == bench) {
                executables.insert(key, exe);
            }
        }
    }
    Ok(executables)
}

/// Runs one criterion benchmark by exact ID and reads its median.
fn run_strata(layout: &Layout, w: &Workload, exe: &Path, threads: usize, quick: bool) -> Outcome {
    let criterion_home = layout.target_dir.join("criterion");
    let package_dir = layout.packages.get(w.package).map(|(dir, _)| dir.clone());
    let mut cmd = Cmd::new(exe)
        .args(["--bench", "--exact", w.id])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("CRITERION_HOME", &criterion_home);
    if quick {
        cmd = cmd.args([
            "--warm-up-time",
            "1",
            "--measurement-time",
            "3",
            "--sample-size",
            "10",
        ]);
    }
    if let Some(dir) = package_dir {
        cmd = cmd.dir(dir);
    }
    let started = SystemTime::now();
    let measured = match cmd.read_measured() {
        Ok(measured) => measured,
        Err(e) => return failed("strata", w.id, threads, e),
    };
    let estimates =
        w.id.split('/')
            .fold(criterion_home, |path, part| path.join(part))
            .join("new")
            .join("estimates.json");
    let fresh = fs::metadata(&estimates)
        .and_then(|m| m.modified())
        .is_ok_and(|modified| modified >= started);
    if !fresh {
        eprintln!(
            "bench: {} did not measure `{}` (no new {}): is the ID in the bench target?",
            w.bench,
            w.id,
            estimates.display()
        );
        return Outcome::Skipped("not in bench".to_string());
    }
    let median = fs::read_to_string(&estimates)
        .map_err(anyhow::Error::from)
        .and_then(|text| parse::criterion_median_s(&text));
    match median {
        Ok(median_s) => measured_outcome("strata", w.id, threads, median_s, measured.max_rss_kib),
        Err(e) => failed("strata", w.id, threads, e),
    }
}

/// Runs the reference script for one workload and thread count.
fn run_reference(
    root: &Path,
    python: &str,
    script: &str,
    name: &str,
    threads: usize,
    quick: bool,
) -> Outcome {
    let threads_text = threads.to_string();
    // `env -u VAR python3 ...` execs the interpreter, so the peak RSS is still Python's.
    let unset = REFERENCE_UNSET.iter().flat_map(|var| ["-u", var]);
    let mut cmd = Cmd::new("env")
        .args(unset)
        .arg(python)
        .args([script, "--workload", name, "--threads", &threads_text])
        .env("OMP_NUM_THREADS", &threads_text)
        .env("MKL_NUM_THREADS", &threads_text)
        .dir(root);
    if quick {
        cmd = cmd.arg("--quick");
    }
    let result = cmd.read_measured().and_then(|measured| {
        let results = parse::reference_results(&measured.stdout)?;
        let found = results
            .iter()
            .filter(|r| r.workload == name && r.threads == threads)
            .min_by_key(|r| r.implementation != "torch")
            .with_context(|| format!("{script} printed no result for {name} at {threads}"))?;
        Ok((found.median_s, measured.max_rss_kib))
    });
    match result {
        Ok((median_s, rss)) => measured_outcome("reference", name, threads, median_s, rss),
        Err(e) => failed("reference", name, threads, e),
    }
}

fn measured_outcome(side: &str, id: &str, threads: usize, median_s: f64, rss: u64) -> Outcome {
    eprintln!(
        "bench: {side} {id} threads={threads}: median {}, peak RSS {:.1} MiB",
        report::format_duration(median_s),
        rss as f64 / 1024.0
    );
    Outcome::Measured {
        median_s,
        max_rss_kib: rss,
    }
}

fn failed(side: &str, id: &str, threads: usize, error: anyhow::Error) -> Outcome {
    eprintln!("bench: {side} {id} threads={threads} failed: {error:#}");
    Outcome::Failed(format!("{error:#}"))
}

/// Versions of torch and numpy in `python`, or why they cannot be imported.
fn reference_versions(python: &str) -> Result<String, String> {
    let probe =
        "import numpy, torch; print(f'torch {torch.__version__}, numpy {numpy.__version__}')";
    match Cmd::new(python).args(["-c", probe]).read() {
        Ok(out) => Ok(out.trim().to_string()),
        Err(e) => Err(format!("`{python}` cannot import torch and numpy ({e})")),
    }
}

/// CPU, core count, compiler and date; the reference field is filled in by the caller.
fn system_info() -> SystemInfo {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown".to_string(), |(_, model)| model.trim().to_string());
    let logical_cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    SystemInfo {
        cpu,
        logical_cpus,
        usable_cpus: std::thread::available_parallelism().map_or(1, usize::from),
        rustc: Cmd::new(rustc)
            .arg("-V")
            .read()
            .map_or("unknown".to_string(), |v| v.trim().to_string()),
        reference: String::new(),
        date: report::today_utc(),
        quick: false,
    }
}

fn fail_on_errors(rows: &[Row]) -> Result<()> {
    let failures = rows
        .iter()
        .flat_map(|r| [&r.strata, &r.reference])
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();
    match failures {
        0 => Ok(()),
        n => bail!("bench: {n} measurement(s) failed; see the messages above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_are_unique_and_have_a_group_and_a_name() {
        let all = workloads();

        let mut ids: Vec<&str> = all.iter().map(|w| w.id).collect();
        ids.sort_unstable();
        ids.dedup();

        assert_eq!(ids.len(), all.len());
        assert!(all.iter().all(|w| w.id.split('/').count() == 2), "{ids:?}");
    }

    #[test]
    fn gemm_work_counts_two_flops_per_multiply_add() {
        let all = workloads();

        let gemm = all.iter().find(|w| w.id == "gemm/768x128x384").unwrap();

        assert_eq!(gemm.work.unwrap().amount, 2.0 * 768.0 * 128.0 * 384.0);
    }

    #[test]
    fn missing_bench_targets_are_detected_from_metadata() {
        let metadata = serde_json::json!({
            "target_directory": "/ws/target",
            "packages": [{
                "name": "strata-tensor",
                "manifest_path": "/ws/crates/tensor/Cargo.toml",
                "targets": [
                    {"name": "strata_tensor", "kind": ["lib"]},
                    {"name": "gemm", "kind": ["bench"]}
                ]
            }]
        });

        let layout = Layout::from_metadata(&metadata).unwrap();

        assert!(layout.has_bench("strata-tensor", "gemm"));
        assert!(!layout.has_bench("strata-tensor", "conv"));
        assert!(!layout.has_bench("strata-models", "gemm"));
        assert_eq!(layout.target_dir, PathBuf::from("/ws/target"));
    }

    #[test]
    fn only_failed_measurements_fail_the_run() {
        let row = |strata| Row {
            workload: "w/1".to_string(),
            threads: 1,
            work: None,
            strata,
            reference: Outcome::Skipped("no reference".to_string()),
        };

        assert!(fail_on_errors(&[row(Outcome::NotBuilt)]).is_ok());
        assert!(fail_on_errors(&[row(Outcome::Failed("boom".to_string()))]).is_err());
    }

    #[test]
    fn reference_script_exists_for_workloads_that_name_it() {
        let root = crate::workspace_root();

        for w in workloads() {
            if let Some((script, _)) = w.reference {
                assert!(
                    root.join(script).is_file(),
                    "{} names missing {script}",
                    w.id
                );
            }
        }
    }
}
