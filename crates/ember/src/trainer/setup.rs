//! Building a run: the configuration (fresh or read back from the run folder), the data
//! and its splits, the model (fitted to the dataset, optionally started from another
//! checkpoint), the optimizer, and the state of a resumed run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ember_data::{Dataset, Loader, LoaderConfig, Normalize, OpenOptions, Splits};
use ember_layers::replica::ReplicaSum;
use ember_layers::{Layer, Sequential};
use ember_tensor::Rng;

use super::report::{Reporter, reporter_for};
use super::{Output, Progress, Run, persist};
use crate::checkpoint::{self, CheckpointMeta, DataRecord, Normalization};
use crate::config::{DEFAULT_TEST_SPLIT, ExistingRun, TrainConfig};
use crate::distributed::{self, Group};
use crate::error::{Error, Result, io_error};
use crate::metrics::MetricsLog;
use crate::optimizer::{ModelParams, TrainOptimizer, under_prefix};
use crate::spec::{ConvInit, LayerSpec, MAX_TENSOR_ELEMENTS, ModelSpec, Size};
use crate::whiten;
use crate::{EVAL_BATCH, datasets, resolve_model_for};

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
        let (cfg, dir) = configuration(cfg, resume, size)?;
        let text = serde_json::to_string(&cfg).unwrap_or_default();
        distributed::check_agree(group.as_ref(), "the training configuration", &text)?;
        cfg.check()?;
        if lead && resume.is_none() && cfg.existing_run == ExistingRun::Refuse {
            persist::refuse_other_run(&dir)?;
        }
        let mut reporter = reporter_for(output, cfg.log_every);
        let (splits, train, val) = open_data(&cfg, reporter.as_mut())?;
        let (spec, zoo) = fit_model(&cfg, &train, &splits.format, reporter.as_mut())?;
        let sizes = spec.sizes()?;
        sizes
            .check_batch(cfg.batch_size, "--batch-size")
            .map_err(Error)?;
        let eval_batch = EVAL_BATCH.min(MAX_TENSOR_ELEMENTS / sizes.largest_per_image.max(1));
        let mut model = spec.build()?;
        model.reset_parameters(&mut Rng::new(cfg.seed));
        let normalize = Normalize::from_dataset(&train);
        if resume.is_none() {
            whiten_convs(&spec, &mut model, &train, &normalize, cfg.seed)?;
        }
        if let (Some(from), None) = (&cfg.init_from, resume) {
            init_from(&mut model, from, reporter.as_mut())?;
        }
        check_freeze(&cfg.freeze, &mut model)?;
        let meta = CheckpointMeta {
            format: checkpoint::FORMAT.into(),
            ember_version: env!("CARGO_PKG_VERSION").into(),
            zoo,
            model: spec.clone(),
            input_shape: spec.input,
            normalization: Normalization {
                mean: normalize.mean.clone(),
                std: normalize.std.clone(),
            },
            classes: train.classes().to_vec(),
            epoch: 0,
            step: 0,
            metrics: Default::default(),
            content_sha256: String::new(),
            data: Some(DataRecord {
                image_size: cfg.image_size,
                test_split: splits.held_out,
                seed: cfg.seed,
            }),
        };
        let train = Arc::new(train);
        let steps_per_epoch =
            Loader::new(train.clone(), loader_config(&cfg, &normalize, rank))?.num_batches() as u64;
        let params = ModelParams {
            fixed: spec.fixed.clone(),
            norm: spec.norm_param_names(),
        };
        let opt = TrainOptimizer::new(&cfg, &mut model, steps_per_epoch * cfg.epochs, &params)?;
        if lead {
            if resume.is_none() {
                persist::prepare_run_dir(&dir, cfg.existing_run, reporter.as_mut())?;
            }
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
        let val = val.map(&shard);
        let test = shard(splits.test);
        let mut run = Run {
            log: MetricsLog::new(&dir),
            dir,
            reporter,
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
            eval_batch,
            last_saved: None,
            last_pair: None,
            frozen_buffers: Vec::new(),
        };
        if resume.is_some() {
            run.restore()?;
        }
        run.frozen_buffers = frozen_buffers(&run.cfg.freeze, &mut run.model);
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

/// The run's configuration and folder: `cfg` for a fresh run, or the one saved in the
/// `resume` folder (extended by `cfg`'s epochs and step limit) on `size` processes.
fn configuration(
    cfg: &TrainConfig,
    resume: Option<&Path>,
    size: usize,
) -> Result<(TrainConfig, PathBuf)> {
    let (mut cfg, dir) = match resume {
        Some(dir) => {
            let path = dir.join("config.json");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| io_error(&path, "cannot read the run's configuration", e))?;
            let mut saved: TrainConfig = serde_json::from_str(&text)
                .map_err(|e| Error(format!("{}: unreadable configuration: {e}", path.display())))?;
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
    Ok((cfg, dir))
}

/// The parts of the dataset beside the training images: its test part, its format, and
/// the fraction held out of the training images as the test part, if any.
struct RunSplits {
    test: Dataset,
    format: String,
    held_out: Option<f64>,
}

/// Mixed into the seed of the `--limit` sample, so that it is not the validation split's draw.
const LIMIT_STREAM: u64 = 0x11a1_75a3_11a1_75a3;

/// Opens the dataset (image folders resized as asked), holds out a test part when it has
/// none, and splits the training part into training and validation images.
fn open_data(
    cfg: &TrainConfig,
    reporter: &mut dyn Reporter,
) -> Result<(RunSplits, Dataset, Option<Dataset>)> {
    let options = OpenOptions {
        resize: cfg.image_size,
        ..OpenOptions::default()
    };
    let mut splits = datasets::open_with(&cfg.dataset, options)?;
    let held_out = if splits.test.is_empty() {
        let fraction = cfg.test_split.unwrap_or(DEFAULT_TEST_SPLIT);
        splits.hold_out_test(fraction, cfg.seed);
        (fraction > 0.0).then_some(fraction)
    } else if let Some(t) = cfg.test_split {
        return Err(Error(format!(
            "--test-split {t}: dataset {} has a test part of its own ({} images)",
            cfg.dataset,
            splits.test.len()
        )));
    } else {
        None
    };
    let Splits {
        format,
        mut train,
        test,
    } = splits;
    if cfg.limit > 0 && cfg.limit < train.len() {
        // Not the first images: a folder lists them class by class.
        let all = train.len();
        train = train.stratified_sample(cfg.limit, cfg.seed ^ LIMIT_STREAM);
        reporter.note(&format!(
            "--limit {}: training on a random sample of {} of the {all} training images, \
             each class in its proportion (seed {})",
            cfg.limit,
            train.len(),
            cfg.seed
        ));
    }
    let (train, val) = if cfg.val_split > 0.0 {
        let (t, v) = train.split(cfg.val_split, cfg.seed, true);
        (t, Some(v))
    } else {
        (train, None)
    };
    if train.is_empty() {
        return Err(Error(format!(
            "dataset {}: no training images left after the split",
            cfg.dataset
        )));
    }
    let run = RunSplits {
        test,
        format,
        held_out,
    };
    Ok((run, train, val))
}

/// The model `cfg` names, fitted to the training images: a spec file without `input`
/// takes theirs, and a zoo model gets a last layer with one output per class.
fn fit_model(
    cfg: &TrainConfig,
    train: &Dataset,
    format: &str,
    reporter: &mut dyn Reporter,
) -> Result<(ModelSpec, Option<String>)> {
    let shape = train.shape();
    let (spec, zoo) = resolve_model_for(&cfg.model, Some(shape))?;
    if spec.input != shape {
        let hint = if format == "image-folder" {
            format!(
                "; --image-size {}x{} resizes the folder's images",
                spec.input[1], spec.input[2]
            )
        } else {
            "; a model file without `input` takes the dataset's".into()
        };
        return Err(Error(format!(
            "model {} expects input {:?} but dataset {} has images {:?}{hint}",
            cfg.model, spec.input, cfg.dataset, shape
        )));
    }
    let classes = train.classes().len();
    let outputs = spec.output_shape()?.item_numel();
    if outputs == classes {
        return Ok((spec, zoo));
    }
    match (&zoo, spec.with_classes(classes)) {
        (Some(name), Some((fitted, old))) => {
            reporter.note(&format!(
                "{name}: last layer resized from {old} to {classes} outputs for the {classes} \
                 classes of {}",
                cfg.dataset
            ));
            Ok((fitted, zoo))
        }
        _ => Err(Error(format!(
            "model {} has {outputs} outputs but dataset {} has {classes} classes",
            cfg.model, cfg.dataset
        ))),
    }
}

/// `--init-from`: loads every tensor of checkpoint `from` whose name and shape match, and
/// says which tensors kept their fresh initialisation.
fn init_from(model: &mut Sequential, from: &Path, reporter: &mut dyn Reporter) -> Result<()> {
    let file = checkpoint::resolve(from)?;
    let (state, _) = checkpoint::read_safetensors(&file)?;
    let done = checkpoint::load_matching_state(model, &state, &file)?;
    if done.loaded.is_empty() {
        return Err(Error(format!(
            "--init-from {}: no tensor of the file matches the model by name and shape",
            file.display()
        )));
    }
    let kept: Vec<String> = done
        .kept
        .iter()
        .map(|(name, why)| format!("{name} ({why})"))
        .collect();
    reporter.note(&format!(
        "--init-from {}: loaded {} tensors; re-initialised {}{}",
        file.display(),
        done.loaded.len(),
        if kept.is_empty() {
            "none".to_string()
        } else {
            kept.join(", ")
        },
        if done.unused.is_empty() {
            String::new()
        } else {
            format!("; not used from the file: {}", done.unused.join(", "))
        }
    ));
    Ok(())
}

/// Sets the weights of the top-level convolutions whose spec says `init = "whiten"` from the
/// training images.
fn whiten_convs(
    spec: &ModelSpec,
    model: &mut Sequential,
    train: &Dataset,
    normalize: &Normalize,
    seed: u64,
) -> Result<()> {
    for (i, layer) in spec.layers.iter().enumerate() {
        let LayerSpec::Conv2d {
            out,
            kernel,
            stride,
            init: ConvInit::Whiten,
            ..
        } = layer
        else {
            continue;
        };
        if i != 0 || *stride != Size::One(1) {
            return Err(Error(format!(
                "layer {i}: init = \"whiten\" needs the model's first layer, with stride 1"
            )));
        }
        let k = match *kernel {
            Size::One(k) => (k, k),
            Size::Two([kh, kw]) => (kh, kw),
        };
        let weight = whiten::whitening_weights(train, normalize, k, *out, seed)?;
        let name = format!("{i}.weight");
        model.visit_params("", &mut |n, p| {
            if n == name {
                p.value.data_mut().copy_from_slice(&weight);
            }
        });
    }
    Ok(())
}

/// Checks that every `--freeze` prefix names at least one parameter.
fn check_freeze(prefixes: &[String], model: &mut Sequential) -> Result<()> {
    let names = model.param_names();
    for p in prefixes {
        if !names.iter().any(|n| under_prefix(n, p)) {
            return Err(Error(format!(
                "--freeze {p}: no parameter lies under it; the parameters are {}",
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// The buffers (batch-norm running statistics) under the `--freeze` prefixes, as they are.
fn frozen_buffers(prefixes: &[String], model: &mut Sequential) -> Vec<(String, Vec<f32>)> {
    let mut kept = Vec::new();
    if prefixes.is_empty() {
        return kept;
    }
    model.visit_buffers("", &mut |name, t| {
        if prefixes.iter().any(|p| under_prefix(name, p)) {
            kept.push((name.to_string(), t.to_vec()));
        }
    });
    kept
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Notes collected instead of printed.
    #[derive(Default)]
    struct Notes(Vec<String>);

    impl Reporter for Notes {
        fn note(&mut self, line: &str) {
            self.0.push(line.to_string());
        }
    }

    /// `--limit` on a folder listed class by class takes every class, in proportion, and
    /// says so; the same seed takes the same images.
    #[test]
    fn limit_takes_a_seeded_stratified_sample() {
        let root = std::env::temp_dir().join(format!("ember-limit-{}", std::process::id()));
        for (k, class) in ["a", "b", "c", "d"].iter().enumerate() {
            std::fs::create_dir_all(root.join(class)).unwrap();
            for i in 0..25u8 {
                let img = image::GrayImage::from_pixel(4, 4, image::Luma([k as u8 * 40 + i]));
                img.save(root.join(class).join(format!("{i}.png"))).unwrap();
            }
        }
        let cfg = TrainConfig {
            dataset: root.display().to_string(),
            limit: 40,
            test_split: Some(0.2),
            val_split: 0.0,
            seed: 5,
            ..TrainConfig::default()
        };
        let mut notes = Notes::default();
        let (_, train, _) = open_data(&cfg, &mut notes).unwrap();
        assert_eq!(train.class_counts(), vec![10, 10, 10, 10]);
        assert!(
            notes
                .0
                .iter()
                .any(|n| n.contains("random sample of 40 of the 80")),
            "{:?}",
            notes.0
        );
        let (_, again, _) = open_data(&cfg, &mut Notes::default()).unwrap();
        assert_eq!(again, train);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
