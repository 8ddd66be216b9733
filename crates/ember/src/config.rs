//! The training configuration: every `ember train` option, saved in the run folder as
//! `config.json` so that `--resume` continues exactly the same run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// `sample` (the embedded Fashion-MNIST subset), a dataset folder or archive, or the
    /// name of a downloaded dataset (`fashion-mnist`, `mnist`, `cifar10`, ...).
    pub dataset: String,
    /// A zoo name (`fmnist-cnn`, `cifar-cnn`, `resnet9`) or a spec file (`*.toml`).
    pub model: String,
    /// Number of epochs.
    pub epochs: u64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// `sgd`, `adam` or `adamw`.
    pub optimizer: String,
    /// Base learning rate.
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay (not applied to biases and normalisation parameters).
    pub weight_decay: f32,
    /// Learning-rate schedule (see `ember_optim` for the grammar), e.g. `constant`, `cosine`.
    pub schedule: String,
    /// Fraction of the training set held out for validation (0 disables validation).
    pub val_split: f64,
    /// Augmentations, comma separated: `crop`, `flip`, `cutout`; empty for none.
    pub augment: String,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f32,
    /// Clip gradients to this global norm (0 disables).
    pub clip_norm: f32,
    /// Validate every N steps as well as at each epoch end (0: epoch ends only).
    pub eval_every: u64,
    /// Seed of every random choice (init, split, shuffling, augmentation, dropout).
    pub seed: u64,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Run folder.
    pub out: PathBuf,
    /// Use at most this many training images (0: all); for quick experiments.
    pub limit: usize,
    /// Stop (as Ctrl-C would: checkpoint, then exit) after this many optimizer steps in
    /// total (0: never); for time-boxed runs and tests of `--resume`.
    #[serde(default)]
    pub max_steps: u64,
    /// Also score the test set after every epoch (recorded as `test_accuracy`), as the
    /// time-to-accuracy benchmarks report it.
    #[serde(default)]
    pub test_every_epoch: bool,
    /// Under `--distributed`: batch-norm statistics over the global batch (all ranks)
    /// instead of each rank's local batch.
    #[serde(default)]
    pub sync_bn: bool,
    /// With JSON output, also print the loss every N steps (0: never).
    #[serde(default)]
    pub log_every: u64,
    /// The number of processes the run trains on (`batch_size` is per process); set by the
    /// trainer. A run resumed on another number keeps the global batch.
    #[serde(default = "one")]
    pub world: usize,
    /// Resize the images of an image folder to `[height, width]` on load (the channels
    /// follow the images); `None`: the first image's size.
    #[serde(default)]
    pub image_size: Option<[usize; 2]>,
    /// For a dataset without a test part (a flat image folder `root/<class>/*`): the
    /// fraction of its images held out as the test set (`None`: 0.1 for such a dataset).
    #[serde(default)]
    pub test_split: Option<f64>,
    /// Start from the weights of this checkpoint: every tensor whose name and shape match
    /// is loaded, the others keep their initialisation (fine-tuning).
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Parameter-name prefixes (`0.`, `3.block`) whose parameters, and batch-norm running
    /// statistics, stay as they are.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Lookahead every N optimizer steps over an average of the weights (and batch-norm
    /// statistics) whose decay grows as `alpha^N · (t/T)³` (0: off); see
    /// [`ember_optim::Lookahead`]. The run ends on the averaged weights.
    #[serde(default)]
    pub lookahead: u64,
    /// The lookahead's `alpha`.
    #[serde(default = "lookahead_alpha")]
    pub lookahead_alpha: f32,
    /// Batch-norm parameters train with this many times the learning rate and take
    /// `weight_decay / norm_lr_scale` of decay (the same decay per step as the weights);
    /// 1: the default rate and no decay, like other biases.
    #[serde(default = "one_f32")]
    pub norm_lr_scale: f32,
    /// Test-time augmentation for the final test score: `none`, `flip` (the image and its
    /// mirror), `flip-translate` (also shifted by one pixel both ways).
    #[serde(default)]
    pub tta: Tta,
    /// What to do when `out` already holds another run; not saved with the run.
    #[serde(skip)]
    pub existing_run: ExistingRun,
}

/// Test-time augmentation: the logits averaged over transformed copies of each image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tta {
    /// The image alone.
    #[default]
    None,
    /// The image and its left-right mirror.
    Flip,
    /// Half the image and its mirror, half the mean of both shifted by one pixel up-left and
    /// down-right (edges reflected).
    FlipTranslate,
}

impl Tta {
    /// The name used on the command line and in `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Flip => "flip",
            Tta::FlipTranslate => "flip-translate",
        }
    }
}

