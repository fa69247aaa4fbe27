//! `loss.svg`: training and validation loss against step, drawn with plotters' SVG backend
//! (SVG text needs no font files, and any browser opens it).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::fsutil::write_atomic;
use crate::rundir::Record;

/// Draws the training and validation losses of `records` and writes them to `path`
/// atomically; `title` heads the chart.
///
/// # Errors
/// If drawing fails or the file cannot be written.
pub fn write_loss_plot(path: &Path, title: &str, records: &[Record]) -> Result<()> {
    let svg = loss_svg(title, records).map_err(|err| anyhow!("cannot draw loss.svg: {err}"))?;
    write_atomic(path, svg.as_bytes())
}

fn points(records: &[Record], split: &str) -> Vec<(u64, f64)> {
    records
        .iter()
        .filter(|r| r.split == split && r.loss.is_finite())
        .map(|r| (r.step as u64, r.loss))
        .collect()
}

/// Draws the chart. Steps are whole numbers on an integer axis (ticks read `200`, never
/// `200.0`), the right margin leaves room for the last tick label, and a series of a single
/// point is drawn as a dot (a line through one point draws nothing).
fn loss_svg(title: &str, records: &[Record]) -> Result<String, Box<dyn std::error::Error>> {
    let train = points(records, "train");
    let val = points(records, "val");
    let all = || train.iter().chain(&val);
    let x_max = all().map(|p| p.0).fold(1, u64::max);
    let (mut y_min, mut y_max) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-3);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0..x_max, (y_min - pad)..(y_max + pad))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .x_labels(x_max.min(10) as usize + 1)
            .x_label_formatter(&|step| step.to_string())
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 12))
            .draw()?;
        chart
            .draw_series(LineSeries::new(train.clone(), &BLUE))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if train.len() == 1 {
            chart.draw_series(train.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))?;
        }
        chart
            .draw_series(LineSeries::new(val.clone(), RED.stroke_width(2)))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart.draw_series(val.iter().map(|&p| Circle::new(p, 3, RED.filled())))?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize, split: &str, loss: f64) -> Record {
        Record {
            step,
            split: split.into(),
            loss,
            loss_avg: None,
            lr: None,
            accuracy: None,
            throughput: None,
            elapsed_secs: 0.0,
        }
    }

    #[test]
    fn plot_is_an_svg_with_labelled_axes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.svg");
        let records = [
            record(1, "train", 3.0),
            record(2, "train", 2.0),
            record(2, "val", 2.5),
        ];

        write_loss_plot(&path, "gpt", &records).unwrap();

        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("\nstep\n</text>") && svg.contains("\nloss\n</text>"));
    }

    /// The x tick labels of an SVG chart: the text of each centred `<text>` element holding a
    /// number and lying in the bottom label area, with its x position.
    fn x_ticks(svg: &str) -> Vec<(f64, String)> {
        let mut ticks = Vec::new();
        for element in svg.split("<text").skip(1) {
            let attr = |name: &str| -> Option<f64> {
                let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
                element[start..].split('"').next()?.parse().ok()
            };
            let text = element
                .split_once('>')
                .and_then(|(_, rest)| rest.split_once("</text>"))
                .map(|(text, _)| text.trim().to_string())
                .unwrap_or_default();
            if let (Some(x), Some(y)) = (attr("x"), attr("y")) {
                let centred = element.contains("text-anchor=\"middle\"");
                if centred && y > 420.0 && text.parse::<f64>().is_ok() {
                    ticks.push((x, text));
                }
            }
        }
        ticks
    }

    /// Regression: step ticks read "200.0", the last tick label touched the right edge, and
    /// a 2-step run (one logged training point) drew no training point at all.
    #[test]
    fn steps_are_whole_numbers_with_a_margin_and_single_points_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("long.svg");
        let short = dir.path().join("short.svg");
        let records: Vec<Record> = (1..=2000)
            .step_by(10)
            .map(|s| record(s, "train", 3.0 - s as f64 / 1000.0))
            .collect();

        write_loss_plot(&long, "gpt", &records).unwrap();
        write_loss_plot(&short, "gpt", &[record(2, "train", 3.0)]).unwrap();

        let svg = std::fs::read_to_string(&long).unwrap();
        let ticks = x_ticks(&svg);
        assert!(ticks.len() >= 3, "{ticks:?}");
        assert!(ticks.iter().all(|(_, t)| !t.contains('.')), "{ticks:?}");
        let last = ticks.iter().map(|(x, _)| *x).fold(0.0, f64::max);
        assert!(last < 800.0 - 30.0, "last tick at x = {last}");
        let short_svg = std::fs::read_to_string(&short).unwrap();
        assert!(
            short_svg.contains("<circle"),
            "no dot for a single train point"
        );
        assert!(x_ticks(&short_svg).iter().all(|(_, t)| !t.contains('.')));
    }

    #[test]
    fn an_empty_plot_still_draws() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.svg");

        write_loss_plot(&path, "gpt", &[]).unwrap();

        assert!(std::fs::metadata(&path).unwrap().len() > 0);
    }
}
