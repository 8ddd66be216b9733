//! The command line as clap sees it: every command, flag and closed set of values, with
//! the help text `--help` prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use ember::TrainConfig;

#[derive(Parser)]
#[command(
    name = "ember",
    version,
    about = "Train, evaluate and deploy CNN image classifiers on the CPU",
    after_help = "Results go to stdout; progress, remarks and errors to stderr."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a model (with no options: fmnist-cnn on the embedded Fashion-MNIST sample).
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint on a dataset's test split.
    Eval(EvalArgs),
    /// Classify image files with a checkpoint.
    Predict(PredictArgs),
    /// Print a model's layer table (zoo name or spec file).
    Summary(SummaryArgs),
    /// CPU features, active kernel paths and threads.
    Info(InfoArgs),
    /// Dataset tools.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Training and inference images/s on random data (with --serve: of `ember serve`).
    Bench(BenchArgs),
    /// Serve a checkpoint over HTTP: POST /v1/predict, GET /v1/model, /healthz, /metrics.
    Serve(ServeArgs),
    /// Write a checkpoint as an ONNX model.
    Export(ExportArgs),
    /// Turn a PyTorch state_dict (safetensors) into an Ember run folder.
    Import(ImportArgs),
}

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Format, counts, shape, classes and per-class counts of a dataset.
    Info(DatasetInfoArgs),
}

/// The optimizers `--optimizer` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Stochastic gradient descent with momentum (and Nesterov momentum by default).
    Sgd,
    /// Adam, weight decay added to the gradient.
    Adam,
    /// AdamW, decoupled weight decay.
    Adamw,
}

impl OptimizerArg {
    /// The name `TrainConfig::optimizer` holds.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerArg::Sgd => "sgd",
            OptimizerArg::Adam => "adam",
            OptimizerArg::Adamw => "adamw",
        }
    }
}

/// The augmentations `--augment` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AugmentArg {
    /// Random crop after 4 pixels of zero padding.
    Crop,
    /// Random horizontal flip.
    Flip,
    /// Horizontal flip every other epoch, from a random start per image.
    AltFlip,
    /// Random shift by up to 2 pixels each way, edges reflected.
    Translate,
    /// An 8x8 square of zeros at a random place.
    Cutout,
    /// No augmentation.
    None,
}

/// The `--tta` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TtaArg {
    /// The image alone.
    None,
    /// The mean of the logits of the image and its mirror.
    Flip,
    /// Also shifted by one pixel up-left and down-right (edges reflected).
    FlipTranslate,
}

impl TtaArg {
    /// The configuration's value.
    pub fn tta(self) -> ember::config::Tta {
        match self {
            TtaArg::None => ember::config::Tta::None,
            TtaArg::Flip => ember::config::Tta::Flip,
            TtaArg::FlipTranslate => ember::config::Tta::FlipTranslate,
        }
    }
}

impl AugmentArg {
    /// The name `TrainConfig::augment` lists.
    pub fn name(self) -> &'static str {
        match self {
            AugmentArg::Crop => "crop",
            AugmentArg::Flip => "flip",
            AugmentArg::AltFlip => "alt-flip",
            AugmentArg::Translate => "translate",
            AugmentArg::Cutout => "cutout",
            AugmentArg::None => "none",
        }
    }
}

fn image_size(text: &str) -> Result<[usize; 2], String> {
    ember::config::parse_image_size(text)
}

/// How `eval` and `predict` score images: threads and test-time augmentation.
#[derive(Args)]
pub struct ScoringArgs {
    /// Worker threads (0: one per core; at most 4 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Test-time augmentation: score each image by its logits averaged over copies.
    #[arg(long, value_enum, default_value = "none")]
    pub tta: TtaArg,
}