/// What a new run does when its folder already holds another run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExistingRun {
    /// Stop with a message naming the folder (an `--out` given by the user).
    #[default]
    Refuse,
    /// Delete the old run's files first (`--force`).
    Replace,
    /// Move the old run to a numbered folder beside it (`runs/run-1`, ...) first: what the
    /// default folder `runs/latest` does, so that a repeated `ember train` loses nothing.
    MoveAside,
}

/// The test fraction held out of a dataset without a test part when none is given.
pub const DEFAULT_TEST_SPLIT: f64 = 0.1;

/// How many threads per core `--threads` may ask for: more only makes them wait.
pub const MAX_THREADS_PER_CORE: usize = 4;

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Checks a `--threads` value: 0 (all cores) or at most [`MAX_THREADS_PER_CORE`] per core.
pub fn check_threads(threads: usize) -> Result<()> {
    let cap = MAX_THREADS_PER_CORE * cores();
    if threads > cap {
        return Err(Error(format!(
            "--threads {threads} is more than {cap} ({MAX_THREADS_PER_CORE} per core on this \
             machine's {} cores); use 0 for one per core",
            cores()
        )));
    }
    Ok(())
}

/// Checks that a fraction option is in `[0, 1)`.
fn check_fraction(flag: &str, v: f64) -> Result<()> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error(format!("{flag} {v} must be in [0, 1)")))
    }
}

impl TrainConfig {
    /// Checks every option that does not need the data or the model, naming the flag.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::msg("--epochs must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::msg("--batch-size must be at least 1"));
        }
        check_fraction("--val-split", self.val_split)?;
        if let Some(t) = self.test_split {
            check_fraction("--test-split", t)?;
            if self.val_split + t >= 1.0 {
                return Err(Error(format!(
                    "--val-split {} and --test-split {t} leave no training images",
                    self.val_split
                )));
            }
        }
        check_fraction("--label-smoothing", f64::from(self.label_smoothing))?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error(format!("--lr {} must be a positive number", self.lr)));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error(format!(
                "--momentum {} must be in [0, 1)",
                self.momentum
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error(format!(
                "--weight-decay {} must be a number >= 0",
                self.weight_decay
            )));
        }
        if let Some([h, w]) = self.image_size {
            check_image_size(h, w)?;
        }
        if !(self.lookahead_alpha > 0.0 && self.lookahead_alpha <= 1.0) {
            return Err(Error(format!(
                "--lookahead-alpha {} must be in (0, 1]",
                self.lookahead_alpha
            )));
        }
        if !(self.norm_lr_scale.is_finite() && self.norm_lr_scale > 0.0) {
            return Err(Error(format!(
                "--norm-lr-scale {} must be a positive number",
                self.norm_lr_scale
            )));
        }
        if self.freeze.iter().any(|p| p.trim().is_empty()) {
            return Err(Error::msg(
                "--freeze: an empty prefix would freeze everything",
            ));
        }
        check_threads(self.threads)
    }
}

/// Checks an `--image-size` height and width.
pub fn check_image_size(h: usize, w: usize) -> Result<()> {
    let max = ember_data::formats::folder::MAX_SIDE as usize;
    if h == 0 || w == 0 || h > max || w > max {
        return Err(Error(format!(
            "--image-size {h}x{w}: height and width must be from 1 to {max}"
        )));
    }
    Ok(())
}

/// Parses `HxW` (`28x28`) as `[height, width]`.
pub fn parse_image_size(text: &str) -> Result<[usize; 2], String> {
    let bad = || format!("{text:?} is not HxW (for example 32x32)");
    let (h, w) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    check_image_size(h, w).map_err(|e| e.to_string())?;
    Ok([h, w])
}

fn one() -> usize {
    1
}

fn one_f32() -> f32 {
    1.0
}

fn lookahead_alpha() -> f32 {
    0.95
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dataset: "sample".into(),
            model: "fmnist-cnn".into(),
            epochs: 10,
            batch_size: 128,
            optimizer: "sgd".into(),
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            schedule: "constant".into(),
            val_split: 0.1,
            augment: String::new(),
            label_smoothing: 0.0,
            clip_norm: 0.0,
            eval_every: 0,
            seed: 0,
            threads: 0,
            out: PathBuf::from("runs/latest"),
            limit: 0,
            max_steps: 0,
            test_every_epoch: false,
            sync_bn: false,
            log_every: 0,
            world: 1,
            image_size: None,
            test_split: None,
            init_from: None,
            freeze: Vec::new(),
            lookahead: 0,
            lookahead_alpha: lookahead_alpha(),
            norm_lr_scale: 1.0,
            tta: Tta::None,
            existing_run: ExistingRun::Refuse,
        }
    }
}
