//! The benchmark table, as aligned text for the terminal and as `docs/benchmarks.md`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Outcome, Row};

/// Where and with what the numbers were measured.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs listed in `/proc/cpuinfo`.
    pub logical_cpus: usize,
    /// CPUs this process may run on.
    pub usable_cpus: usize,
    /// `rustc -V`.
    pub rustc: String,
    /// Reference library versions, or why the reference did not run.
    pub reference: String,
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    /// Whether `--quick` shortened the measurements.
    pub quick: bool,
}

const HEADERS: [&str; 8] = [
    "workload",
    "threads",
    "strata median",
    "reference median",
    "strata throughput",
    "strata/reference",
    "strata peak RSS",
    "reference peak RSS",
];

/// The cells of one row, in [`HEADERS`] order.
fn cells(row: &Row) -> [String; 8] {
    let throughput = match (&row.strata, &row.work) {
        (Outcome::Measured { median_s, .. }, Some(work)) => {
            format_rate(work.amount / median_s, work.unit)
        }
        _ => "-".to_string(),
    };
    let ratio = match (&row.strata, &row.reference) {
        (
            Outcome::Measured { median_s: ours, .. },
            Outcome::Measured {
                median_s: theirs, ..
            },
        ) => {
            format!("{:.2}x", theirs / ours)
        }
        _ => "-".to_string(),
    };
    [
        row.workload.clone(),
        row.threads.to_string(),
        median_cell(&row.strata),
        median_cell(&row.reference),
        throughput,
        ratio,
        rss_cell(&row.strata),
        rss_cell(&row.reference),
    ]
}

/// The rows as an aligned text table, text left-aligned and numbers right-aligned.
pub fn text_table(rows: &[Row]) -> String {
    let body: Vec<[String; 8]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &body {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| match i {
                0 => format!("{cell:<w$}"),
                _ => format!("{cell:>w$}"),
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&HEADERS.map(str::to_string));
    for row in &body {
        out.push_str(&line(row));
    }
    out
}

/// The heading from which `docs/benchmarks.md` is written by hand and kept by the runner.
pub const NOTES_HEADING: &str = "## Against the goals";

/// The hand-written part of a previous report: from [`NOTES_HEADING`] to the end, with a
/// blank line before it; empty if there is none.
pub fn kept_notes(previous: &str) -> &str {
    match previous.find(&format!("\n{NOTES_HEADING}")) {
        Some(at) => &previous[at..],
        None => "",
    }
}

/// The full text of `docs/benchmarks.md`, up to the hand-written notes.
pub fn markdown(rows: &[Row], info: &SystemInfo) -> String {
    let mut out = String::from("# Benchmarks\n\n");
    out.push_str(
        "Written by `cargo xtask bench`; rerun it to refresh this page. Each row runs Strata \
         (a criterion\nbenchmark) and the reference (PyTorch, the scripts in \
         `bench/reference/`) one after the\nother on the same machine, each in its own \
         process, limited to the given number of threads.\nTimes are medians per \
         iteration; `strata/reference` is Strata's throughput over the reference's\n\
         (above 1 means Strata is faster). Peak RSS is each process's maximum resident \
         memory; the\nreference's includes the Python interpreter and the imported \
         library. Training steps (`train/`)\nrun forward, loss, backward, clipping where \
         the recipe has it, the optimizer step and zeroing\nthe gradients; `tokens/s` \
         counts batch x context tokens per step.\n\n",
    );
    out.push_str(&format!(
        "- date: {}\n- CPU: {} ({} logical CPUs, {} usable by this run)\n- rustc: {}\n\
         - reference: {}\n- measurement: {}\n\n",
        info.date,
        info.cpu,
        info.logical_cpus,
        info.usable_cpus,
        info.rustc,
        info.reference,
        if info.quick {
            "quick (`--quick`: short warm-up, 10 samples)"
        } else {
            "full (criterion defaults)"
        },
    ));
    out.push_str(&format!("| {} |\n", HEADERS.join(" | ")));
    let aligns: Vec<&str> = (0..HEADERS.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    out.push_str(&format!("| {} |\n", aligns.join(" | ")));
    for row in rows {
        out.push_str(&format!("| {} |\n", cells(row).join(" | ")));
    }
    out.push_str(
        "\n## Where the time goes\n\nA profile of the GPT training step, as percentages of \
         its time by kind of work, and\nwhat was changed because of it: \
         [profile.md](profile.md) (written by hand, not by this runner).\n",
    );
    out
}

fn median_cell(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Measured { median_s, .. } => format_duration(*median_s),
        Outcome::NotBuilt => "not built".to_string(),
        Outcome::Skipped(why) => why.clone(),
        Outcome::Failed(_) => "failed".to_string(),
    }
}

fn rss_cell(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Measured { max_rss_kib, .. } => format!("{:.1} MiB", *max_rss_kib as f64 / 1024.0),
        _ => "-".to_string(),
    }
}

