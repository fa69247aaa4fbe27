//! `cargo xtask`: the one entry point for maintenance tasks (CI, lint, codegen, benchmarks).
//!
//! Run `cargo xtask` alone for the list of subcommands. Every external command is printed
//! before it runs (see [`cmd::Cmd`]); `cargo xtask ci` is exactly what CI runs.

mod bench;
mod cmd;
mod codegen;
mod generated;
mod tasks;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cmd::Cmd;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci                  everything CI runs, in order: fmt --check, clippy, codegen --check,
                      tidy checks, tests, docs, a build of benches and examples
  fmt [--check]       format the workspace with rustfmt (--check: only report differences)
  lint                rustfmt --check, clippy with warnings denied, tidy checks
  codegen [--check]   write generated files (--check: fail if a committed one is stale)
  test                run every test of the workspace, doc tests included
  doc                 build the API docs with warnings denied
  bench [--quick] [FILTER]
                      run the benchmarks beside the PyTorch reference and write
                      docs/benchmarks.md (FILTER: only workloads whose ID contains it;
                      reference Python from STRATA_BENCH_PYTHON, default python3)
  fixtures            regenerate golden test fixtures with python3 and PyTorch
                      (crates/*/tests/fixtures/*.py; not part of CI)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (command.as_str(), rest.as_slice()) {
        ("ci", []) => tasks::ci(&root),
        ("fmt", []) => tasks::fmt(&root, false),
        ("fmt", ["--check"]) => tasks::fmt(&root, true),
        ("lint", []) => tasks::lint(&root),
        ("codegen", []) => generated::run(&root, false),
        ("codegen", ["--check"]) => generated::run(&root, true),
        ("test", []) => tasks::test(&root),
        ("doc", []) => tasks::doc(&root),
        ("bench", options) => bench::run(&root, &bench_options(options)?),
        ("fixtures", []) => tasks::fixtures(&root),
        ("help" | "-h" | "--help", []) => {
            print!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown command or options `{}`\n\n{USAGE}", args.join(" ")),
    }
}

fn bench_options(args: &[&str]) -> Result<bench::Options> {
    let mut options = bench::Options::default();
    for &arg in args {
        match arg {
            "--quick" => options.quick = true,
            flag if flag.starts_with('-') => bail!("bench: unknown option `{flag}`\n\n{USAGE}"),
            filter if options.filter.is_none() => options.filter = Some(filter.to_string()),
            extra => bail!("bench: more than one filter (`{extra}`)\n\n{USAGE}"),
        }
    }
    Ok(options)
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bug: xtask lives inside the workspace")
        .to_path_buf()
}

/// Reads `cargo metadata --format-version 1 --no-deps` for the workspace at `root`.
///
/// # Errors
/// If cargo fails or prints something that is not JSON.
pub fn cargo_metadata(root: &Path) -> Result<Value> {
    let text = Cmd::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .dir(root)
        .read()?;
    serde_json::from_str(&text).context("cargo metadata printed invalid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_options_take_quick_and_one_filter() {
        let options = bench_options(&["--quick", "gemm"]).unwrap();

        assert!(options.quick);
        assert_eq!(options.filter.as_deref(), Some("gemm"));
    }

    #[test]
    fn bench_rejects_unknown_flags_and_two_filters() {
        assert!(bench_options(&["--slow"]).is_err());
        assert!(bench_options(&["gemm", "add"]).is_err());
    }

    #[test]
    fn unknown_command_is_an_error_that_shows_usage() {
        let err = run(&["frobnicate".to_string()]).unwrap_err().to_string();

        assert!(err.starts_with("unknown command or options `frobnicate`"));
        assert!(err.contains("usage: cargo xtask"));
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("xtask").is_dir());
    }
}
