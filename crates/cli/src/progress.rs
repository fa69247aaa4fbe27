//! Progress output on stderr: an indicatif bar when stderr is a terminal, plain aligned lines
//! every log interval otherwise (logs, CI, pipes).
//!
//! ```text
//! step   250/2000 | epoch 1 | loss 2.0131 (avg 2.0542) | lr 9.9e-4 | 12.3k tok/s | 00:41 eta 04:48
//! ```

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One logged training step.
#[derive(Debug, Clone, Copy)]
pub struct StepLine {
    /// Optimizer steps done.
    pub step: usize,
    /// The epoch, for epoch-based runs.
    pub epoch: Option<usize>,
    /// The step's loss.
    pub loss: f64,
    /// Mean loss since the previous line.
    pub loss_avg: f64,
    /// The learning rate.
    pub lr: f64,
    /// Tokens or images per second.
    pub throughput: f64,
}

/// Writes progress for a run of `total` steps.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    first_step: usize,
    started: Instant,
    unit: &'static str,
}

impl Progress {
    /// Starts progress at `step` of `total`; `unit` names what throughput counts (`tok`,
    /// `img`, `ex`).
    pub fn new(step: usize, total: usize, unit: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            let style = ProgressStyle::with_template(
                "{bar:24.cyan/blue} {pos:>6}/{len} {msg} | {elapsed_precise} eta {eta_precise}",
            )
            .expect("bug: the progress template is valid");
            bar.set_style(style);
            bar.set_position(step as u64);
            bar
        });
        Self {
            bar,
            total,
            first_step: step,
            started: Instant::now(),
            unit,
        }
    }

    /// Seconds since this process started the run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Prints a message above the bar (or as a plain line, once the bar is finished).
    pub fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) if !bar.is_finished() => bar.println(message),
            _ => eprintln!("{message}"),
        }
    }

    /// Moves the bar to `step` without printing a line.
    pub fn tick(&self, step: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
        }
    }

    /// Reports a logged step: updates the bar's message, or prints a plain line.
    pub fn log_step(&self, line: &StepLine) {
        let elapsed = self.elapsed().as_secs_f64();
        let done = line.step.saturating_sub(self.first_step).max(1) as f64;
        let eta = elapsed / done * self.total.saturating_sub(line.step) as f64;
        let epoch = line
            .epoch
            .map_or(String::new(), |e| format!(" | epoch {e}"));
        let width = self.total.to_string().len();
        let fields = format!(
            "loss {:.4} (avg {:.4}) | lr {:.1e} | {} {}/s",
            line.loss,
            line.loss_avg,
            line.lr,
            human(line.throughput),
            self.unit
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(line.step as u64);
                bar.set_message(format!("{fields}{epoch}"));
            }
            None => eprintln!(
                "step {:>width$}/{}{epoch} | {fields} | {} eta {}",
                line.step,
                self.total,
                clock(elapsed),
                clock(eta)
            ),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `12.3k`, `4.5M`: a rate with three significant digits.
pub fn human(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.1}")
    }
}

/// `mm:ss`, or `h:mm:ss` past an hour.
pub fn clock(secs: f64) -> String {
    let secs = if secs.is_finite() {
        secs.max(0.0) as u64
    } else {
        0
    };
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_rates_read_like_the_style_guide() {
        assert_eq!(clock(252.0), "04:12");
        assert_eq!(clock(3947.0), "1:05:47");
        assert_eq!(human(48_100.0), "48.1k");
        assert_eq!(human(12.0), "12.0");
    }
}
