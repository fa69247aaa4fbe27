//! Tidy checks: crate layering, module docs, placeholder marks and whitespace.
//!
//! Each check is a plain function returning the problems it found, each problem naming the
//! place (`file:line`) and how to fix it. `cargo xtask lint` and `cargo xtask ci` run them all,
//! and the tests at the bottom run each one over the real workspace, so a plain `cargo test`
//! catches a violation too.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::generated;

/// Layer of each workspace crate, by package name: a crate may depend only on crates at a
/// strictly lower level. A new crate must be added here (see STYLE.md, "Crate layering").
pub const LEVELS: &[(&str, u8)] = &[
    ("strata-tensor", 1),
    ("strata-autograd", 2),
    ("strata-data", 2),
    ("strata-nn-layers", 3),
    ("strata-optim", 3),
    ("strata-attention", 4),
    ("strata-models", 5),
    ("strata", 6),
];

/// Tooling crates: part of the workspace, but allowed no dependency on any workspace crate.
pub const TOOLING: &[&str] = &["xtask"];

/// Placeholder marks that must not be committed. Built by concatenation so that this file
/// does not contain them verbatim and so does not trip its own check.
const MARKS: &[&str] = &[
    concat!("todo", "!("),
    concat!("unimplemented", "!("),
    concat!("TO", "DO"),
    concat!("FIX", "ME"),
    concat!("X", "XX"),
];

/// The prefix of a known-shortcoming note, which must be followed by text on the same line.
const LIMITATION: &str = "Limitation:";

/// Directories (relative to the workspace root) whose files are checked for whitespace.
const SCANNED_DIRS: &[&str] = &["crates", "xtask", "docs", "bench", ".ci", ".cargo"];

/// Files at the workspace root that are checked for whitespace.
const SCANNED_ROOT_FILES: &[&str] = &["README.md", "Cargo.toml", "rustfmt.toml", "clippy.toml"];

/// File extensions treated as text to check.
const TEXT_EXTENSIONS: &[&str] = &["rs", "toml", "md", "py", "yaml", "yml", "sh"];

/// One violation: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `path` or `path:line`, relative to the workspace root.
    pub location: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Runs every tidy check over the workspace at `root`.
///
/// # Errors
/// If `cargo metadata` fails or a file cannot be read; rule violations are returned, not
/// raised.
pub fn check_all(root: &Path) -> Result<Vec<Problem>> {
    let mut problems = check_layering(&crate::cargo_metadata(root)?, root);
    problems.extend(check_files(root)?);
    Ok(problems)
}

/// Prints the problems and turns a non-empty list into an error.
///
/// # Errors
/// If `problems` is not empty; the message counts them.
pub fn report(problems: &[Problem]) -> Result<()> {
    for problem in problems {
        eprintln!("{problem}");
    }
    match problems.len() {
        0 => Ok(()),
        n => anyhow::bail!("tidy: {n} problem(s), listed above"),
    }
}

