//! The training loop: mini-batch SGD/Adam over a loader, validation every epoch (and every
//! N steps), the best model kept by validation accuracy, the last checkpoint written every
//! epoch, exact resume, and a clean stop on Ctrl-C or a non-finite loss.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ember_data::{Dataset, Loader, LoaderConfig, Normalize};
use ember_layers::loss::softmax_cross_entropy;
use ember_layers::{Layer, Mode, Sequential};
use ember_tensor::{Rng, Tensor, simd};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointMeta, Normalization};
use crate::config::TrainConfig;
use crate::error::{Error, Result, io_error};
use crate::metrics::{EpochRecord, Evaluation, MetricsLog};
use crate::optimizer::TrainOptimizer;
use crate::{datasets, evaluate, plot, resolve_model};

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
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// The run folder.
    pub run_dir: PathBuf,
    /// True when the run was interrupted (Ctrl-C) before its last epoch.
    pub interrupted: bool,
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
}

/// How the trainer reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Progress bar and one summary line per epoch on stderr.
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
    // The model and the loader's background batches share rayon's global pool, so that
    // `--threads` bounds both and no second pool competes for the same cores. A library
    // caller that already set up another global pool gets a private pool of that size.
    if cfg.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .build_global();
    }
    if cfg.threads == 0 || rayon::current_num_threads() == cfg.threads {
        return Run::new(cfg, resume, output)?.run();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .build()
        .map_err(|e| Error(format!("cannot start {} threads: {e}", cfg.threads)))?;
    pool.install(|| Run::new(cfg, resume, output)?.run())
}

struct Run {
    cfg: TrainConfig,
    dir: PathBuf,
    output: Output,
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
}

