//! Building a run: the configuration (fresh or read back from the run folder), the data
//! and its splits, the model, the optimizer, and the state of a resumed run.

use std::path::Path;
use std::sync::Arc;

use ember_data::{Dataset, Loader, LoaderConfig, Normalize};
use ember_layers::Layer;
use ember_layers::replica::ReplicaSum;
use ember_tensor::Rng;

use super::report::reporter_for;
use super::{Output, Progress, Run};
use crate::checkpoint::{self, CheckpointMeta, Normalization};
use crate::config::TrainConfig;
use crate::distributed::{self, Group};
use crate::error::{Error, Result, io_error};
use crate::metrics::MetricsLog;
use crate::optimizer::TrainOptimizer;
use crate::{datasets, resolve_model};

impl Run {
    pub(super) fn new(
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
            reporter: reporter_for(output, cfg.log_every),
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
}

/// The training loader of a run: shuffled, augmented batches; under a group each rank
/// takes its shard of every epoch's order, so that global batch k is the same images
/// whatever the number of processes.
pub(super) fn loader_config(cfg: &TrainConfig, normalize: &Normalize, rank: usize) -> LoaderConfig {
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
