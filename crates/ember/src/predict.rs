//! Inference from a checkpoint: decode an image, resize and normalise it as the checkpoint
//! says, and return class probabilities.

use std::path::Path;

use ember_layers::loss::softmax_rows;
use ember_layers::{Layer, Mode, Sequential};
use ember_tensor::Tensor;
use serde::Serialize;

use crate::checkpoint::{self, CheckpointMeta};
use crate::error::{Error, Result};

/// A trained classifier loaded from a checkpoint.
///
/// ```no_run
/// let mut clf = ember::Classifier::load("runs/latest".as_ref())?;
/// let p = clf.predict_file("cat.png".as_ref())?;
/// println!("{} ({:.1}%)", p.class, 100.0 * p.probabilities[p.index]);
/// # Ok::<(), ember::Error>(())
/// ```
pub struct Classifier {
    meta: CheckpointMeta,
    model: Sequential,
    batch: usize,
}

/// The prediction for one image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The most probable class's index.
    pub index: usize,
    /// Its name.
    pub class: String,
    /// Probabilities of every class, in label order.
    pub probabilities: Vec<f32>,
}

impl Prediction {
    /// The `k` most probable classes, best first: (index, name, probability).
    pub fn top_k(&self, k: usize, classes: &[String]) -> Vec<(usize, String, f32)> {
        let mut idx: Vec<usize> = (0..self.probabilities.len()).collect();
        idx.sort_by(|&a, &b| self.probabilities[b].total_cmp(&self.probabilities[a]));
        idx.into_iter()
            .take(k)
            .map(|i| {
                (
                    i,
                    classes.get(i).cloned().unwrap_or_else(|| i.to_string()),
                    self.probabilities[i],
                )
            })
            .collect()
    }
}

/// Images per forward pass when predicting many, unless told otherwise.
pub const PREDICT_BATCH: usize = 64;

impl Classifier {
    /// Loads a checkpoint (a run folder, a `.safetensors` file or its `.json` sidecar),
    /// checking that its description fits its model (see [`CheckpointMeta::check`]).
    pub fn load(path: &Path) -> Result<Classifier> {
        let (meta, model) = checkpoint::load(path)?;
        Ok(Classifier {
            meta,
            model,
            batch: PREDICT_BATCH,
        })
    }

    /// Predicts `batch` images per forward pass (at least 1) in [`predict_batch`](Self::predict_batch).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Class names in label order.
    pub fn classes(&self) -> &[String] {
        &self.meta.classes
    }

    /// What the checkpoint says about itself.
    pub fn meta(&self) -> &CheckpointMeta {
        &self.meta
    }

    /// The model and the checkpoint description, for evaluation.
    pub(crate) fn parts(&mut self) -> (&mut Sequential, &CheckpointMeta) {
        (&mut self.model, &self.meta)
    }

    /// Predicts one image given as u8 pixels `[C, H, W]` of the checkpoint's input shape.
    pub fn predict(&mut self, pixels: &[u8]) -> Result<Prediction> {
        let mut out = self.predict_batch(&[pixels])?;
        out.pop().ok_or_else(|| Error::msg("no prediction"))
    }

    /// Decodes an image file (PNG, JPEG, BMP), resizes it to the input shape and predicts.
    pub fn predict_file(&mut self, path: &Path) -> Result<Prediction> {
        let [c, h, w] = self.meta.input_shape;
        let pixels = ember_data::load_image(path, c, h, w)?;
        self.predict(&pixels)
    }

    /// Predicts many images (u8 `[C, H, W]` each), batched.
    pub fn predict_batch(&mut self, images: &[&[u8]]) -> Result<Vec<Prediction>> {
        let [c, h, w] = self.meta.input_shape;
        let per = c * h * w;
        let normalize = self.meta.normalize();
        let mut preds = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch) {
            let mut x = Tensor::zeros([chunk.len(), c, h, w]);
            for (i, img) in chunk.iter().enumerate() {
                if img.len() != per {
                    return Err(Error(format!(
                        "image {} has {} pixels values, the model needs {per} ({c}x{h}x{w})",
                        preds.len() + i,
                        img.len()
                    )));
                }
                normalize.apply(img, c, x.item_mut(i));
            }
            let probs = softmax_rows(self.model.forward(&x, Mode::Eval));
            let k = probs.shape().item_numel();
            for i in 0..chunk.len() {
                let p = probs.item(i).to_vec();
                let index = (0..k).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
                preds.push(Prediction {
                    index,
                    class: self
                        .meta
                        .classes
                        .get(index)
                        .cloned()
                        .unwrap_or_else(|| index.to_string()),
                    probabilities: p,
                });
            }
        }
        Ok(preds)
    }
}
