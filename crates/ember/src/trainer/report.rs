//! What the user sees while a run trains: one [`Reporter`] per output mode (a progress bar
//! and text lines, JSON objects, or nothing), called by the step loop at the same points.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::{Output, TrainReport};
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
        Output::Human => Box::new(Human { bar: None }),
        Output::Json => Box::new(Json { log_every }),
        Output::Quiet => Box::new(Quiet),
    }
}

/// Says nothing.
struct Quiet;

impl Reporter for Quiet {}

/// A progress bar (on a terminal) and one text line per epoch.
struct Human {
    bar: Option<ProgressBar>,
}

impl Reporter for Human {
    fn epoch_started(&mut self, epoch: u64, epochs: u64, steps: u64, done: u64) {
        if !std::io::stderr().is_terminal() {
            self.bar = None;
            return;
        }
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
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
            bar.set_message(format!(
                "loss {:.4} acc {:.3} {:.0} img/s lr {:.2e}",
                s.mean_loss, s.accuracy, s.images_per_s, s.lr
            ));
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
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
        eprintln!(
            "epoch {:>3}/{}  loss {:.4}  acc {:.4}  val_loss {}  val_acc {}{}  {:.0} img/s  {:.1}s",
            record.epoch,
            epochs,
            record.train_loss,
            record.train_accuracy,
            opt(record.val_loss),
            opt(record.val_accuracy),
            record
                .test_accuracy
                .map(|v| format!("  test_acc {v:.4}"))
                .unwrap_or_default(),
            record.images_per_s,
            record.train_seconds
        );
    }

    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }

    fn done(&mut self, report: &TrainReport, _processes: usize) {
        eprintln!(
            "test accuracy {:.4} (best model, {} images); run folder {}",
            report.test_accuracy,
            report.test.count,
            report.run_dir.display()
        );
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
