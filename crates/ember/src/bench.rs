//! `ember bench`: training and inference images/s of a model on random data, with the
//! reference settings (SGD lr 0.01 momentum 0.9, mean cross-entropy, training batch 128,
//! inference batch 256), so anyone can measure their machine against the published figures.

use std::time::Instant;

use ember_layers::loss::softmax_cross_entropy;
use ember_layers::{Layer, Mode};
use ember_tensor::{Rng, Tensor};
use serde::Serialize;

use crate::distributed::{self, Group, Solo};
use crate::error::{Error, Result};
use crate::optimizer::TrainOptimizer;

/// What `ember bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// The model.
    pub model: String,
    /// Training batch size.
    pub batch: usize,
    /// Inference batch size.
    pub infer_batch: usize,
    /// Worker threads.
    pub threads: usize,
    /// SIMD instruction set of the kernels.
    pub simd: String,
    /// Training images per second (forward, backward, optimizer step).
    pub train_images_per_s: f64,
    /// Inference images per second (eval-mode forward).
    pub infer_images_per_s: f64,
    /// Timed training steps.
    pub train_steps: u64,
    /// Timed inference passes.
    pub infer_steps: u64,
    /// Loss of the first and last timed training step (it should fall on fixed data).
    pub loss_first_last: (f32, f32),
    /// This process's rank under `--distributed` (0 otherwise).
    pub rank: usize,
    /// Processes training together (1 without `--distributed`); `train_images_per_s` is
    /// this rank's.
    pub processes: usize,
    /// Fraction of the training step spent averaging gradients across the processes
    /// (waiting for the slowest rank included).
    pub allreduce_share: f64,
    /// Milliseconds of one allreduce of the gradients alone, ranks already in step (0 in
    /// one process): the communication cost without the waiting.
    pub allreduce_ms: f64,
    /// Trainable parameters of the model.
    pub params: usize,
    /// With `layers`: each top-level layer's share of the timed training steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<BenchLayer>,
}

/// One layer's time in the timed training steps of [`bench_in`] (with `layers`).
#[derive(Clone, Debug, Serialize)]
pub struct BenchLayer {
    /// Index in the model (top level).
    pub index: usize,
    /// What the layer is.
    pub layer: String,
    /// Milliseconds of its forward pass per step.
    pub forward_ms: f64,
    /// Milliseconds of its backward pass per step.
    pub backward_ms: f64,
    /// Its forward and backward as a fraction of the whole step (loss and optimizer
    /// included).
    pub share: f64,
}

impl BenchResult {
    /// The per-layer table of `--layers`: one row per layer with time, then the rest of
    /// the step (loss, optimizer, gradient averaging).
    pub fn layer_table(&self) -> String {
        let step_ms = 1e3 * self.batch as f64 / self.train_images_per_s;
        let mut out = format!(
            "{:>3}  {:<42} {:>10} {:>11} {:>6}\n",
            "#", "layer", "fwd ms", "bwd ms", "share"
        );
        let mut layers_ms = 0.0;
        for l in &self.layers {
            layers_ms += l.forward_ms + l.backward_ms;
            out += &format!(
                "{:>3}  {:<42} {:>10.2} {:>11.2} {:>5.1}%\n",
                l.index,
                l.layer,
                l.forward_ms,
                l.backward_ms,
                100.0 * l.share
            );
        }
        let rest = (step_ms - layers_ms).max(0.0);
        out += &format!(
            "     {:<42} {:>22.2} {:>5.1}%\n     {:<42} {:>22.2}",
            "rest (loss, optimizer, averaging)",
            rest,
            100.0 * rest / step_ms,
            "step",
            step_ms
        );
        out
    }
}

/// The longest measurement `--seconds` may ask for.
pub const MAX_SECONDS: f64 = 3600.0;

/// Untimed training steps before the clock starts.
const WARMUP: u64 = 3;

/// Times repeated calls of `f` after `warmup` calls, for at least `seconds` (and 3 calls).
fn timed(seconds: f64, warmup: usize, mut f: impl FnMut() -> Result<()>) -> Result<(u64, f64)> {
    for _ in 0..warmup {
        f()?;
    }
    let t0 = Instant::now();
    let mut n = 0;
    loop {
        f()?;
        n += 1;
        let secs = t0.elapsed().as_secs_f64();
        if secs >= seconds && n >= 3 {
            return Ok((n, secs));
        }
    }
}

/// Measures a zoo model or spec file at batch `batch` (inference at `2 * batch`).
pub fn bench(model: &str, batch: usize, seconds: f64, threads: usize) -> Result<BenchResult> {
    bench_in(&Solo, model, batch, seconds, threads, false)
}

