//! The run folder on disk: a new run never writes over another, `best` and `last` are
//! written atomically, and the `last` pair (weights + training state) is written so that
//! a failure at any point leaves a consistent pair for `--resume`.
//!
//! Saving `last` writes both new files under temporary names first (a full disk fails
//! here, before anything is replaced), then moves the current pair to `last.prev.*`,
//! renames the new files into place and deletes the `.prev` pair. The training state
//! records the hash of the weights it belongs to, so resuming takes the newest pair whose
//! two halves match among `last.*` and `last.prev.*`, whatever step the save stopped at.

use std::path::{Path, PathBuf};

use super::report::Reporter;
use super::{Progress, Run, TrainReport};
use crate::checkpoint;
use crate::config::ExistingRun;
use crate::error::{Error, Result, io_error};
use crate::optimizer::TrainOptimizer;

/// The weights of the last checkpoint.
const LAST: &str = "last.safetensors";
/// The optimizer state and progress that go with [`LAST`].
const LAST_STATE: &str = "last.state.safetensors";
/// [`LAST`] while a newer one is being put in place.
const PREV: &str = "last.prev.safetensors";
/// [`LAST_STATE`] while a newer one is being put in place.
const PREV_STATE: &str = "last.prev.state.safetensors";

/// The final test score: which model, with which test-time augmentation.
pub(super) const TEST_SCORE: &str = "test.json";

/// The files a run writes in its folder; a folder holding any of them holds a run.
const RUN_FILES: [&str; 13] = [
    "config.json",
    TEST_SCORE,
    "best.safetensors",
    "best.json",
    LAST,
    "last.json",
    LAST_STATE,
    PREV,
    PREV_STATE,
    "metrics.jsonl",
    "metrics.csv",
    "loss.png",
    "accuracy.png",
];

/// The run files present in `dir`.
fn run_files_in(dir: &Path) -> Vec<&'static str> {
    RUN_FILES
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect()
}

/// Fails, naming the folder and the ways out, if `dir` holds another run.
pub(super) fn refuse_other_run(dir: &Path) -> Result<()> {
    let found = run_files_in(dir);
    if found.is_empty() {
        return Ok(());
    }
    Err(Error(format!(
        "--out {0}: the folder already holds a run ({1}); continue it with --resume {0}, \
         replace it with --force, or give another --out",
        dir.display(),
        found.join(", ")
    )))
}

/// Makes `dir` ready for a new run as `policy` says when it holds another run: refuse,
/// delete that run's files, or move the folder aside to a numbered sibling `run-N`.
pub(super) fn prepare_run_dir(
    dir: &Path,
    policy: ExistingRun,
    reporter: &mut dyn Reporter,
) -> Result<()> {
    let found = run_files_in(dir);
    if found.is_empty() {
        return Ok(());
    }
    match policy {
        ExistingRun::Refuse => refuse_other_run(dir),
        ExistingRun::Replace => {
            for f in &found {
                let path = dir.join(f);
                std::fs::remove_file(&path)
                    .map_err(|e| io_error(&path, "cannot remove the earlier run's file", e))?;
            }
            reporter.note(&format!(
                "--force: removed the earlier run's files from {}",
                dir.display()
            ));
            Ok(())
        }
        ExistingRun::MoveAside => {
            let parent = dir.parent().unwrap_or(Path::new("."));
            let aside = (1u32..)
                .map(|n| parent.join(format!("run-{n}")))
                .find(|p| !p.exists())
                .unwrap_or_else(|| parent.join("run-old"));
            std::fs::rename(dir, &aside).map_err(|e| {
                io_error(
                    dir,
                    &format!("cannot move the earlier run to {}", aside.display()),
                    e,
                )
            })?;
            reporter.note(&format!(
                "{} held an earlier run: moved it to {}",
                dir.display(),
                aside.display()
            ));
            Ok(())
        }
    }
}

impl Run {
    /// Writes checkpoint `stem` (`best`) after `epochs` complete epochs.
    pub(super) fn save_checkpoint(&mut self, stem: &str, epochs: u64) -> Result<()> {
        if !self.lead() {
            return Ok(());
        }
        self.meta.epoch = epochs;
        self.meta.step = self.progress.step;
        let path = self.dir.join(format!("{stem}.safetensors"));
        checkpoint::save(&path, &mut self.model, &mut self.meta)
    }