/// Checks that every workspace crate depends (normal, dev or build) only on workspace crates
/// at a strictly lower level of [`LEVELS`], and tooling crates on none.
pub fn check_layering(metadata: &Value, root: &Path) -> Vec<Problem> {
    let packages = metadata["packages"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut problems = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or("?");
        let manifest = package["manifest_path"].as_str().unwrap_or("?");
        let location = relative(Path::new(manifest), root);
        let level = level_of(name);
        if level.is_none() && !TOOLING.contains(&name) {
            problems.push(Problem {
                location: location.clone(),
                message: format!(
                    "workspace crate `{name}` has no layer; add it to LEVELS in \
                     xtask/src/tidy.rs (and to the layer table in STYLE.md)"
                ),
            });
            continue;
        }
        let deps = package["dependencies"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        for dep in deps {
            let dep_name = dep["name"].as_str().unwrap_or("?");
            if dep_name == name || !members.contains(&dep_name) {
                continue;
            }
            let kind = dep["kind"].as_str().unwrap_or("normal");
            if let Some(message) = edge_problem(name, level, dep_name, kind) {
                problems.push(Problem {
                    location: location.clone(),
                    message,
                });
            }
        }
    }
    problems
}

/// Checks every text file of the workspace for module docs, marks, `Limitation:` notes,
/// trailing whitespace and tabs.
///
/// # Errors
/// If a directory or file cannot be read.
pub fn check_files(root: &Path) -> Result<Vec<Problem>> {
    let mut files = Vec::new();
    for dir in SCANNED_DIRS {
        collect_files(&root.join(dir), &mut files)?;
    }
    files.extend(
        SCANNED_ROOT_FILES
            .iter()
            .map(|f| root.join(f))
            .filter(|p| p.is_file()),
    );
    files.sort();
    let mut problems = Vec::new();
    for path in &files {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let shown = relative(path, root);
        problems.extend(check_text(&shown, &text));
    }
    Ok(problems)
}

/// Checks one file's text; `path` is relative to the workspace root with `/` separators, and
/// decides which rules apply.
pub fn check_text(path: &str, text: &str) -> Vec<Problem> {
    let is_rust = path.ends_with(".rs");
    let is_source = path.starts_with("crates/") || path.starts_with("xtask/");
    let mut problems = Vec::new();
    if is_rust && is_source && !starts_with_module_doc(text) {
        problems.push(Problem {
            location: format!("{path}:1"),
            message: "file does not start with a `//!` module doc; add a `//!` paragraph \
                      saying what the module is for"
                .to_string(),
        });
    }
    for (index, line) in text.lines().enumerate() {
        let at = |message: String| Problem {
            location: format!("{path}:{}", index + 1),
            message,
        };
        if is_source {
            if let Some(mark) = MARKS.iter().find(|m| line.contains(*m)) {
                problems.push(at(format!(
                    "placeholder mark `{mark}`; finish the work, or replace the mark with a \
                     `{LIMITATION}` note saying what fails, why, and what the caller sees"
                )));
            }
        }
        if let Some((_, rest)) = line.split_once(LIMITATION) {
            if rest.trim().is_empty() {
                problems.push(at(format!(
                    "`{LIMITATION}` with nothing after it; say on the same line what fails, \
                     why, and what the caller sees"
                )));
            }
        }
        if line.ends_with([' ', '\t']) {
            problems.push(at("trailing whitespace; delete it".to_string()));
        }
        if is_rust && line.contains('\t') {
            problems.push(at(
                "tab character in a Rust file; indent with spaces, write `\\t` in strings"
                    .to_string(),
            ));
        }
    }
    problems
}

/// Whether the first line (after an optional generated-file header) is a `//!` doc line.
fn starts_with_module_doc(text: &str) -> bool {
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("");
    if generated::is_header(first) {
        first = lines.next().unwrap_or("");
    }
    first.starts_with("//!")
}

fn level_of(name: &str) -> Option<u8> {
    LEVELS.iter().find(|(n, _)| *n == name).map(|&(_, l)| l)
}

/// The problem with `from` (at `level`, or tooling if `None`) depending on workspace crate
/// `to`, if any. An unknown `to` is reported once, for its own manifest.
fn edge_problem(from: &str, level: Option<u8>, to: &str, kind: &str) -> Option<String> {
    let Some(from_level) = level else {
        return Some(format!(
            "tooling crate `{from}` has a {kind} dependency on workspace crate `{to}`; \
             tooling must build without library crates: remove the dependency"
        ));
    };
    let to_level = level_of(to)?;
    (to_level >= from_level).then(|| {
        format!(
            "`{from}` (level {from_level}) has a {kind} dependency on `{to}` (level \
             {to_level}); a crate may depend only on lower levels: move the code that \
             needs `{to}` into a crate above it, or the shared part down a level"
        )
    })
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            let skipped = name == "target" || name == "__pycache__" || name.starts_with('.');
            if !skipped {
                collect_files(&path, out)?;
            }
        } else if file_type.is_file() && is_text_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Files with a known text extension, plus extensionless scripts under `.ci/`.
fn is_text_file(path: &Path) -> bool {
    match path.extension() {
        Some(ext) => TEXT_EXTENSIONS.contains(&ext.to_string_lossy().as_ref()),
        None => path.components().any(|c| c.as_os_str() == ".ci"),
    }
}

/// `path` relative to `root`, with `/` separators, for messages.
fn relative(path: &Path, root: &Path) -> String {
    let shown = path.strip_prefix(root).unwrap_or(path);
    shown.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::workspace_root()
    }

    fn sample_metadata(root: &str) -> Value {
        serde_json::json!({
            "packages": [
                {
                    "name": "strata-tensor",
                    "manifest_path": format!("{root}/crates/tensor/Cargo.toml"),
                    "dependencies": [
                        {"name": "ndarray", "kind": null},
                        {"name": "strata-autograd", "kind": "dev"}
                    ]
                },
                {
                    "name": "strata-autograd",
                    "manifest_path": format!("{root}/crates/autograd/Cargo.toml"),
                    "dependencies": [{"name": "strata-tensor", "kind": null}]
                },
                {
                    "name": "strata-data",
                    "manifest_path": format!("{root}/crates/data/Cargo.toml"),
                    "dependencies": [{"name": "strata-autograd", "kind": "build"}]
                },
                {
                    "name": "strata-vision",
                    "manifest_path": format!("{root}/crates/vision/Cargo.toml"),
                    "dependencies": [{"name": "strata-tensor", "kind": null}]
                },
                {
                    "name": "xtask",
                    "manifest_path": format!("{root}/xtask/Cargo.toml"),
                    "dependencies": [{"name": "strata-tensor", "kind": null}]
                }
            ]
        })
    }

    // Layering

    #[test]
    fn workspace_layering_holds() {
        let metadata = crate::cargo_metadata(&root()).unwrap();

        let problems = check_layering(&metadata, &root());

        assert!(problems.is_empty(), "{}", lines(&problems));
    }

    #[test]
    fn layering_flags_upward_sideways_unknown_and_tooling_edges() {
        let metadata = sample_metadata("/ws");

        let problems = check_layering(&metadata, Path::new("/ws"));

        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(shown[0].starts_with("crates/tensor/Cargo.toml: `strata-tensor` (level 1)"));
        assert!(shown[0].contains("dev dependency on `strata-autograd` (level 2)"));
        assert!(shown[1].starts_with("crates/data/Cargo.toml: `strata-data` (level 2)"));
        assert!(shown[1].contains("build dependency on `strata-autograd` (level 2)"));
        assert!(shown[2].contains("`strata-vision` has no layer; add it to LEVELS"));
        assert!(shown[3].starts_with("xtask/Cargo.toml: tooling crate `xtask`"));
    }

    #[test]
    fn layering_allows_downward_edges_and_external_crates() {
        let metadata = sample_metadata("/ws");

        let problems = check_layering(&metadata, Path::new("/ws"));

        assert!(!problems
            .iter()
            .any(|p| p.location.starts_with("crates/autograd")));
    }

    // File checks

    #[test]
    fn workspace_files_are_tidy() {
        let problems = check_files(&root()).unwrap();

        assert!(problems.is_empty(), "{}", lines(&problems));
    }

    #[test]
    fn clean_rust_file_passes() {
        let text = "//! Does one thing.\n\nfn main() {}\n";

        assert_eq!(check_text("crates/a/src/lib.rs", text), vec![]);
    }

    #[test]
    fn missing_module_doc_is_flagged_at_line_one() {
        let text = "/// Item doc, not a module doc.\nfn f() {}\n";

        let problems = check_text("crates/a/src/lib.rs", text);

        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].location, "crates/a/src/lib.rs:1");
        assert!(problems[0].message.contains("add a `//!` paragraph"));
    }

    #[test]
    fn generated_header_may_precede_the_module_doc() {
        let text = format!(
            "{}\n//! Generated gradients.\n",
            generated::header("derivatives")
        );

        assert_eq!(check_text("crates/a/src/gen.rs", &text), vec![]);
    }

    #[test]
    fn every_mark_is_flagged_with_its_line() {
        for mark in MARKS {
            let text = format!("//! Doc.\nfn f() {{\n    // {mark} here\n}}\n");

            let problems = check_text("xtask/src/x.rs", &text);

            assert_eq!(problems.len(), 1, "{mark}: {problems:?}");
            assert_eq!(problems[0].location, "xtask/src/x.rs:3");
            assert!(problems[0].message.contains(mark));
        }
    }

    #[test]
    fn marks_are_not_flagged_outside_source_directories() {
        let text = format!("The lint rejects {} marks.\n", MARKS[2]);

        assert_eq!(check_text("docs/architecture.md", &text), vec![]);
    }

    #[test]
    fn empty_limitation_note_is_flagged_and_a_full_one_passes() {
        let empty = format!("//! Doc.\n// {LIMITATION}   \n");
        let full = format!("//! Doc.\n// {LIMITATION} strided input returns Unsupported.\n");

        let problems = check_text("crates/a/src/x.rs", &empty);

        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("nothing after it"));
        assert!(problems[1].message.starts_with("trailing whitespace"));
        assert_eq!(check_text("crates/a/src/x.rs", &full), vec![]);
    }

    #[test]
    fn trailing_whitespace_and_tabs_are_flagged_per_line() {
        let text = "//! Doc.\nfn f() {}  \n\tfn g() {}\n";

        let problems = check_text("crates/a/src/x.rs", text);

        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[0].starts_with("crates/a/src/x.rs:2: trailing whitespace"));
        assert!(shown[1].starts_with("crates/a/src/x.rs:3: tab character"));
    }

    #[test]
    fn tabs_are_allowed_outside_rust_files() {
        let text = "all:\n\tcargo build\n";

        assert_eq!(check_text("docs/Makefile.md", text), vec![]);
    }

    fn lines(problems: &[Problem]) -> String {
        problems.iter().map(|p| format!("\n{p}")).collect()
    }
}
