//! The training configuration: every `ember train` option, saved in the run folder as
//! `config.json` so that `--resume` continues exactly the same run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
}

fn one() -> usize {
    1
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
        }
    }
}