/// A duration in seconds with three significant digits and a unit from ns to s.
pub fn format_duration(seconds: f64) -> String {
    let (value, unit) = if seconds >= 1.0 {
        (seconds, "s")
    } else if seconds >= 1e-3 {
        (seconds * 1e3, "ms")
    } else if seconds >= 1e-6 {
        (seconds * 1e6, "µs")
    } else {
        (seconds * 1e9, "ns")
    };
    format!("{} {unit}", three_digits(value))
}

/// A rate per second with an SI prefix, e.g. `12.3 GFLOP/s`.
pub fn format_rate(per_second: f64, unit: &str) -> String {
    let prefixes = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    let (scale, prefix) = prefixes
        .into_iter()
        .find(|&(scale, _)| per_second >= scale)
        .unwrap_or((1.0, ""));
    format!("{} {prefix}{unit}/s", three_digits(per_second / scale))
}

fn three_digits(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Today's date in UTC as `YYYY-MM-DD`.
pub fn today_utc() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
///
/// ```text
/// shift the epoch to 0000-03-01 so leap days fall at the end of a year, split the day count
/// into 400-year eras of 146097 days, then into years of the era and days of the year, and
/// read the month from the day of the year with March as month 0
/// ```
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Work;

    fn measured(median_s: f64, max_rss_kib: u64) -> Outcome {
        Outcome::Measured {
            median_s,
            max_rss_kib,
        }
    }

    fn gemm_row() -> Row {
        Row {
            workload: "gemm/512".to_string(),
            threads: 1,
            work: Some(Work {
                amount: 2.0 * 512f64.powi(3),
                unit: "FLOP",
            }),
            strata: measured(2.0e-3, 40 * 1024),
            reference: measured(1.0e-3, 300 * 1024),
        }
    }

    #[test]
    fn row_cells_give_throughput_ratio_and_memory() {
        let row = gemm_row();

        let shown = cells(&row);

        assert_eq!(
            shown,
            [
                "gemm/512",
                "1",
                "2.00 ms",
                "1.00 ms",
                "134 GFLOP/s",
                "0.50x",
                "40.0 MiB",
                "300.0 MiB"
            ]
        );
    }

    #[test]
    fn unbuilt_strata_side_and_missing_reference_show_as_words() {
        let row = Row {
            strata: Outcome::NotBuilt,
            reference: Outcome::Skipped("no reference".to_string()),
            ..gemm_row()
        };

        let shown = cells(&row);

        assert_eq!(shown[2], "not built");
        assert_eq!(shown[3], "no reference");
        assert_eq!(&shown[4..], ["-", "-", "-", "-"]);
    }

    #[test]
    fn text_table_aligns_columns() {
        let rows = [gemm_row()];

        let table = text_table(&rows);

        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("workload  threads  strata median"));
        assert!(lines[1].starts_with("gemm/512        1        2.00 ms"));
    }

    #[test]
    fn markdown_has_machine_details_and_one_line_per_row() {
        let info = SystemInfo {
            cpu: "Test CPU".to_string(),
            logical_cpus: 8,
            usable_cpus: 2,
            rustc: "rustc 1.0.0".to_string(),
            reference: "torch 2.0, numpy 1.0".to_string(),
            date: "2024-01-02".to_string(),
            quick: true,
        };

        let text = markdown(&[gemm_row()], &info);

        assert!(text.contains("- CPU: Test CPU (8 logical CPUs, 2 usable by this run)"));
        assert!(text.contains("- reference: torch 2.0, numpy 1.0"));
        assert!(text.contains("| gemm/512 | 1 | 2.00 ms | 1.00 ms | 134 GFLOP/s | 0.50x |"));
        assert!(text.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn hand_written_notes_survive_a_rewrite() {
        let previous = "# Benchmarks\n\n| old table |\n\n## Against the goals\n\nGPT: 1.2x.\n";

        assert_eq!(
            kept_notes(previous),
            "\n## Against the goals\n\nGPT: 1.2x.\n"
        );
        assert_eq!(kept_notes("# Benchmarks\n\nno notes\n"), "");
    }

    #[test]
    fn durations_and_rates_use_three_significant_digits() {
        assert_eq!(format_duration(1.5), "1.50 s");
        assert_eq!(format_duration(0.0123), "12.3 ms");
        assert_eq!(format_duration(4.56e-7), "456 ns");
        assert_eq!(format_rate(2.5e6, "elem"), "2.50 Melem/s");
        assert_eq!(format_rate(12.0, "FLOP"), "12.0 FLOP/s");
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
