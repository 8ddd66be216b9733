//! Scoring a model on a labelled set: accuracy, loss, per-class statistics and the
//! confusion matrix; and a checkpoint on a dataset's test part, read as it was trained.

use std::sync::Arc;

use ember_data::{Dataset, Loader, LoaderConfig, Normalize, OpenOptions};
use ember_layers::loss::softmax_cross_entropy;
use ember_layers::{Layer, Mode, Sequential};
use ember_tensor::{Tensor, simd};

use crate::config::Tta;
use crate::error::{Error, Result};
use crate::metrics::Evaluation;
use crate::predict::Classifier;
use crate::tta;

/// Images per forward pass in evaluation, unless told otherwise.
pub const EVAL_BATCH: usize = 256;

/// Scores a model on a dataset in eval mode: accuracy, loss, per-class statistics and the
/// confusion matrix.
pub fn evaluate(
    model: &mut Sequential,
    data: &Arc<Dataset>,
    normalize: &Normalize,
    classes: &[String],
) -> Result<Evaluation> {
    evaluate_batched(model, data, normalize, classes, EVAL_BATCH)
}

/// [`evaluate`] with `batch` images per forward pass.
pub fn evaluate_batched(
    model: &mut Sequential,
    data: &Arc<Dataset>,
    normalize: &Normalize,
    classes: &[String],
    batch: usize,
) -> Result<Evaluation> {
    evaluate_with(model, data, normalize, classes, batch, Tta::None)
}

/// [`evaluate_batched`] scoring each image by its test-time augmented logits.
pub fn evaluate_with(
    model: &mut Sequential,
    data: &Arc<Dataset>,
    normalize: &Normalize,
    classes: &[String],
    batch: usize,
    tta: Tta,
) -> Result<Evaluation> {
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut loss_sum = 0.0f64;
    let mut grad = Tensor::zeros([1]);
    let mut pred = Vec::new();
    let lc = LoaderConfig {
        batch_size: batch,
        shuffle: false,
        normalize: normalize.clone(),
        ..LoaderConfig::default()
    };
    for batch in Loader::new(data.clone(), lc)?.epoch(0) {
        let augmented;
        let logits = if tta == Tta::None {
            model.forward(&batch.images, Mode::Eval)
        } else {
            augmented = tta::logits(model, &batch.images, tta);
            &augmented
        };
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

/// Scores a checkpoint on the test part of a dataset (`sample`, a path, or a downloaded
/// dataset's name), read as the run read it: image folders resized to the checkpoint's
/// input, a flat folder's test part held out as training held it out, a Parquet dataset's
/// label and split columns as the run named them, the checkpoint's own normalisation. The
/// dataset must have the checkpoint's image shape and number of classes, and test images.
/// With `tta`, each image is scored by its test-time augmented logits.
pub fn evaluate_checkpoint(
    clf: &Classifier,
    dataset: &str,
    batch: usize,
    tta: Tta,
) -> Result<Evaluation> {
    evaluate_checkpoint_with(clf, dataset, batch, tta, None, None)
}

/// [`evaluate_checkpoint`] with the label and split columns of a Parquet dataset, where
/// given, instead of those the checkpoint records for the run.
pub fn evaluate_checkpoint_with(
    clf: &Classifier,
    dataset: &str,
    batch: usize,
    tta: Tta,
    label_column: Option<&str>,
    split_column: Option<&str>,
) -> Result<Evaluation> {
    let meta = clf.meta();
    let record = meta.data.clone().unwrap_or_default();
    let parquet = crate::datasets::parquet_options(
        label_column.or(record.label_column.as_deref()),
        split_column.or(record.split_column.as_deref()),
    );
    let options = OpenOptions {
        image_size: Some(meta.input_shape),
        parquet,
        ..OpenOptions::default()
    };
    let mut splits = crate::datasets::open_with(dataset, options)?;
    crate::datasets::check_columns_apply(&splits.format, dataset, label_column, split_column)?;
    if let Some(record) = &meta.data
        && let Some(fraction) = record.test_split
    {
        splits.hold_out_test(fraction, record.seed);
    }
    if splits.test.is_empty() {
        return Err(Error(format!(
            "dataset {dataset} has no test images{}",
            if splits.format == "image-folder" {
                ": a flat image folder has none unless the run held some out (`ember train \
                 --test-split`), or give a folder with train/ and test/ parts"
            } else if splits.format == ember_data::formats::parquet::FORMAT {
                ": Parquet files have none unless the run held some out (`ember train \
                 --test-split`), a split column names them (`--split-column`), or a folder \
                 has train/ and test/ parts"
            } else {
                ""
            }
        )));
    }
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
    meta.model
        .sizes()?
        .check_batch(batch.min(splits.test.len()), "--batch-size")
        .map_err(Error)?;
    let normalize = meta.normalize();
    let classes = meta.classes.clone();
    let test = Arc::new(splits.test);
    clf.with_model(|model| evaluate_with(model, &test, &normalize, &classes, batch, tta))?
}
