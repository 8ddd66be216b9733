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
use ember_layers::replica::ReplicaSum;
use ember_layers::{Layer, Mode, Sequential};
use ember_tensor::{Rng, Tensor, simd};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointMeta, Normalization};
use crate::config::TrainConfig;
use crate::distributed::{self, Group, Solo};
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
    group: Arc<dyn Group>,
    /// The flat gradient (and step statistics) summed across the group.
    flat: Vec<f32>,
}

impl Run {
    fn new(
        cfg: &TrainConfig,
        resume: Option<&Path>,
        output: Output,
        group: Arc<dyn Group>,
    ) -> Result<Run> {
        let (rank, size) = (group.rank(), group.size());
        let lead = rank == 0;
        let output = if lead { output } else { Output::Quiet };
        let (mut cfg, dir) = match resume {
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
                saved.log_every = cfg.log_every;
                saved.out = dir.to_path_buf();
                (saved, dir.to_path_buf())
            }
            None => (
                TrainConfig {
                    world: size,
                    ..cfg.clone()
                },
                cfg.out.clone(),
            ),
        };
        if cfg.world != size {
            // Resumed on another number of processes: keep the global batch.
            let global = cfg.batch_size * cfg.world.max(1);
            if global % size != 0 {
                return Err(Error(format!(
                    "the run trained with a global batch of {global} ({} x {}); {size} processes cannot share it evenly",
                    cfg.world, cfg.batch_size
                )));
            }
            cfg.batch_size = global / size;
            cfg.world = size;
        }
        let text = serde_json::to_string(&cfg).unwrap_or_default();
        distributed::check_agree(group.as_ref(), "the training configuration", &text)?;
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
            Loader::new(train.clone(), loader_config(&cfg, &normalize, rank))?.num_batches() as u64;
        let opt = TrainOptimizer::new(&cfg, &mut model, steps_per_epoch * cfg.epochs)?;
        if lead {
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_error(&dir, "cannot create run folder", e))?;
        }
        // Each rank scores its share of the evaluation sets; the counts are summed.
        let shard = |d: Dataset| -> Arc<Dataset> {
            if size == 1 {
                return Arc::new(d);
            }
            let idx: Vec<usize> = (rank..d.len()).step_by(size).collect();
            Arc::new(d.subset(&idx))
        };
        let val = val.map(|v| shard(Arc::unwrap_or_clone(v)));
        let test = shard(splits.test);
        let mut run = Run {
            log: MetricsLog::new(&dir),
            dir,
            output,
            model,
            meta,
            opt,
            train,
            val,
            test,
            normalize,
            progress: Progress::default(),
            steps_per_epoch,
            cfg,
            group,
            flat: Vec::new(),
        };
        if resume.is_some() {
            run.restore()?;
        } else if lead {
            for stale in ["metrics.jsonl", "metrics.csv"] {
                let _ = std::fs::remove_file(run.dir.join(stale));
            }
        }
        if lead {
            let cfg_path = run.dir.join("config.json");
            let json = serde_json::to_string_pretty(&run.cfg).unwrap_or_default();
            checkpoint::write_atomic(&cfg_path, json.as_bytes())?;
        }
        run.join_group();
        Ok(run)
    }

    fn lead(&self) -> bool {
        self.group.rank() == 0
    }

    /// Rank 0's weights everywhere, and batch norm over the global batch if asked.
    fn join_group(&mut self) {
        if self.group.size() == 1 {
            return;
        }
        distributed::broadcast_model(self.group.as_ref(), &mut self.model);
        if self.cfg.sync_bn {
            let group: Arc<dyn ReplicaSum> = self.group.clone();
            self.model.sync_batch_stats(Some(&group));
        }
    }

    /// Averages the gradients over the group and sums the step's statistics: returns the
    /// global mean loss, correct predictions and images, and whether any rank was stopped.
    fn reduce_step(&mut self, loss: f32, correct: u64, n: usize) -> (f32, u64, u64, bool) {
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        let t0 = Instant::now();
        let extras = [
            loss * n as f32,
            correct as f32,
            n as f32,
            f32::from(u8::from(interrupted)),
        ];
        let t = distributed::average_grads(
            self.group.as_ref(),
            &mut self.model,
            &mut self.flat,
            &extras,
        );
        let summed = (t[0] / t[2].max(1.0), t[1] as u64, t[2] as u64, t[3] > 0.0);
        if self.group.size() > 1 {
            self.progress.allreduce_seconds += t0.elapsed().as_secs_f64();
        }
        summed
    }

    /// Scores `data` (this rank's share) with the run's model, summed over the group.
    fn evaluate_shared(&mut self, data: &Arc<Dataset>) -> Result<Evaluation> {
        evaluate_in(
            self.group.as_ref(),
            &mut self.model,
            data,
            &self.normalize,
            &self.meta.classes,
        )
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
        if self.lead() {
            let records = self.log.read()?;
            if let Err(e) = plot::plot_curves(&self.dir, &records) {
                self.say(&format!("warning: {e}"));
            }
        }
        // The test set is scored with the best model (the last one without validation),
        // which rank 0 reads and shares.
        let best_path = self.dir.join("best.safetensors");
        let mut has_best = [f32::from(u8::from(self.lead() && best_path.exists()))];
        self.group.broadcast_f32(&mut has_best);
        let test = if has_best[0] > 0.0 {
            let mut best = if self.lead() {
                checkpoint::load(&best_path)?.1
            } else {
                self.meta.model.build()?
            };
            distributed::broadcast_model(self.group.as_ref(), &mut best);
            evaluate_in(
                self.group.as_ref(),
                &mut best,
                &self.test,
                &self.normalize,
                &self.meta.classes,
            )?
        } else {
            // Stopped before any validation: score the current weights.
            let test = self.test.clone();
            self.evaluate_shared(&test)?
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
            allreduce_seconds: self.progress.allreduce_seconds,
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
                    "allreduce_seconds": report.allreduce_seconds,
                    "processes": self.group.size(),
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
            loader_config(&self.cfg, &self.normalize, self.group.rank()),
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
            // Each rank draws its own dropout masks; one process draws those of `step`.
            let (rank, size) = (self.group.rank() as u64, self.group.size() as u64);
            self.model.begin_step(self.progress.step * size + rank);
            let logits = self.model.forward(&batch.images, Mode::Train);
            let loss =
                softmax_cross_entropy(logits, &batch.labels, self.cfg.label_smoothing, &mut grad);
            pred.resize(n, 0);
            simd::argmax_rows(logits.data(), logits.shape().item_numel(), &mut pred);
            let correct = pred
                .iter()
                .zip(&batch.labels)
                .filter(|(a, b)| a == b)
                .count() as u64;
            self.model.zero_grad();
            self.model.backward(&batch.images, &grad, false);
            let (loss, correct, n, stop) = self.reduce_step(loss, correct, n);
            if !loss.is_finite() {
                return Err(Error(format!(
                    "the loss became {loss} at step {} (epoch {}); stopped. The last good checkpoint is {}. \
                     Try a lower --lr or --clip-norm.",
                    self.progress.step,
                    epoch + 1,
                    self.dir.join("last.safetensors").display()
                )));
            }
            let lr = self.opt.step(&mut self.model, self.progress.step)?;
            let p = &mut self.progress;
            p.step += 1;
            p.batch_in_epoch += 1;
            p.loss_sum += loss as f64 * n as f64;
            p.correct += correct;
            p.seen += n;
            p.train_seconds += t0.elapsed().as_secs_f64();
            epoch_images += n;
            if self.output == Output::Json
                && self.cfg.log_every > 0
                && p.step.is_multiple_of(self.cfg.log_every)
            {
                println!(
                    "{}",
                    serde_json::json!({"event": "step", "step": p.step, "loss": loss, "lr": lr})
                );
            }
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
            if limit_reached || stop {
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
            let test = self.test.clone();
            Some(self.evaluate_shared(&test)?.accuracy)
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
        if self.lead() {
            self.log.append(&record)?;
        }
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
        let e = self.evaluate_shared(&val)?;
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
        if !self.lead() {
            return Ok(());
        }
        self.meta.epoch = self.progress.epoch;
        self.meta.step = self.progress.step;
        let path = self.dir.join(format!("{stem}.safetensors"));
        checkpoint::save(&path, &mut self.model, &mut self.meta)
    }

    /// Writes `last` (weights) and `last.state` (optimizer state and progress, tied to the
    /// weights by their hash).
    fn save_last(&mut self) -> Result<()> {
        if !self.lead() {
            return Ok(());
        }
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
        if self.lead() {
            self.log.truncate_after(progress.epoch)?;
        }
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

/// Scores `data` with `model` on every rank of `group` (each its own share of the set)
/// and sums the confusion matrices and losses, so every rank gets the whole set's figures.
fn evaluate_in(
    group: &dyn Group,
    model: &mut Sequential,
    data: &Arc<Dataset>,
    normalize: &Normalize,
    classes: &[String],
) -> Result<Evaluation> {
    let local = evaluate(model, data, normalize, classes)?;
    if group.size() == 1 {
        return Ok(local);
    }
    let mut sums: Vec<f64> = local
        .confusion
        .iter()
        .flatten()
        .map(|&v| v as f64)
        .collect();
    sums.push(local.loss * local.count as f64);
    group.sum_f64(&mut sums);
    let k = classes.len();
    let confusion = sums[..k * k]
        .chunks(k)
        .map(|row| row.iter().map(|&v| v as u64).collect())
        .collect();
    Ok(Evaluation::from_confusion(confusion, sums[k * k], classes))
}

/// The training loader of a run: shuffled, augmented batches; under a group each rank
/// takes its shard of every epoch's order, so that global batch k is the same images
/// whatever the number of processes.
fn loader_config(cfg: &TrainConfig, normalize: &Normalize, rank: usize) -> LoaderConfig {
    LoaderConfig {
        shard: (cfg.world > 1).then_some((rank, cfg.world)),
        batch_size: cfg.batch_size,
        shuffle: true,
        seed: cfg.seed,
        normalize: normalize.clone(),
        augment: datasets::augment_from(&cfg.augment),
        ..LoaderConfig::default()
    }
}
