//! The cargo-driven subcommands (`fmt`, `lint`, `test`, `doc`, `fixtures`) and `ci`, which
//! chains them in the order CI needs.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cmd::Cmd;
use crate::{generated, tidy};

/// Formats the workspace, or with `check` only reports unformatted files.
///
/// # Errors
/// If rustfmt fails, or (with `check`) a file is not formatted.
pub fn fmt(root: &Path, check: bool) -> Result<()> {
    let mut cmd = Cmd::cargo().args(["fmt", "--all"]).dir(root);
    if check {
        cmd = cmd.args(["--", "--check"]);
    }
    cmd.run()
}

/// Runs clippy on every target and feature with warnings denied.
///
/// # Errors
/// If clippy reports anything.
pub fn clippy(root: &Path) -> Result<()> {
    Cmd::cargo()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
        .dir(root)
        .run()
}

/// Runs the tidy checks and prints every problem.
///
/// # Errors
/// If any check finds a problem.
pub fn tidy(root: &Path) -> Result<()> {
    tidy::report(&tidy::check_all(root)?)?;
    eprintln!("tidy: layering, module docs, marks and whitespace are clean");
    Ok(())
}

/// rustfmt check, clippy and the tidy checks.
///
/// # Errors
/// At the first of them that fails.
pub fn lint(root: &Path) -> Result<()> {
    fmt(root, true)?;
    clippy(root)?;
    tidy(root)
}

/// Runs every test of the workspace: unit, integration and doc tests.
///
/// # Errors
/// If a test fails.
pub fn test(root: &Path) -> Result<()> {
    Cmd::cargo().args(["test", "--workspace"]).dir(root).run()
}

/// Builds the API docs of the workspace crates with rustdoc warnings denied.
///
/// # Errors
/// If rustdoc warns or fails.
pub fn doc(root: &Path) -> Result<()> {
    Cmd::cargo()
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .dir(root)
        .run()
}

/// Builds every bench and example so they cannot rot unseen (with the dev profile, reusing
/// the test build).
///
/// # Errors
/// If any fails to compile.
pub fn build_benches_and_examples(root: &Path) -> Result<()> {
    Cmd::cargo()
        .args(["build", "--workspace", "--benches", "--examples"])
        .dir(root)
        .run()
}

/// Regenerates golden fixtures: runs each `crates/*/tests/fixtures/*.py` with `python3` in
/// its own directory.
///
/// # Errors
/// If a directory cannot be read or a script fails.
pub fn fixtures(root: &Path) -> Result<()> {
    let scripts = fixture_scripts(root)?;
    if scripts.is_empty() {
        eprintln!("fixtures: no crates/*/tests/fixtures/*.py script found");
    }
    for script in &scripts {
        let dir = script.parent().expect("bug: a script path has a parent");
        let name = script.file_name().expect("bug: a script path has a name");
        Cmd::new("python3").arg(name).dir(dir).run()?;
    }
    Ok(())
}

fn fixture_scripts(root: &Path) -> Result<Vec<PathBuf>> {
    let crates = root.join("crates");
    let mut scripts = Vec::new();
    for entry in
        fs::read_dir(&crates).with_context(|| format!("cannot list {}", crates.display()))?
    {
        let fixtures = entry?.path().join("tests").join("fixtures");
        let Ok(files) = fs::read_dir(&fixtures) else {
            continue;
        };
        for file in files {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "py") {
                scripts.push(path);
            }
        }
    }
    scripts.sort();
    Ok(scripts)
}

/// A named CI step.
type Step = (&'static str, fn(&Path) -> Result<()>);

/// Everything CI checks, in order, stopping at the first failure.
///
/// # Errors
/// Naming the step that failed.
pub fn ci(root: &Path) -> Result<()> {
    let steps: [Step; 7] = [
        ("fmt --check", |root| fmt(root, true)),
        ("clippy", clippy),
        ("codegen --check", |root| generated::run(root, true)),
        ("tidy", tidy),
        ("test", test),
        ("doc", doc),
        ("build benches and examples", build_benches_and_examples),
    ];
    let total = Instant::now();
    let mut timings = Vec::new();
    for (index, (name, step)) in steps.iter().enumerate() {
        eprintln!("\n==> ci step {}/{}: {name}", index + 1, steps.len());
        let start = Instant::now();
        let result = step(root);
        let elapsed = start.elapsed().as_secs_f64();
        eprintln!(
            "==> {name}: {} in {elapsed:.1} s",
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        result.with_context(|| format!("ci step `{name}` failed after {elapsed:.1} s"))?;
        timings.push((name, elapsed));
    }
    eprintln!("\nci passed in {:.1} s:", total.elapsed().as_secs_f64());
    for (name, elapsed) in timings {
        eprintln!("  {name:<28} {elapsed:>7.1} s");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_scripts_are_the_python_files_in_tests_fixtures() {
        let root = std::env::temp_dir().join(format!("xtask-fixtures-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let fixtures = root.join("crates/a/tests/fixtures");
        fs::create_dir_all(&fixtures).unwrap();
        fs::create_dir_all(root.join("crates/b/src")).unwrap();
        for file in ["make_golden.py", "golden.json"] {
            fs::write(fixtures.join(file), "").unwrap();
        }
        fs::write(root.join("crates/b/src/helper.py"), "").unwrap();

        let scripts = fixture_scripts(&root).unwrap();

        assert_eq!(scripts, vec![fixtures.join("make_golden.py")]);
        fs::remove_dir_all(root).unwrap();
    }
}
