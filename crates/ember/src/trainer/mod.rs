//! The training loop: mini-batch SGD/Adam over a loader, validation every epoch (and every
//! N steps), the best model kept by validation accuracy, the last checkpoint written every
//! epoch, exact resume, and a clean stop on Ctrl-C or a non-finite loss.
//!
//! The pieces: `setup` builds a run (configuration, data, model, optimizer, resume),
//! `step_loop` trains it epoch by epoch, `persist` keeps the run folder (no run written
//! over another, checkpoints that survive a failed save), and `report` is the one place
//! that decides what the user sees.

mod persist;
mod report;
mod setup;
mod step_loop;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ember_data::{Dataset, Normalize};
use ember_layers::Sequential;
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointMeta;
use crate::config::{TrainConfig, Tta};
use crate::distributed::{Group, Solo};
use crate::error::{Error, Result};
use crate::metrics::{Evaluation, MetricsLog};
use crate::optimizer::TrainOptimizer;

use report::Reporter;

/// What a finished run reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    /// Epochs completed.
    pub epochs: u64,
    /// Optimizer steps completed.
    pub steps: u64,
    /// Best validation accuracy (or the last epoch's training accuracy without validation).
    pub best_val_accuracy: Option<f64>,
    /// Test accuracy of the best model.
    pub test_accuracy: f64,
    /// Test evaluation of the best model.
    pub test: Evaluation,
    /// The test-time augmentation the test set was scored with.
    pub tta: Tta,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// The run folder.
    pub run_dir: PathBuf,
    /// True when the run was interrupted (Ctrl-C) before its last epoch.
    pub interrupted: bool,
    /// Seconds spent summing gradients across processes (0 in one process).
    pub allreduce_seconds: f64,
}

/// Where a run stands; saved with the last checkpoint so that `--resume` continues exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Progress {
    epoch: u64,
    step: u64,
    batch_in_epoch: u64,
    best_val_accuracy: Option<f64>,
    loss_sum: f64,
    correct: u64,
    seen: u64,
    train_seconds: f64,
    weights_sha256: String,
    #[serde(default)]
    allreduce_seconds: f64,
    /// The step after which `best` was last written; `None` until it is. Whether the run
    /// has a best model is this, not whether a file of that name exists.
    #[serde(default)]
    best_step: Option<u64>,
}

/// How the trainer reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One line per epoch and the test result on stdout; a progress bar (on a terminal)
    /// and remarks on stderr.
    Human,
    /// One JSON object per epoch and a final one on stdout.
    Json,
    /// Nothing.
    Quiet,
}

/// Set by Ctrl-C; the loop finishes its step, writes a checkpoint and stops.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler (once per process).
pub fn install_ctrlc_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
}

/// Trains as `cfg` says (or continues the run in `resume`), returns the report.
pub fn train(cfg: &TrainConfig, resume: Option<&Path>, output: Output) -> Result<TrainReport> {
    train_in(cfg, resume, output, Arc::new(Solo))
}

/// [`train`] as one rank of a data-parallel `group`: every rank calls it with the same
/// arguments; each trains on its shard of every epoch with `cfg.batch_size` images per step
/// (the global batch is `group.size()` times that), gradients averaged across the group.
/// Rank 0 alone prints and writes the run folder; `--resume` reads it on every rank.
pub fn train_in(
    cfg: &TrainConfig,
    resume: Option<&Path>,
    output: Output,
    group: Arc<dyn Group>,
) -> Result<TrainReport> {
    // The model and the loader's background batches share rayon's global pool, so that
    // `--threads` bounds both and no second pool competes for the same cores. A library
    // caller that already set up another global pool gets a private pool of that size.
    if cfg.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .build_global();
    }
    if cfg.threads == 0 || rayon::current_num_threads() == cfg.threads {
        return Run::new(cfg, resume, output, group)?.run();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .build()
        .map_err(|e| Error(format!("cannot start {} threads: {e}", cfg.threads)))?;
    pool.install(|| Run::new(cfg, resume, output, group)?.run())
}

/// A run in progress: what [`setup`] built and the step loop advances.
struct Run {
    cfg: TrainConfig,
    dir: PathBuf,
    reporter: Box<dyn Reporter>,
    model: Sequential,
    meta: CheckpointMeta,
    opt: TrainOptimizer,
    train: Arc<Dataset>,
    val: Option<Arc<Dataset>>,
    test: Arc<Dataset>,
    normalize: Normalize,
    progress: Progress,
    log: MetricsLog,
    steps_per_epoch: u64,
    group: Arc<dyn Group>,
    /// The flat gradient (and step statistics) summed across the group.
    flat: Vec<f32>,
    /// Images per forward pass when validating and testing.
    eval_batch: usize,
    /// The step of the last `last` checkpoint written or resumed from.
    last_saved: Option<u64>,
    /// Where the `last` pair the run can fall back to is (weights, state), when the files
    /// do not sit under their usual names after an interrupted save.
    last_pair: Option<(PathBuf, PathBuf)>,
    /// The batch-norm running statistics under `--freeze` prefixes, put back after every
    /// step so that they stay exactly as they were.
    frozen_buffers: Vec<(String, Vec<f32>)>,
}

impl Run {
    fn lead(&self) -> bool {
        self.group.rank() == 0
    }
}
