//! The `ember` command line: train, eval, predict, summary, info, dataset info, bench.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use std::sync::Arc;

use ember::distributed::{self, Group, Solo};
use ember::trainer::{Output, train_in};
use ember::{Classifier, Result, TrainConfig};

#[derive(Parser)]
#[command(
    name = "ember",
    version,
    about = "Train, evaluate and deploy CNN image classifiers on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (with no options: fmnist-cnn on the embedded Fashion-MNIST sample).
    Train(TrainArgs),
    /// Evaluate a checkpoint on a dataset's test split.
    Eval(EvalArgs),
    /// Classify image files with a checkpoint.
    Predict(PredictArgs),
    /// Print a model's layer table (zoo name or spec file).
    Summary {
        /// Zoo name or spec file.
        model: String,
        /// Batch size to show shapes and FLOPs for.
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
    /// CPU features, active kernel paths and threads.
    Info,
    /// Dataset tools.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Training and inference images/s on random data.
    Bench(BenchArgs),
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Format, counts, shape, classes and per-class counts of a dataset.
    Info {
        /// A dataset folder or archive, `sample`, or a downloaded dataset's name.
        path: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// `sample`, a dataset folder or archive, or a downloaded dataset's name.
    #[arg(long, default_value = "sample")]
    dataset: String,
    /// Zoo name (fmnist-cnn, cifar-cnn, resnet9) or a spec file (*.toml).
    #[arg(long, default_value = "fmnist-cnn")]
    model: String,
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: u64,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// sgd, adam or adamw.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f32,
    #[arg(long, default_value_t = TrainConfig::default().momentum)]
    momentum: f32,
    /// Nesterov momentum (true/false).
    #[arg(long, default_value_t = TrainConfig::default().nesterov, action = clap::ArgAction::Set)]
    nesterov: bool,
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    weight_decay: f32,
    /// Learning-rate schedule, in optimizer steps: constant, step:EVERY[:GAMMA],
    /// multistep:M1,M2[:GAMMA], exp:GAMMA, cosine[:warmup=W][:min=LR], linear[:warmup=W][:end=F],
    /// onecycle[:max=LR].
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Fraction of the training set held out for validation.
    #[arg(long, default_value_t = TrainConfig::default().val_split)]
    val_split: f64,
    /// Augmentations: comma-separated crop, flip, cutout.
    #[arg(long, default_value = "")]
    augment: String,
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Clip gradients to this global norm (0: off).
    #[arg(long, default_value_t = 0.0)]
    clip_norm: f32,
    /// Also validate every N steps (0: at epoch ends only).
    #[arg(long, default_value_t = 0)]
    eval_every: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Run folder.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Continue the run in this folder exactly where it stopped.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Train on at most N images (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Stop after this many optimizer steps in all, with a checkpoint (0: never).
    #[arg(long, default_value_t = 0)]
    max_steps: u64,
    /// Also score the test set after every epoch.
    #[arg(long)]
    test_every_epoch: bool,
    /// Machine-readable output: one JSON object per epoch and a final one.
    #[arg(long)]
    json: bool,
    /// Data-parallel training across the processes of an MPI job: `mpirun -n N ember
    /// train --distributed …` (`--batch-size` is per process). Needs the `mpi` feature.
    #[arg(long)]
    distributed: bool,
    /// With --distributed: batch-norm statistics over the global batch.
    #[arg(long)]
    sync_bn: bool,
    /// With --distributed: end the job when a collective waits this many seconds for
    /// the other processes (a process died or hangs).
    #[arg(long, default_value_t = 300.0)]
    collective_timeout: f64,
    /// With --json: also print the training loss every N steps.
    #[arg(long, default_value_t = 0)]
    log_every: u64,
}

#[derive(Args)]
struct EvalArgs {
    /// A run folder, a .safetensors checkpoint or its .json sidecar.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The dataset whose test split is scored.
    #[arg(long)]
    dataset: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Write the confusion-matrix heat map here.
    #[arg(long)]
    heatmap: Option<PathBuf>,
}

#[derive(Args)]
struct PredictArgs {
    /// A run folder, a .safetensors checkpoint or its .json sidecar.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Image files (PNG, JPEG, BMP).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// One JSON object per image.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Zoo name or spec file.
    #[arg(long, default_value = "fmnist-cnn")]
    model: String,
    /// Training batch (inference uses twice as many).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long)]
    json: bool,
    /// Under mpirun: every process trains its batch and the gradients are averaged each
    /// step; each rank prints its images/s and the allreduce's share of the step.
    #[arg(long)]
    distributed: bool,
    /// Also print the expected efficiency of data-parallel training on 2-64 such nodes
    /// (ring allreduce over 1, 10 and 25 Gbit/s links), from the measured step time.
    #[arg(long)]
    scaling: bool,
}

fn main() -> ExitCode {
    if let Err(msg) = ember_tensor::simd::init() {
        eprintln!("ember: {msg}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ember: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => cmd_train(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Predict(a) => cmd_predict(a),
        Command::Summary { model, batch } => {
            let (spec, _) = ember::resolve_model(&model)?;
            let net = spec.build()?;
            let [c, h, w] = spec.input;
            let summary = net.summary(ember_tensor::Shape::from([batch.max(1), c, h, w]))?;
            println!("{}", spec.name.as_deref().unwrap_or(&model));
            println!("{summary}");
            Ok(())
        }
        Command::Info => {
            println!("{}", ember::info::machine_info());
            Ok(())
        }
        Command::Dataset {
            command: DatasetCommand::Info { path, json },
        } => {
            let info = ember::info::dataset_info(&path)?;
            if json {
                println!("{}", serde_json::to_string(&info).unwrap_or_default());
            } else {
                println!("{}", ember::info::dataset_info_text(&info));
            }
            Ok(())
        }
        Command::Bench(a) => {
            let group = join(a.distributed, 300.0)?;
            let r = on_every_rank(group.as_ref(), || {
                ember::bench::bench_in(group.as_ref(), &a.model, a.batch, a.seconds, a.threads)
            })?;
            if a.json {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            } else {
                let ranks = if r.processes > 1 {
                    format!(
                        "rank {}/{}: allreduce {:.1}% of the step ({:.2} ms alone), ",
                        r.rank,
                        r.processes,
                        100.0 * r.allreduce_share,
                        r.allreduce_ms
                    )
                } else {
                    String::new()
                };
                println!(
                    "{}: {ranks}train {:.0} images/s (batch {}), inference {:.0} images/s (batch {}), {} threads, simd {}",
                    r.model,
                    r.train_images_per_s,
                    r.batch,
                    r.infer_images_per_s,
                    r.infer_batch,
                    r.threads,
                    r.simd
                );
            }
            if a.scaling && group.rank() == 0 {
                let step_s = r.batch as f64 / r.train_images_per_s;
                let bytes = 4.0 * r.params as f64;
                println!(
                    "\n{}: {:.1} MiB of gradients, {:.0} ms per step of {} images on this node\n\n{}",
                    r.model,
                    bytes / (1024.0 * 1024.0),
                    1e3 * step_s,
                    r.batch,
                    distributed::scaling::efficiency_table(bytes, step_s)
                );
            }
            Ok(())
        }
    }
}

/// The process group: the MPI job with `--distributed`, else this process alone.
fn join(distributed: bool, timeout_s: f64) -> Result<Arc<dyn Group>> {
    if distributed {
        distributed::join_mpi(timeout_s)
    } else {
        Ok(Arc::new(Solo))
    }
}

/// Runs `f`; in a job of several processes an error on any rank ends the whole job (the
/// others would wait for it forever), after printing it with the rank.
fn on_every_rank<T>(group: &dyn Group, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match f() {
        Err(e) if group.size() > 1 => group.abort(
            &format!(
                "ember: error (rank {} of {}): {e}",
                group.rank(),
                group.size()
            ),
            1,
        ),
        other => other,
    }
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    ember::datasets::check_augment(&a.augment)?;
    let group = join(a.distributed, a.collective_timeout)?;
    let cfg = TrainConfig {
        dataset: a.dataset,
        model: a.model,
        epochs: a.epochs,
        batch_size: a.batch_size,
        optimizer: a.optimizer,
        lr: a.lr,
        momentum: a.momentum,
        nesterov: a.nesterov,
        weight_decay: a.weight_decay,
        schedule: a.schedule,
        val_split: a.val_split,
        augment: a.augment,
        label_smoothing: a.label_smoothing,
        clip_norm: a.clip_norm,
        eval_every: a.eval_every,
        seed: a.seed,
        threads: a.threads,
        out: a.out,
        limit: a.limit,
        max_steps: a.max_steps,
        test_every_epoch: a.test_every_epoch,
        sync_bn: a.sync_bn,
        log_every: a.log_every,
        world: group.size(),
    };
    let output = if a.json { Output::Json } else { Output::Human };
    on_every_rank(group.as_ref(), || {
        train_in(&cfg, a.resume.as_deref(), output, group.clone())
    })?;
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let mut clf = Classifier::load(&a.checkpoint)?;
    let eval = ember::evaluate_checkpoint(&mut clf, &a.dataset)?;
    if let Some(path) = &a.heatmap {
        ember::plot::plot_confusion(path, &eval)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&eval).unwrap_or_default());
    } else {
        print!("{}", eval.report());
    }
    Ok(())
}

fn cmd_predict(a: PredictArgs) -> Result<()> {
    let mut clf = Classifier::load(&a.checkpoint)?;
    let classes = clf.classes().to_vec();
    let [c, h, w] = clf.meta().input_shape;
    let mut pixels = Vec::with_capacity(a.images.len());
    for path in &a.images {
        pixels.push(ember_data::load_image(path, c, h, w)?);
    }
    let refs: Vec<&[u8]> = pixels.iter().map(Vec::as_slice).collect();
    let preds = clf.predict_batch(&refs)?;
    for (path, p) in a.images.iter().zip(&preds) {
        if a.json {
            let line = serde_json::json!({
                "path": path, "class": p.class, "index": p.index, "probabilities": p.probabilities,
                "top": p.top_k(a.top_k, &classes).into_iter().map(|(i, n, pr)| serde_json::json!({"index": i, "class": n, "probability": pr})).collect::<Vec<_>>(),
            });
            println!("{line}");
        } else {
            let top: Vec<String> = p
                .top_k(a.top_k, &classes)
                .into_iter()
                .map(|(_, n, pr)| format!("{n} {:.1}%", 100.0 * pr))
                .collect();
            println!("{}: {}", path.display(), top.join(", "));
        }
    }
    Ok(())
}