/// The columns of a Parquet dataset (a Spark image DataFrame).
#[derive(Args)]
pub struct ColumnArgs {
    /// The label column of a Parquet dataset: integers (class indices) or strings (class
    /// names) [default: label].
    #[arg(long, value_name = "COLUMN")]
    pub label_column: Option<String>,
    /// A column of a Parquet dataset whose values, `train` or `test`, say which part each
    /// row is in (also found as `COLUMN=…` folders of a partitioned Spark output).
    #[arg(long, value_name = "COLUMN")]
    pub split_column: Option<String>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// `sample`, a dataset folder, archive or Parquet file (or a folder of them), or a
    /// downloaded dataset's name.
    #[arg(long, default_value = "sample")]
    pub dataset: String,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Zoo name (fmnist-cnn, cifar-cnn, resnet9) or a model file (*.toml). A zoo model's
    /// last layer gets one output per class of the dataset.
    #[arg(long, default_value = "fmnist-cnn")]
    pub model: String,
    /// Passes over the training set.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: u64,
    /// Images per optimizer step (per process under --distributed).
    #[arg(long = "batch-size", visible_alias = "batch", default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Sgd)]
    pub optimizer: OptimizerArg,
    /// Base learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    pub lr: f32,
    /// SGD momentum, in [0, 1).
    #[arg(long, default_value_t = TrainConfig::default().momentum)]
    pub momentum: f32,
    /// Nesterov momentum for SGD (on unless --no-nesterov; `--nesterov true|false` is also
    /// accepted).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub nesterov: Option<bool>,
    /// Plain (heavy-ball) momentum for SGD instead of Nesterov's.
    #[arg(long, conflicts_with = "nesterov")]
    pub no_nesterov: bool,
    /// Weight decay (never applied to biases and batch-norm parameters).
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f32,
    /// Learning-rate schedule, in optimizer steps: constant, step:EVERY[:GAMMA],
    /// multistep:M1,M2[:GAMMA], exp:GAMMA, cosine[:warmup=W][:min=LR],
    /// linear[:warmup=W][:end=F], onecycle[:max=LR].
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Fraction of the training set held out for validation (0: no validation; the last
    /// model is then the best).
    #[arg(long, default_value_t = TrainConfig::default().val_split)]
    pub val_split: f64,
    /// For a dataset without a test part (a flat folder root/<class>/*): the fraction of
    /// its images held out as the test set [default: 0.1 for such a dataset].
    #[arg(long)]
    pub test_split: Option<f64>,
    /// Resize the images of an image folder to HxW on load (e.g. 32x32); recorded in the
    /// checkpoint, which `eval` and `predict` follow. Default: the first image's size (at
    /// most 256x256).
    #[arg(long, value_name = "HxW", value_parser = image_size)]
    pub image_size: Option<[usize; 2]>,
    /// Augmentations, comma separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub augment: Vec<AugmentArg>,
    /// Label smoothing of the cross-entropy, in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Clip gradients to this global norm (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub clip_norm: f32,
    /// Also validate every N steps (0: at epoch ends only).
    #[arg(long, default_value_t = 0, value_name = "STEPS")]
    pub eval_every: u64,
    /// Seed of every random choice (initialisation, splits, shuffling, augmentation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (0: one per core; at most 4 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run folder [default: runs/latest, where an earlier run is first moved to
    /// runs/run-N]. A folder given here that holds another run is refused unless --force.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the run in the --out folder (its files are deleted first).
    #[arg(long)]
    pub force: bool,
    /// Continue the run in this folder exactly where it stopped.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Start from this checkpoint's weights: tensors whose name and shape match are
    /// loaded, the others (a new last layer) keep their initialisation, and are listed.
    #[arg(long, value_name = "CHECKPOINT")]
    pub init_from: Option<PathBuf>,
    /// Keep the parameters under these name prefixes (and their batch-norm running
    /// statistics) fixed, e.g. `0,3` or `7.block`.
    #[arg(long, value_delimiter = ',', value_name = "PREFIX")]
    pub freeze: Vec<String>,
    /// Train on a seeded random sample of N training images, each class in its proportion (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Lookahead every N steps over an average of the weights whose decay grows as
    /// ALPHA^N (t/T)^3; the run ends on the averaged weights (0: off).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub lookahead: u64,
    /// The lookahead's ALPHA, in (0, 1].
    #[arg(long, default_value_t = 0.95, value_name = "ALPHA")]
    pub lookahead_alpha: f32,
    /// Batch-norm parameters train with this many times the learning rate, and the weight
    /// decay divided by it (1: the default rate and no decay, like biases).
    #[arg(long, default_value_t = 1.0, value_name = "SCALE")]
    pub norm_lr_scale: f32,
    /// Test-time augmentation for the final test score.
    #[arg(long, value_enum, default_value = "none")]
    pub tta: TtaArg,
    /// Stop after this many optimizer steps in all, with a checkpoint (0: never).
    #[arg(long, default_value_t = 0)]
    pub max_steps: u64,
    /// Also score the test set after every epoch.
    #[arg(long)]
    pub test_every_epoch: bool,
    /// Machine-readable output: one JSON object per epoch and a final one.
    #[arg(long)]
    pub json: bool,
    /// With --json: also print the training loss every N steps.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub log_every: u64,
    /// Data-parallel training across the processes of an MPI job: `mpirun -n N ember
    /// train --distributed …` (--batch-size is per process). Needs the `mpi` feature.
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed: batch-norm statistics over the global batch.
    #[arg(long)]
    pub sync_bn: bool,
    /// With --distributed: end the job when a collective waits this many seconds for
    /// the other processes (a process died or hangs).
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    pub collective_timeout: f64,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A run folder, a .safetensors checkpoint or its .json sidecar.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The dataset whose test split is scored.
    #[arg(long)]
    pub dataset: String,
    /// Parquet columns, when not those the run used (which the checkpoint records).
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write the confusion-matrix heat map here (PNG).
    #[arg(long, value_name = "PNG")]
    pub heatmap: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long = "batch-size", visible_alias = "batch", default_value_t = ember::EVAL_BATCH)]
    pub batch_size: usize,
    /// Worker threads and test-time augmentation.
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