impl Run {
    fn new(cfg: &TrainConfig, resume: Option<&Path>, output: Output) -> Result<Run> {
        let (cfg, dir) = match resume {
            Some(dir) => {
                let path = dir.join("config.json");
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| io_error(&path, "cannot read the run's configuration", e))?;
                let mut saved: TrainConfig = serde_json::from_str(&text).map_err(|e| {
                    Error(format!("{}: unreadable configuration: {e}", path.display()))
                })?;
                // A resumed run may be extended or given a new step limit; nothing else changes.
                saved.epochs = saved.epochs.max(cfg.epochs);
                saved.max_steps = cfg.max_steps;
                saved.out = dir.to_path_buf();
                (saved, dir.to_path_buf())
            }
            None => (cfg.clone(), cfg.out.clone()),
        };
        if cfg.batch_size == 0 {
            return Err(Error::msg("--batch-size must be at least 1"));
        }
        if !(0.0..1.0).contains(&cfg.val_split) {
            return Err(Error(format!(
                "--val-split {} must be in [0, 1)",
                cfg.val_split
            )));
        }
        let splits = datasets::open(&cfg.dataset)?;
        let mut train = splits.train;
        if cfg.limit > 0 && cfg.limit < train.len() {
            let idx: Vec<usize> = (0..cfg.limit).collect();
            train = train.subset(&idx);
        }
        let (train, val) = if cfg.val_split > 0.0 {
            let (t, v) = train.split(cfg.val_split, cfg.seed, true);
            (t, Some(Arc::new(v)))
        } else {
            (train, None)
        };
        if train.is_empty() {
            return Err(Error(format!(
                "dataset {}: no training images left after the split",
                cfg.dataset
            )));
        }
        let (spec, zoo) = resolve_model(&cfg.model)?;
        let shape = train.shape();
        if spec.input != shape {
            return Err(Error(format!(
                "model {} expects input {:?} but dataset {} has images {:?}",
                cfg.model, spec.input, cfg.dataset, shape
            )));
        }
        let mut model = spec.build()?;
        let out = spec.output_shape()?;
        let classes = train.classes().to_vec();
        if out.dims() != [1, classes.len()] {
            return Err(Error(format!(
                "model {} has {} outputs but dataset {} has {} classes",
                cfg.model,
                out.dims().last().copied().unwrap_or(0),
                cfg.dataset,
                classes.len()
            )));
        }
        model.reset_parameters(&mut Rng::new(cfg.seed));
        let normalize = Normalize::from_dataset(&train);
        let meta = CheckpointMeta {
            format: checkpoint::FORMAT.into(),
            ember_version: env!("CARGO_PKG_VERSION").into(),
            zoo,
            model: spec.clone(),
            input_shape: shape,
            normalization: Normalization {
                mean: normalize.mean.clone(),
                std: normalize.std.clone(),
            },
            classes,
            epoch: 0,
            step: 0,
            metrics: Default::default(),
            content_sha256: String::new(),
        };
        let train = Arc::new(train);
        let steps_per_epoch =
            Loader::new(train.clone(), loader_config(&cfg, &normalize, true))?.num_batches() as u64;
        let opt = TrainOptimizer::new(&cfg, &mut model, steps_per_epoch * cfg.epochs)?;
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "cannot create run folder", e))?;
        let mut run = Run {
            log: MetricsLog::new(&dir),
            dir,
            output,
            model,
            meta,
            opt,
            train,
            val,
            test: Arc::new(splits.test),
            normalize,
            progress: Progress::default(),
            steps_per_epoch,
            cfg,
        };
        if resume.is_some() {
            run.restore()?;
        } else {
            let cfg_path = run.dir.join("config.json");
            let json = serde_json::to_string_pretty(&run.cfg).unwrap_or_default();
            checkpoint::write_atomic(&cfg_path, json.as_bytes())?;
            for stale in ["metrics.jsonl", "metrics.csv"] {
                let _ = std::fs::remove_file(run.dir.join(stale));
            }
        }
        Ok(run)
    }

    fn run(mut self) -> Result<TrainReport> {
        install_ctrlc_handler();
        let mut interrupted = false;
        while self.progress.epoch < self.cfg.epochs {
            if !self.train_epoch()? {
                interrupted = true;
                break;
            }
        }
        let records = self.log.read()?;
        if let Err(e) = plot::plot_curves(&self.dir, &records) {
            self.say(&format!("warning: {e}"));
        }
        // The test set is scored with the best model (the last one without validation).
        let best_path = self.dir.join("best.safetensors");
        let test = if best_path.exists() {
            let (_, mut best) = checkpoint::load(&best_path)?;
            evaluate(&mut best, &self.test, &self.normalize, &self.meta.classes)?
        } else {
            // Stopped before any validation: score the current weights.
            evaluate(
                &mut self.model,
                &self.test,
                &self.normalize,
                &self.meta.classes,
            )?
        };
        let report = TrainReport {
            epochs: self.progress.epoch,
            steps: self.progress.step,
            best_val_accuracy: self.progress.best_val_accuracy,
            test_accuracy: test.accuracy,
            test,
            train_seconds: self.progress.train_seconds,
            run_dir: self.dir.clone(),
            interrupted,
        };
        match self.output {
            Output::Json => {
                let line = serde_json::json!({
                    "event": "done",
                    "test_accuracy": report.test_accuracy,
                    "test_loss": report.test.loss,
                    "best_val_accuracy": report.best_val_accuracy,
                    "epochs": report.epochs,
                    "steps": report.steps,
                    "train_seconds": report.train_seconds,
                    "run_dir": report.run_dir,
                    "interrupted": interrupted,
                });
                println!("{line}");
            }
            Output::Human => eprintln!(
                "test accuracy {:.4} (best model, {} images); run folder {}",
                report.test_accuracy,
                report.test.count,
                self.dir.display()
            ),
            Output::Quiet => {}
        }
        Ok(report)
    }

    fn say(&self, line: &str) {
        if self.output == Output::Human {
            eprintln!("{line}");
        }
    }

    /// One epoch (or its remainder after a resume). Returns false when interrupted.
    fn train_epoch(&mut self) -> Result<bool> {
        let epoch = self.progress.epoch;
        let loader = Loader::new(
            self.train.clone(),
            loader_config(&self.cfg, &self.normalize, true),
        )?;
        let bar = self.progress_bar(epoch);
        let skip = self.progress.batch_in_epoch as usize;
        let mut grad = Tensor::zeros([1]);
        let mut pred = Vec::new();
        let mut epoch_images = 0u64;
        let epoch_start = Instant::now();
        for batch in loader.epoch(epoch).skip(skip) {
            let t0 = Instant::now();
            let n = batch.labels.len();
            self.model.begin_step(self.progress.step);
            let logits = self.model.forward(&batch.images, Mode::Train);
            let loss =
                softmax_cross_entropy(logits, &batch.labels, self.cfg.label_smoothing, &mut grad);
            pred.resize(n, 0);
            simd::argmax_rows(logits.data(), logits.shape().item_numel(), &mut pred);
            if !loss.is_finite() {
                return Err(Error(format!(
                    "the loss became {loss} at step {} (epoch {}); stopped. The last good checkpoint is {}. \
                     Try a lower --lr or --clip-norm.",
                    self.progress.step,
                    epoch + 1,
                    self.dir.join("last.safetensors").display()
                )));
            }
            self.model.zero_grad();
            self.model.backward(&batch.images, &grad, false);
            let lr = self.opt.step(&mut self.model, self.progress.step)?;
            let p = &mut self.progress;
            p.step += 1;
            p.batch_in_epoch += 1;
            p.loss_sum += loss as f64 * n as f64;
            p.correct += pred
                .iter()
                .zip(&batch.labels)
                .filter(|(a, b)| a == b)
                .count() as u64;
            p.seen += n as u64;
            p.train_seconds += t0.elapsed().as_secs_f64();
            epoch_images += n as u64;
            if let Some(bar) = &bar {
                bar.inc(1);
                let ips = epoch_images as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "loss {:.4} acc {:.3} {:.0} img/s lr {:.2e}",
                    p.loss_sum / p.seen.max(1) as f64,
                    p.correct as f64 / p.seen.max(1) as f64,
                    ips,
                    lr
                ));
            }
            if self.cfg.eval_every > 0 && self.progress.step.is_multiple_of(self.cfg.eval_every) {
                self.validate_and_keep_best()?;
            }
            let limit_reached = self.cfg.max_steps > 0 && self.progress.step >= self.cfg.max_steps;
            if limit_reached || INTERRUPTED.load(Ordering::SeqCst) {
                if let Some(bar) = &bar {
                    bar.abandon();
                }
                self.save_last()?;
                let why = if limit_reached {
                    "step limit reached"
                } else {
                    "interrupted"
                };
                self.say(&format!(
                    "{why}: checkpoint written at step {}; continue with --resume {}",
                    self.progress.step,
                    self.dir.display()
                ));
                return Ok(false);
            }
        }
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let elapsed = epoch_start.elapsed().as_secs_f64();
        let (val_loss, val_acc) = self.validate_and_keep_best()?;
        let test_accuracy = if self.cfg.test_every_epoch {
            Some(
                evaluate(
                    &mut self.model,
                    &self.test,
                    &self.normalize,
                    &self.meta.classes,
                )?
                .accuracy,
            )
        } else {
            None
        };
        let p = &mut self.progress;
        p.epoch += 1;
        let record = EpochRecord {
            epoch: p.epoch,
            step: p.step,
            train_loss: p.loss_sum / p.seen.max(1) as f64,
            train_accuracy: p.correct as f64 / p.seen.max(1) as f64,
            val_loss,
            val_accuracy: val_acc,
            test_accuracy,
            lr: self.opt.lr(p.step) as f64,
            images_per_s: epoch_images as f64 / elapsed.max(1e-9),
            train_seconds: p.train_seconds,
        };
        p.batch_in_epoch = 0;
        p.loss_sum = 0.0;
        p.correct = 0;
        p.seen = 0;
        self.log.append(&record)?;
        self.save_last()?;
        if self.val.is_none() {
            self.save_checkpoint("best")?;
        }
        match self.output {
            Output::Json => println!(
                "{}",
                serde_json::json!({"event": "epoch", "epochs": self.cfg.epochs, "record": record})
            ),
            Output::Human => eprintln!(
                "epoch {:>3}/{}  loss {:.4}  acc {:.4}  val_loss {}  val_acc {}{}  {:.0} img/s  {:.1}s",
                record.epoch,
                self.cfg.epochs,
                record.train_loss,
                record.train_accuracy,
                record
                    .val_loss
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
                record
                    .val_accuracy
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
                record
                    .test_accuracy
                    .map(|v| format!("  test_acc {v:.4}"))
                    .unwrap_or_default(),
                record.images_per_s,
                record.train_seconds
            ),
            Output::Quiet => {}
        }
        Ok(true)
    }

    fn progress_bar(&self, epoch: u64) -> Option<ProgressBar> {
        if self.output != Output::Human || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new(self.steps_per_epoch);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.cfg.epochs));
        bar.set_position(self.progress.batch_in_epoch);
        Some(bar)
    }

    /// Scores the validation set; saves `best` when it improves. Returns (loss, accuracy).
    fn validate_and_keep_best(&mut self) -> Result<(Option<f64>, Option<f64>)> {
        let Some(val) = self.val.clone() else {
            return Ok((None, None));
        };
        let e = evaluate(&mut self.model, &val, &self.normalize, &self.meta.classes)?;
        if self
            .progress
            .best_val_accuracy
            .is_none_or(|b| e.accuracy > b)
        {
            self.progress.best_val_accuracy = Some(e.accuracy);
            self.meta.metrics.insert("val_accuracy".into(), e.accuracy);
            self.meta.metrics.insert("val_loss".into(), e.loss);
            self.save_checkpoint("best")?;
        }
        Ok((Some(e.loss), Some(e.accuracy)))
    }

    fn save_checkpoint(&mut self, stem: &str) -> Result<()> {
        self.meta.epoch = self.progress.epoch;
        self.meta.step = self.progress.step;
        let path = self.dir.join(format!("{stem}.safetensors"));
        checkpoint::save(&path, &mut self.model, &mut self.meta)
    }

    /// Writes `last` (weights) and `last.state` (optimizer state and progress, tied to the
    /// weights by their hash).
    fn save_last(&mut self) -> Result<()> {
        self.save_checkpoint("last")?;
        self.progress.weights_sha256 = self.meta.content_sha256.clone();
        let progress = serde_json::to_string(&self.progress).unwrap_or_default();
        self.opt
            .save_state(&self.dir.join("last.state.safetensors"), &progress)
    }

    fn restore(&mut self) -> Result<()> {
        let last = self.dir.join("last.safetensors");
        let (meta, model) = checkpoint::load(&last)?;
        if meta.model != self.meta.model {
            return Err(Error(format!(
                "{}: its architecture differs from the run's configuration",
                last.display()
            )));
        }
        self.model = model;
        let state_path = self.dir.join("last.state.safetensors");
        let progress_json = self.opt.load_state(&state_path)?;
        let progress: Progress = serde_json::from_str(&progress_json).map_err(|e| {
            Error(format!(
                "{}: unreadable progress record: {e}",
                state_path.display()
            ))
        })?;
        if progress.weights_sha256 != meta.content_sha256 {
            return Err(Error(format!(
                "{}: belongs to other weights than {} (was the run stopped while saving?)",
                state_path.display(),
                last.display()
            )));
        }
        self.meta.metrics = meta.metrics;
        self.log.truncate_after(progress.epoch)?;
        self.progress = progress;
        self.say(&format!(
            "resuming {} at epoch {}, step {}",
            self.dir.display(),
            self.progress.epoch + 1,
            self.progress.step
        ));
        Ok(())
    }
}

/// The loader settings of a run: training batches are shuffled and augmented.
fn loader_config(cfg: &TrainConfig, normalize: &Normalize, train: bool) -> LoaderConfig {
    LoaderConfig {
        batch_size: cfg.batch_size,
        shuffle: train,
        seed: cfg.seed,
        normalize: normalize.clone(),
        augment: if train {
            datasets::augment_from(&cfg.augment)
        } else {
            Default::default()
        },
        ..LoaderConfig::default()
    }
}
