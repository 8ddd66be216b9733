//! What the user sees while a run trains: one [`Reporter`] per output mode (a table of
//! epochs on stdout with a progress bar and remarks on stderr, JSON objects on stdout, or
//! nothing), called by the step loop at the same points.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::{Output, TrainReport};
use crate::config::Tta;
use crate::metrics::EpochRecord;

/// One optimizer step as the reporters see it.
pub(super) struct StepStats {
    /// Steps completed, this one included.
    pub step: u64,
    /// This step's loss (mean over the global batch).
    pub loss: f32,
    /// The learning rate this step used.
    pub lr: f32,
    /// Mean loss over the epoch so far.
    pub mean_loss: f64,
    /// Training accuracy over the epoch so far.
    pub accuracy: f64,
    /// Training images per second over the epoch so far.
    pub images_per_s: f64,
}

/// The events of a run, in the order the step loop raises them.
pub(super) trait Reporter {
    /// Epoch `epoch` (0-based) of `epochs` starts, `done` of its `steps` already taken.
    fn epoch_started(&mut self, _epoch: u64, _epochs: u64, _steps: u64, _done: u64) {}
    /// A step was taken.
    fn step(&mut self, _s: &StepStats) {}
    /// The epoch stops before its end (step limit or Ctrl-C).
    fn epoch_stopped(&mut self) {}
    /// The epoch's steps are done; validation follows.
    fn epoch_steps_done(&mut self) {}
    /// The epoch is complete, validated and saved.
    fn epoch_finished(&mut self, _record: &EpochRecord, _epochs: u64) {}
    /// A remark for people (resuming, warnings, why the run stopped).
    fn note(&mut self, _line: &str) {}
    /// The run is over.
    fn done(&mut self, _report: &TrainReport, _processes: usize) {}
}

/// The reporter of `output`; `log_every` is the JSON step-line interval (0: none).
pub(super) fn reporter_for(output: Output, log_every: u64) -> Box<dyn Reporter> {
    match output {
        Output::Human => Box::new(Human {
            bar: None,
            header_done: false,
        }),
        Output::Json => Box::new(Json { log_every }),
        Output::Quiet => Box::new(Quiet),
    }
}

/// Says nothing.
struct Quiet;

impl Reporter for Quiet {}

/// A progress bar (on a terminal) and remarks on stderr; a table of epochs and the test
/// result on stdout, so that `ember train > log` keeps the results.
struct Human {
    bar: Option<ProgressBar>,
    header_done: bool,
}

/// The progress bar's line around the bar itself; with [`bar_message`] it leaves the bar
/// at least 16 of 80 columns (see the test below).
const BAR_TEMPLATE: &str = "epoch {prefix} {wide_bar} {pos}/{len} {msg} {eta}";

/// The progress bar's running figures, kept short so that the line fits 80 columns.
fn bar_message(s: &StepStats) -> String {
    format!(
        "loss {:.3} acc {:.3} {:.0} img/s",
        s.mean_loss, s.accuracy, s.images_per_s
    )
}

/// The epoch table's header; its columns and [`table_row`]'s fit 80 characters.
fn table_header() -> String {
    format!(
        "{:>7} {:>8} {:>6} {:>9} {:>8} {:>9} {:>8} {:>8}",
        "epoch", "loss", "acc", "val_loss", "val_acc", "test_acc", "img/s", "time"
    )
}

/// One epoch's row of the table.
fn table_row(r: &EpochRecord, epochs: u64) -> String {
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
    format!(
        "{:>7} {:>8.4} {:>6.4} {:>9} {:>8} {:>9} {:>8.0} {:>8}",
        format!("{}/{epochs}", r.epoch),
        r.train_loss,
        r.train_accuracy,
        opt(r.val_loss),
        opt(r.val_accuracy),
        opt(r.test_accuracy),
        r.images_per_s,
        format!("{:.1}s", r.train_seconds)
    )
}

impl Reporter for Human {
    fn epoch_started(&mut self, epoch: u64, epochs: u64, steps: u64, done: u64) {
        if !std::io::stderr().is_terminal() {
            self.bar = None;
            return;
        }
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
        bar.set_position(done);
        self.bar = Some(bar);
    }

    fn step(&mut self, s: &StepStats) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(bar_message(s));
        }
    }

    fn epoch_stopped(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }

    fn epoch_steps_done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn epoch_finished(&mut self, record: &EpochRecord, epochs: u64) {
        if !self.header_done {
            println!("{}", table_header());
            self.header_done = true;
        }
        println!("{}", table_row(record, epochs));
    }

    fn note(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn done(&mut self, report: &TrainReport, _processes: usize) {
        if report.test.count == 0 {
            println!(
                "no test images to score; run folder {}",
                report.run_dir.display()
            );
        } else {
            let tta = match report.tta {
                Tta::None => String::new(),
                t => format!(", {} TTA", t.name()),
            };
            println!(
                "test accuracy {:.4} (best model{tta}, {} images); run folder {}",
                report.test_accuracy,
                report.test.count,
                report.run_dir.display()
            );
        }
    }
}

/// One JSON object per epoch (and per `log_every` steps) and a final one, on stdout.
struct Json {
    log_every: u64,
}

impl Reporter for Json {
    fn step(&mut self, s: &StepStats) {
        if self.log_every > 0 && s.step.is_multiple_of(self.log_every) {
            println!(
                "{}",
                serde_json::json!({"event": "step", "step": s.step, "loss": s.loss, "lr": s.lr})
            );
        }
    }

    fn epoch_finished(&mut self, record: &EpochRecord, epochs: u64) {
        println!(
            "{}",
            serde_json::json!({"event": "epoch", "epochs": epochs, "record": record})
        );
    }

    fn done(&mut self, report: &TrainReport, processes: usize) {
        let line = serde_json::json!({
            "event": "done",
            "test_accuracy": report.test_accuracy,
            "test_loss": report.test.loss,
            "tta": report.tta.name(),
            "best_val_accuracy": report.best_val_accuracy,
            "epochs": report.epochs,
            "steps": report.steps,
            "train_seconds": report.train_seconds,
            "allreduce_seconds": report.allreduce_seconds,
            "processes": processes,
            "run_dir": report.run_dir,
            "interrupted": report.interrupted,
        });
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_and_the_epoch_table_fit_80_columns() {
        // The widest figures a run shows: a diverging loss, 5-digit speeds, long epochs.
        let s = StepStats {
            step: 99_999,
            loss: 123.456,
            lr: 0.1,
            mean_loss: 123.456,
            accuracy: 1.0,
            images_per_s: 99_999.0,
        };
        let fixed = BAR_TEMPLATE
            .replace("{prefix}", "100/100")
            .replace(" {wide_bar}", "")
            .replace("{pos}/{len}", "99999/99999")
            .replace("{msg}", &bar_message(&s))
            .replace("{eta}", "59m");
        assert!(fixed.len() <= 64, "{} columns: {fixed}", fixed.len());
        let r = EpochRecord {
            epoch: 100,
            step: 1,
            train_loss: 123.4567,
            train_accuracy: 1.0,
            val_loss: Some(123.4567),
            val_accuracy: Some(1.0),
            test_accuracy: Some(1.0),
            lr: 0.1,
            images_per_s: 999_999.0,
            train_seconds: 99_999.9,
        };
        let (header, row) = (table_header(), table_row(&r, 100));
        assert!(row.len() <= 80, "{row}");
        // The columns line up with the header.
        assert_eq!(row.len(), header.len(), "{header}\n{row}");
    }
}