#[derive(Args)]
pub struct PredictArgs {
    /// A run folder, a .safetensors checkpoint or its .json sidecar.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Image files (PNG, JPEG, BMP); one that cannot be read is reported and skipped,
    /// and the command then exits with status 1.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// One JSON object per image.
    #[arg(long)]
    pub json: bool,
    /// Images per forward pass.
    #[arg(long = "batch-size", visible_alias = "batch", default_value_t = ember::predict::PREDICT_BATCH)]
    pub batch_size: usize,
    /// Worker threads and test-time augmentation.
    #[command(flatten)]
    pub scoring: ScoringArgs,
}

#[derive(Args)]
pub struct SummaryArgs {
    /// Zoo name or spec file.
    pub model: String,
    /// Batch size to show shapes and FLOPs for.
    #[arg(long = "batch-size", visible_alias = "batch", default_value_t = 1)]
    pub batch_size: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct InfoArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DatasetInfoArgs {
    /// A dataset folder, archive or Parquet file, `sample`, or a downloaded dataset's name.
    pub path: String,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Resize the images of an image folder to HxW, as `train --image-size` does.
    #[arg(long, value_name = "HxW", value_parser = image_size)]
    pub image_size: Option<[usize; 2]>,
    /// Worker threads for decoding (0: one per core; at most 4 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Zoo name or spec file.
    #[arg(long, default_value = "fmnist-cnn")]
    pub model: String,
    /// Training batch (inference uses twice as many).
    #[arg(long = "batch-size", visible_alias = "batch", default_value_t = 128)]
    pub batch_size: usize,
    /// Seconds per measurement (more than 0, at most 3600).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Worker threads (0: one per core; at most 4 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Under mpirun: every process trains its batch and the gradients are averaged each
    /// step; each rank prints its images/s and the allreduce's share of the step.
    #[arg(long)]
    pub distributed: bool,
    /// Also time each top-level layer in the training steps and print its forward and
    /// backward milliseconds per step and share of the step (a profile without a profiler).
    #[arg(long, conflicts_with = "serve")]
    pub layers: bool,
    /// Also print the expected efficiency of data-parallel training on 2-64 such nodes
    /// (ring allreduce over 1, 10 and 25 Gbit/s links), from the measured step time.
    #[arg(long)]
    pub scaling: bool,
    /// Measure `ember serve` instead: inference images/s first, then a server on loopback
    /// under 1, 8 and 32 concurrent clients (images/s, p50 and p99 latency).
    #[arg(long, conflicts_with_all = ["distributed", "scaling"])]
    pub serve: bool,
    /// With --serve: images per request.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub images_per_request: usize,
    /// With --serve: the client counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32], value_name = "N")]
    pub clients: Vec<usize>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// A run folder, a .safetensors checkpoint or its .json sidecar.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Compute threads (0: one per core; at most 4 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// The most images in one forward pass.
    #[arg(long, default_value_t = ember::serve::ServeConfig::default().max_batch)]
    pub max_batch: usize,
    /// How long a batch may wait for more requests, in milliseconds.
    #[arg(long, default_value_t = ember::serve::ServeConfig::default().max_wait_ms, allow_negative_numbers = true)]
    pub max_wait_ms: f64,
    /// The largest request body, e.g. 10MB, 512KB or 1048576 (bytes).
    #[arg(long, default_value = "10MB", value_parser = byte_size)]
    pub max_body: usize,
}

fn byte_size(text: &str) -> Result<usize, String> {
    ember::serve::parse_byte_size(text)
}

#[derive(Args)]
pub struct ExportArgs {
    /// Write an ONNX model (opset 13) here.
    #[arg(long, value_name = "OUT.onnx")]
    pub onnx: PathBuf,
    /// A run folder, a .safetensors checkpoint or its .json sidecar.
    #[arg(long)]
    pub checkpoint: PathBuf,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A PyTorch state_dict saved with `safetensors.torch.save_file`.
    #[arg(long, value_name = "W.safetensors")]
    pub state_dict: PathBuf,
    /// The architecture: a zoo name (its last layer gets one output per class) or a model
    /// file (*.toml) with an `input`.
    #[arg(long)]
    pub model: String,
    /// Class names in label order, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub classes: Vec<String>,
    /// Per-channel mean of [0, 1] pixels the weights were trained with (one value, or one
    /// per channel, comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        allow_negative_numbers = true
    )]
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (one value, or one per channel).
    #[arg(long, value_delimiter = ',', required = true)]
    pub std: Vec<f32>,
    /// The run folder to write (best.safetensors + best.json).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a checkpoint already in --out.
    #[arg(long)]
    pub force: bool,
}