    /// Writes `last` (weights) and `last.state` (optimizer state and progress, tied to the
    /// weights by their hash) as the module documentation describes.
    pub(super) fn save_last(&mut self) -> Result<()> {
        let step = self.progress.step;
        if !self.lead() {
            self.last_saved = Some(step);
            return Ok(());
        }
        self.meta.epoch = self.progress.epoch;
        self.meta.step = step;
        let (w, s) = (self.dir.join(LAST), self.dir.join(LAST_STATE));
        let (weights, json) = checkpoint::encode(&w, &mut self.model, &mut self.meta)?;
        self.progress.weights_sha256 = self.meta.content_sha256.clone();
        let progress = serde_json::to_string(&self.progress).unwrap_or_default();
        let state = self.opt.encode_state(&s, &progress)?;
        let tmp_w = checkpoint::write_temp(&w, &weights)?;
        let tmp_s = checkpoint::write_temp(&s, &state).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp_w);
        })?;
        let (pw, ps) = (self.dir.join(PREV), self.dir.join(PREV_STATE));
        let (cw, cs) = self.last_pair.take().unwrap_or((w.clone(), s.clone()));
        let keep_current = || -> Result<()> {
            for (from, to) in [(&cw, &pw), (&cs, &ps)] {
                if from != to && from.exists() {
                    std::fs::rename(from, to)
                        .map_err(|e| io_error(to, "cannot keep the previous checkpoint", e))?;
                }
            }
            Ok(())
        };
        if let Err(e) = keep_current() {
            let _ = std::fs::remove_file(&tmp_w);
            let _ = std::fs::remove_file(&tmp_s);
            return Err(e);
        }
        checkpoint::commit(&tmp_w, &w).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp_s);
        })?;
        checkpoint::commit(&tmp_s, &s)?;
        let _ = std::fs::remove_file(&pw);
        let _ = std::fs::remove_file(&ps);
        checkpoint::write_atomic(&w.with_extension("json"), json.as_bytes())?;
        self.last_saved = Some(step);
        Ok(())
    }

    /// Loads the newest consistent `last` pair: weights, optimizer state and progress.
    pub(super) fn restore(&mut self) -> Result<()> {
        let mut failures = Vec::new();
        for (w, s) in last_pairs(&self.dir, &mut failures) {
            match self.restore_pair(&w, &s) {
                Ok(()) => {
                    let usual = (self.dir.join(LAST), self.dir.join(LAST_STATE));
                    if (&w, &s) != (&usual.0, &usual.1) {
                        self.reporter.note(&format!(
                            "{} and {} do not belong together (the run stopped while saving); \
                             resuming from {} and {} instead",
                            usual.0.display(),
                            usual.1.display(),
                            w.display(),
                            s.display()
                        ));
                        self.last_pair = Some((w, s));
                    }
                    self.reporter.note(&format!(
                        "resuming {} at epoch {}, step {}",
                        self.dir.display(),
                        self.progress.epoch + 1,
                        self.progress.step
                    ));
                    return Ok(());
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Error(format!(
            "{}: no checkpoint to resume from: {}",
            self.dir.display(),
            if failures.is_empty() {
                format!("no {LAST} and {LAST_STATE} (the run wrote no checkpoint yet?)")
            } else {
                failures.join("; ")
            }
        )))
    }

    fn restore_pair(&mut self, last: &Path, state_path: &Path) -> Result<()> {
        let (meta, model) = checkpoint::load(last)?;
        if meta.model != self.meta.model {
            return Err(Error(format!(
                "{}: its architecture differs from the run's configuration",
                last.display()
            )));
        }
        let progress = read_progress(state_path)?;
        if progress.weights_sha256 != meta.content_sha256 {
            return Err(Error(format!(
                "{}: belongs to other weights than {} (was the run stopped while saving?)",
                state_path.display(),
                last.display()
            )));
        }
        self.opt.load_state(state_path)?;
        self.model = model;
        self.meta.metrics = meta.metrics;
        if self.lead() {
            self.log.truncate_after(progress.epoch)?;
        }
        self.last_saved = Some(progress.step);
        self.progress = progress;
        Ok(())
    }
}

fn read_progress(path: &Path) -> Result<Progress> {
    let json = TrainOptimizer::read_progress(path)?;
    serde_json::from_str(&json).map_err(|e| {
        Error(format!(
            "{}: unreadable progress record: {e}",
            path.display()
        ))
    })
}

/// The `last` pairs of `dir` whose weights and state belong together, newest first (the
/// usual names first among equals). Files that cannot be read are noted in `failures`.
fn last_pairs(dir: &Path, failures: &mut Vec<String>) -> Vec<(PathBuf, PathBuf)> {
    let mut states = Vec::new();
    for name in [LAST_STATE, PREV_STATE] {
        let path = dir.join(name);
        if path.exists() {
            match read_progress(&path) {
                Ok(p) => states.push((path, p)),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    let mut weights = Vec::new();
    for name in [LAST, PREV] {
        let path = dir.join(name);
        if path.exists() {
            match checkpoint::read_meta(&path) {
                Ok(m) => weights.push((path, m.content_sha256)),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    let mut pairs = Vec::new();
    for (s, p) in &states {
        for (w, hash) in &weights {
            if *hash == p.weights_sha256 {
                pairs.push((p.step, w.clone(), s.clone()));
            }
        }
    }
    if pairs.is_empty()
        && let (Some((s, _)), Some((w, _))) = (states.first(), weights.first())
    {
        failures.push(format!(
            "{}: belongs to other weights than {} (was the run stopped while saving?), \
             and no earlier pair matches",
            s.display(),
            w.display()
        ));
    }
    // Stable: among pairs of one step, the usual names (listed first) stay first.
    pairs.sort_by_key(|p| std::cmp::Reverse(p.0));
    pairs.into_iter().map(|(_, w, s)| (w, s)).collect()
}

/// Writes [`TEST_SCORE`]: the test evaluation of `model` ("best" or "last") at the end of
/// the run, with the test-time augmentation it was scored with and the training it took.
pub(super) fn write_test_score(dir: &Path, report: &TrainReport, model: &str) -> Result<()> {
    let score = serde_json::json!({
        "model": model,
        "tta": report.tta.name(),
        "accuracy": report.test.accuracy,
        "loss": report.test.loss,
        "images": report.test.count,
        "epochs": report.epochs,
        "steps": report.steps,
        "train_seconds": report.train_seconds,
        "interrupted": report.interrupted,
        "per_class": report.test.per_class,
        "confusion": report.test.confusion,
    });
    let path = dir.join(TEST_SCORE);
    let text = serde_json::to_string_pretty(&score).map_err(|e| {
        Error(format!(
            "{}: cannot encode the test score: {e}",
            path.display()
        ))
    })?;
    checkpoint::write_atomic(&path, text.as_bytes())
}
