//! # ember
//!
//! The whole image-classification workflow on top of the Ember crates: prepare data, define
//! a CNN (zoo or spec file), train it with periodic validation keeping the best model,
//! evaluate it, persist it and use it for inference — as a library and as the `ember`
//! command line.
//!
//! ```no_run
//! use ember::{TrainConfig, trainer::{train, Output}};
//! let cfg = TrainConfig { epochs: 2, out: "runs/demo".into(), ..TrainConfig::default() };
//! let report = train(&cfg, None, Output::Quiet)?;
//! println!("test accuracy {:.3}", report.test_accuracy);
//! let mut clf = ember::Classifier::load(&report.run_dir)?;
//! # Ok::<(), ember::Error>(())
//! ```

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod datasets;
pub mod distributed;
pub mod error;
pub mod info;
pub mod metrics;
pub mod optimizer;
pub mod plot;
pub mod predict;
pub mod spec;
pub mod trainer;
pub mod zoo;

use std::path::Path;
use std::sync::Arc;

use ember_data::{Dataset, Loader, LoaderConfig, Normalize};
use ember_layers::loss::softmax_cross_entropy;
use ember_layers::{Layer, Mode, Sequential};
use ember_tensor::{Tensor, simd};

pub use config::TrainConfig;
pub use error::{Error, Result};
pub use metrics::Evaluation;
pub use predict::{Classifier, Prediction};
pub use spec::ModelSpec;

/// Resolves `--model`: a zoo name or a spec file. Returns the spec and the zoo name.
pub fn resolve_model(name: &str) -> Result<(ModelSpec, Option<String>)> {
    if let Some(spec) = zoo::get(name) {
        return Ok((spec, Some(name.to_string())));
    }
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error::io_error(path, "cannot read model spec", e))?;
        return Ok((ModelSpec::from_toml(&text, name)?, None));
    }
    Err(Error(format!(
        "unknown model {name:?}: use one of {:?} or a spec file (*.toml)",
        zoo::NAMES
    )))
}

/// Images per forward pass in evaluation.
const EVAL_BATCH: usize = 256;

/// Scores a model on a dataset in eval mode: accuracy, loss, per-class statistics and the
/// confusion matrix.
pub fn evaluate(
    model: &mut Sequential,
    data: &Arc<Dataset>,
    normalize: &Normalize,
    classes: &[String],
) -> Result<Evaluation> {
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut loss_sum = 0.0f64;
    let mut grad = Tensor::zeros([1]);
    let mut pred = Vec::new();
    let lc = LoaderConfig {
        batch_size: EVAL_BATCH,
        shuffle: false,
        normalize: normalize.clone(),
        ..LoaderConfig::default()
    };
    for batch in Loader::new(data.clone(), lc)?.epoch(0) {
        let logits = model.forward(&batch.images, Mode::Eval);
        let n = batch.labels.len();
        if logits.shape().item_numel() != k {
            return Err(Error(format!(
                "the model gives {} outputs for a dataset with {k} classes",
                logits.shape().item_numel()
            )));
        }
        loss_sum += softmax_cross_entropy(logits, &batch.labels, 0.0, &mut grad) as f64 * n as f64;
        pred.resize(n, 0);
        simd::argmax_rows(logits.data(), k, &mut pred);
        for (&p, &t) in pred.iter().zip(&batch.labels) {
            confusion[t][p] += 1;
        }
    }
    Ok(Evaluation::from_confusion(confusion, loss_sum, classes))
}

/// Scores a checkpoint on the test split of a dataset (`sample`, a path, or a downloaded
/// dataset's name), with the checkpoint's own normalisation. The dataset must have the
/// checkpoint's image shape and number of classes.
pub fn evaluate_checkpoint(clf: &mut Classifier, dataset: &str) -> Result<Evaluation> {
    let splits = datasets::open(dataset)?;
    let (model, meta) = clf.parts();
    if splits.test.shape() != meta.input_shape {
        return Err(Error(format!(
            "dataset {dataset} has images {:?}, the checkpoint expects {:?}",
            splits.test.shape(),
            meta.input_shape
        )));
    }
    if splits.test.classes().len() != meta.classes.len() {
        return Err(Error(format!(
            "dataset {dataset} has {} classes, the checkpoint {}",
            splits.test.classes().len(),
            meta.classes.len()
        )));
    }
    let normalize = Normalize {
        mean: meta.normalization.mean.clone(),
        std: meta.normalization.std.clone(),
    };
    let classes = meta.classes.clone();
    evaluate(model, &Arc::new(splits.test), &normalize, &classes)
}