/// [`bench()`] on every rank of `group`: each trains on its own batch and the gradients are
/// averaged every step, as distributed training does; the ranks stop together. With
/// `layers`, also times each top-level layer in the timed training steps
/// ([`BenchResult::layers`]).
pub fn bench_in(
    group: &dyn Group,
    model: &str,
    batch: usize,
    seconds: f64,
    threads: usize,
    layers: bool,
) -> Result<BenchResult> {
    if batch == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(Error(format!(
            "--seconds {seconds} must be a number of seconds above 0 and at most {MAX_SECONDS}"
        )));
    }
    crate::config::check_threads(threads)?;
    let (spec, _) = crate::resolve_model(model)?;
    let sizes = spec.sizes().map_err(|e| Error(format!("{model}: {e}")))?;
    sizes.check_batch(batch, "--batch-size").map_err(Error)?;
    let infer_batch = batch.saturating_mul(2);
    if sizes.check_batch(infer_batch, "").is_err() {
        return Err(Error(format!(
            "--batch-size {batch}: inference runs twice as many images per pass, more than \
             this model's cap of 2^31 elements per tensor allows (at most {} images)",
            crate::spec::MAX_TENSOR_ELEMENTS / sizes.largest_per_image.max(1) / 2
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error(format!("cannot start {threads} threads: {e}")))?;
    pool.install(|| {
        let mut net = spec.build()?;
        let classes = spec.output_shape()?.item_numel();
        let [c, h, w] = spec.input;
        let mut rng = Rng::new(0);
        net.reset_parameters(&mut rng);
        let x = Tensor::normal([batch, c, h, w], 0.0, 1.0, &mut rng);
        let labels: Vec<usize> = (0..batch)
            .map(|_| rng.below(classes as u64) as usize)
            .collect();
        let mut opt = TrainOptimizer::sgd(0.01, 0.9)?;
        let mut grad = Tensor::zeros([1]);
        let mut losses = Vec::new();
        let size = group.size();
        let params = distributed::param_count(&mut net);
        let mut flat = Vec::new();
        let mut allreduce_secs = 0.0;
        // Every rank takes the same number of steps: the stop flag travels with the gradients.
        let mut train_steps = 0u64;
        let mut start = Instant::now();
        let train_secs = loop {
            let step = losses.len() as u64;
            if step == WARMUP {
                start = Instant::now();
                allreduce_secs = 0.0;
                net.set_timing(layers);
            }
            net.begin_step(step);
            let loss = softmax_cross_entropy(net.forward(&x, Mode::Train), &labels, 0.0, &mut grad);
            net.zero_grad();
            net.backward(&x, &grad, false);
            let secs = start.elapsed().as_secs_f64();
            let done = step >= WARMUP && train_steps + 1 >= 3 && secs >= seconds;
            let t0 = Instant::now();
            let any_done = distributed::average_grads(
                group,
                &mut net,
                &mut flat,
                &[f32::from(u8::from(done))],
            )[0] > 0.0;
            if size > 1 {
                allreduce_secs += t0.elapsed().as_secs_f64();
            }
            opt.step(&mut net, step)?;
            losses.push(loss);
            if step >= WARMUP {
                train_steps += 1;
            }
            if any_done {
                break start.elapsed().as_secs_f64();
            }
        };
        let step_secs = train_secs / train_steps.max(1) as f64;
        let per_step = |d: std::time::Duration| 1e3 * d.as_secs_f64() / train_steps.max(1) as f64;
        let layer_rows = net
            .layer_times()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.forward_calls + t.backward_calls > 0)
            .map(|t| BenchLayer {
                index: t.index,
                share: (t.forward + t.backward).as_secs_f64()
                    / train_steps.max(1) as f64
                    / step_secs,
                forward_ms: per_step(t.forward),
                backward_ms: per_step(t.backward),
                layer: t.layer,
            })
            .collect();
        net.set_timing(false);
        let allreduce_ms = if size > 1 {
            const REPS: u32 = 20;
            group.sum_f32(&mut flat); // line the ranks up
            let t0 = Instant::now();
            for _ in 0..REPS {
                group.sum_f32(&mut flat);
            }
            1e3 * t0.elapsed().as_secs_f64() / f64::from(REPS)
        } else {
            0.0
        };
        let xi = Tensor::normal([infer_batch, c, h, w], 0.0, 1.0, &mut rng);
        let mut sink = 0.0f32;
        let (infer_steps, infer_secs) = timed(seconds, 3, || {
            sink += net.forward(&xi, Mode::Eval).data()[0];
            Ok(())
        })?;
        std::hint::black_box(sink);
        let timed_losses = &losses[(WARMUP as usize).min(losses.len())..];
        Ok(BenchResult {
            model: model.to_string(),
            batch,
            infer_batch,
            threads: rayon::current_num_threads(),
            simd: ember_tensor::simd::level().name().to_string(),
            train_images_per_s: (train_steps as usize * batch) as f64 / train_secs,
            infer_images_per_s: (infer_steps as usize * infer_batch) as f64 / infer_secs,
            train_steps,
            infer_steps,
            loss_first_last: (
                timed_losses.first().copied().unwrap_or(f32::NAN),
                timed_losses.last().copied().unwrap_or(f32::NAN),
            ),
            rank: group.rank(),
            processes: size,
            allreduce_share: allreduce_secs / train_secs.max(1e-12),
            allreduce_ms,
            params,
            layers: layer_rows,
        })
    })
}
