//! The step loop: epochs of forward, loss, backward, gradient averaging and optimizer
//! steps; validation that keeps the best model; the test score at the end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ember_data::{Dataset, Loader, Normalize};
use ember_layers::loss::softmax_cross_entropy;
use ember_layers::{Layer, Mode, Sequential};
use ember_tensor::{Tensor, simd};

use super::persist;
use super::report::StepStats;
use super::setup::loader_config;
use super::{INTERRUPTED, Run, TrainReport};
use crate::checkpoint;
use crate::config::Tta;
use crate::distributed::{self, Group};
use crate::error::{Error, Result};
use crate::metrics::{EpochRecord, Evaluation};
use crate::{evaluate_with, plot};

impl Run {
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
            (self.eval_batch, Tta::None),
        )
    }

    /// The error that stops a run whose `what` (a loss) became `value`: where the last
    /// good checkpoint is, if one was written.
    fn diverged(&self, what: &str, value: f64) -> Error {
        let fallback = match self.last_saved {
            Some(step) => format!(
                "The last good checkpoint is {} (step {step}); continue from it with --resume {}.",
                self.dir.join("last.safetensors").display(),
                self.dir.display()
            ),
            None => "No checkpoint was written before it (the first is written at the end of \
                     epoch 1)."
                .to_string(),
        };
        Error(format!(
            "the {what} became {value} at step {} (epoch {}); stopped. {fallback} \
             Try a lower --lr or --clip-norm.",
            self.progress.step,
            self.progress.epoch + 1
        ))
    }

    /// Puts the frozen batch-norm statistics back as they were before the step.
    fn keep_frozen_buffers(&mut self) {
        if self.frozen_buffers.is_empty() {
            return;
        }
        let kept = &self.frozen_buffers;
        self.model.visit_buffers("", &mut |name, t| {
            if let Some((_, v)) = kept.iter().find(|(n, _)| n == name) {
                t.data_mut().copy_from_slice(v);
            }
        });
    }

    pub(super) fn run(mut self) -> Result<TrainReport> {
        super::install_ctrlc_handler();
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
                self.reporter.note(&format!("warning: {e}"));
            }
        }
        // The test set is scored with the best model (the last one without validation),
        // which rank 0 reads and shares; every rank's progress says whether there is one.
        let best_path = self.dir.join("best.safetensors");
        let scored = if self.progress.best_step.is_some() {
            "best"
        } else {
            "last"
        };
        let test = if self.progress.best_step.is_some() {
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
                (self.eval_batch, self.cfg.tta),
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
            tta: self.cfg.tta,
            train_seconds: self.progress.train_seconds,
            run_dir: self.dir.clone(),
            interrupted,
            allreduce_seconds: self.progress.allreduce_seconds,
        };
        if self.lead() {
            persist::write_test_score(&self.dir, &report, scored)?;
        }
        self.reporter.done(&report, self.group.size());
        Ok(report)
    }

    /// One epoch (or its remainder after a resume). Returns false when interrupted.
    fn train_epoch(&mut self) -> Result<bool> {
        let epoch = self.progress.epoch;
        let loader = Loader::new(
            self.train.clone(),
            loader_config(&self.cfg, &self.normalize, self.group.rank()),
        )?;
        self.reporter.epoch_started(
            epoch,
            self.cfg.epochs,
            self.steps_per_epoch,
            self.progress.batch_in_epoch,
        );
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
                return Err(self.diverged("loss", f64::from(loss)));
            }
            let lr = self.opt.step(&mut self.model, self.progress.step)?;
            self.keep_frozen_buffers();
            let p = &mut self.progress;
            p.step += 1;
            p.batch_in_epoch += 1;
            p.loss_sum += loss as f64 * n as f64;
            p.correct += correct;
            p.seen += n;
            p.train_seconds += t0.elapsed().as_secs_f64();
            epoch_images += n;
            self.reporter.step(&StepStats {
                step: p.step,
                loss,
                lr,
                mean_loss: p.loss_sum / p.seen.max(1) as f64,
                accuracy: p.correct as f64 / p.seen.max(1) as f64,
                images_per_s: epoch_images as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
            });
            if self.cfg.eval_every > 0 && self.progress.step.is_multiple_of(self.cfg.eval_every) {
                self.validate_and_keep_best(epoch)?;
            }
            let limit_reached = self.cfg.max_steps > 0 && self.progress.step >= self.cfg.max_steps;
            if limit_reached || stop {
                self.reporter.epoch_stopped();
                self.save_last()?;
                let why = if limit_reached {
                    "step limit reached"
                } else {
                    "interrupted"
                };
                self.reporter.note(&format!(
                    "{why}: checkpoint written at step {}; continue with --resume {}",
                    self.progress.step,
                    self.dir.display()
                ));
                return Ok(false);
            }
        }
        self.reporter.epoch_steps_done();
        let elapsed = epoch_start.elapsed().as_secs_f64();
        let (val_loss, val_acc) = self.validate_and_keep_best(epoch + 1)?;
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
        if self.val.is_none() {
            self.save_checkpoint("best", self.progress.epoch)?;
            self.progress.best_step = Some(self.progress.step);
        }
        self.save_last()?;
        self.reporter.epoch_finished(&record, self.cfg.epochs);
        Ok(true)
    }

    /// Scores the validation set after `epochs` complete epochs; saves `best` when it
    /// improves, stops the run when the loss is not finite. Returns (loss, accuracy).
    fn validate_and_keep_best(&mut self, epochs: u64) -> Result<(Option<f64>, Option<f64>)> {
        let Some(val) = self.val.clone() else {
            return Ok((None, None));
        };
        let e = self.evaluate_shared(&val)?;
        if !e.loss.is_finite() {
            return Err(self.diverged("validation loss", e.loss));
        }
        if self
            .progress
            .best_val_accuracy
            .is_none_or(|b| e.accuracy > b)
        {
            self.progress.best_val_accuracy = Some(e.accuracy);
            self.meta.metrics.insert("val_accuracy".into(), e.accuracy);
            self.meta.metrics.insert("val_loss".into(), e.loss);
            self.save_checkpoint("best", epochs)?;
            self.progress.best_step = Some(self.progress.step);
        }
        Ok((Some(e.loss), Some(e.accuracy)))
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
    (batch, tta): (usize, Tta),
) -> Result<Evaluation> {
    let local = evaluate_with(model, data, normalize, classes, batch, tta)?;
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
