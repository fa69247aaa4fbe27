//! Reading what the benchmark programs print: cargo's build messages, criterion's estimates
//! and the reference script's JSON lines.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// One line of the reference script's output.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceResult {
    /// Workload name, as passed to `--workload`.
    pub workload: String,
    /// Which implementation ran (`torch`, `numpy`).
    pub implementation: String,
    /// Thread count the reference was limited to.
    pub threads: usize,
    /// Median time of one iteration, in seconds.
    pub median_s: f64,
    /// Number of timed iterations behind the median.
    pub runs: u64,
}

/// The median time per iteration, in seconds, from criterion's `estimates.json`
/// (`"median"."point_estimate"`, in nanoseconds).
///
/// # Errors
/// If the text is not JSON or lacks a numeric median.
pub fn criterion_median_s(estimates_json: &str) -> Result<f64> {
    let value: Value =
        serde_json::from_str(estimates_json).context("estimates.json is not valid JSON")?;
    let Some(ns) = value["median"]["point_estimate"].as_f64() else {
        bail!("estimates.json has no numeric median.point_estimate");
    };
    Ok(ns * 1e-9)
}

/// Parses the reference script's output: one JSON object per line; other lines (which do not
/// start with `{`) are ignored.
///
/// # Errors
/// If a line starting with `{` is not JSON or lacks a field.
pub fn reference_results(text: &str) -> Result<Vec<ReferenceResult>> {
    let mut results = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("reference output line {} is not JSON", index + 1))?;
        let field = |name: &str| {
            value
                .get(name)
                .with_context(|| format!("reference output line {} lacks `{name}`", index + 1))
        };
        let text_field = |name: &str| -> Result<String> {
            field(name)?
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("reference output `{name}` is not a string"))
        };
        let number = |name: &str| -> Result<f64> {
            field(name)?
                .as_f64()
                .with_context(|| format!("reference output `{name}` is not a number"))
        };
        results.push(ReferenceResult {
            workload: text_field("workload")?,
            implementation: text_field("impl")?,
            threads: number("threads")? as usize,
            median_s: number("median_s")?,
            runs: number("runs")? as u64,
        });
    }
    Ok(results)
}

/// The bench executables in `cargo bench --no-run --message-format=json` output, as
/// (bench target name, executable path).
///
/// # Errors
/// If a line is not JSON.
pub fn bench_executables(cargo_json: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for line in cargo_json.lines().filter(|l| l.starts_with('{')) {
        let message: Value = serde_json::from_str(line).context("cargo printed invalid JSON")?;
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let target = &message["target"];
        let is_bench = target["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "bench"));
        if let (true, Some(name), Some(exe)) = (
            is_bench,
            target["name"].as_str(),
            message["executable"].as_str(),
        ) {
            found.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criterion_median_is_read_in_seconds() {
        let text = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,
            "lower_bound":1480000.0,"upper_bound":1520000.0},"point_estimate":1500000.0,
            "standard_error":10000.0},"median":{"confidence_interval":{"confidence_level":0.95,
            "lower_bound":1390000.0,"upper_bound":1410000.0},"point_estimate":1400000.0,
            "standard_error":5000.0},"median_abs_dev":null,"slope":null,"std_dev":null}"#;

        let median = criterion_median_s(text).unwrap();

        assert!((median - 1.4e-3).abs() < 1e-12, "{median}");
    }

    #[test]
    fn criterion_file_without_median_is_an_error() {
        let err = criterion_median_s(r#"{"mean":{"point_estimate":1.0}}"#).unwrap_err();

        assert!(err.to_string().contains("median.point_estimate"));
    }

    #[test]
    fn reference_lines_are_parsed_and_chatter_is_skipped() {
        let text = "loading torch\n\
            {\"workload\": \"gemm/512\", \"impl\": \"torch\", \"threads\": 2, \
            \"median_s\": 0.00125, \"runs\": 40}\n\n";

        let results = reference_results(text).unwrap();

        assert_eq!(
            results,
            vec![ReferenceResult {
                workload: "gemm/512".to_string(),
                implementation: "torch".to_string(),
                threads: 2,
                median_s: 0.00125,
                runs: 40,
            }]
        );
    }

    #[test]
    fn reference_line_missing_a_field_names_it() {
        let text = r#"{"workload": "add/16M", "impl": "torch", "threads": 1, "runs": 3}"#;

        let err = reference_results(text).unwrap_err();

        assert_eq!(err.to_string(), "reference output line 1 lacks `median_s`");
    }

    #[test]
    fn bench_executables_are_taken_from_bench_artifacts_only() {
        let text = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"strata_tensor","#,
            r#""kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"gemm","kind":["bench"]},"#,
            r#""executable":"/t/release/deps/gemm-1a2b"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n"
        );

        let found = bench_executables(text).unwrap();

        assert_eq!(
            found,
            vec![(
                "gemm".to_string(),
                PathBuf::from("/t/release/deps/gemm-1a2b")
            )]
        );
    }
}
