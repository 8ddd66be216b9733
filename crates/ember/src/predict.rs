//! Inference from a checkpoint: decode an image, resize and normalise it as the checkpoint
//! says, and return class probabilities.
//!
//! A [`Classifier`] is `Send + Sync`: one loaded model serves every thread of an
//! application. Layers keep their activations in buffers of their own, so each thread that
//! predicts at the same time uses a replica of the network (built from the shared weights
//! on first need and kept for reuse): its per-thread scratch.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use ember_layers::Sequential;
use ember_layers::loss::softmax_rows;
use ember_tensor::Tensor;
use serde::Serialize;

use crate::checkpoint::{self, CheckpointMeta, TensorMap};
use crate::config::Tta;
use crate::error::{Error, Result};

/// A trained classifier loaded from a checkpoint, shareable across threads.
///
/// ```no_run
/// use std::sync::Arc;
/// let clf = Arc::new(ember::Classifier::load("runs/latest".as_ref())?);
/// let p = clf.predict_file("cat.png".as_ref())?;
/// println!("{} ({:.1}%)", p.class, 100.0 * p.probabilities[p.index]);
/// // The same model from several threads at once:
/// let handles: Vec<_> = ["a.png", "b.png"]
///     .into_iter()
///     .map(|f| {
///         let clf = Arc::clone(&clf);
///         std::thread::spawn(move || clf.predict_file(f.as_ref()))
///     })
///     .collect();
/// for h in handles {
///     println!("{}", h.join().expect("thread")?.class);
/// }
/// # Ok::<(), ember::Error>(())
/// ```
pub struct Classifier {
    meta: CheckpointMeta,
    /// The weights, from which replicas are built.
    state: Arc<TensorMap>,
    /// The checkpoint file, for messages.
    file: std::path::PathBuf,
    /// Networks not in use; a prediction takes one (or builds one) and puts it back.
    idle: Mutex<Vec<Sequential>>,
    batch: usize,
    tta: Tta,
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

/// A network borrowed from the classifier's idle list, returned to it when dropped.
struct Replica<'a> {
    owner: &'a Classifier,
    model: Option<Sequential>,
}

impl Drop for Replica<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.model.take() {
            self.owner.idle_list().push(m);
        }
    }
}

impl Classifier {
    /// Loads a checkpoint (a run folder, a `.safetensors` file or its `.json` sidecar),
    /// checking that its description fits its model (see [`CheckpointMeta::check`]).
    pub fn load(path: &Path) -> Result<Classifier> {
        let file = checkpoint::resolve(path)?;
        let (meta, model, state) = checkpoint::load_with_state(&file)?;
        Ok(Classifier {
            meta,
            state: Arc::new(state),
            file,
            idle: Mutex::new(vec![model]),
            batch: PREDICT_BATCH,
            tta: Tta::None,
        })
    }

    /// Predicts `batch` images per forward pass (at least 1) in [`predict_batch`](Self::predict_batch).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Scores every image by its test-time augmented logits (flips, optionally one-pixel
    /// shifts; see [`Tta`]), as `ember eval --tta` does; [`Tta::None`] by default.
    pub fn with_tta(mut self, tta: Tta) -> Self {
        self.tta = tta;
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

    /// The checkpoint file the classifier was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The idle networks; a panic in another thread's forward pass leaves the list usable.
    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Sequential>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle network, or a new one built from the shared weights.
    fn replica(&self) -> Result<Replica<'_>> {
        let idle = self.idle_list().pop();
        let model = match idle {
            Some(m) => m,
            None => {
                let mut m = self.meta.model.build()?;
                checkpoint::load_model_state(&mut m, &self.state, &self.file)?;
                m
            }
        };
        Ok(Replica {
            owner: self,
            model: Some(model),
        })
    }

    /// Runs `f` with a network of this checkpoint to itself (for evaluation).
    pub(crate) fn with_model<T>(&self, f: impl FnOnce(&mut Sequential) -> T) -> Result<T> {
        let mut r = self.replica()?;
        let model = r.model.as_mut().ok_or_else(|| Error::msg("no network"))?;
        Ok(f(model))
    }

    /// Predicts one image given as u8 pixels `[C, H, W]` of the checkpoint's input shape.
    pub fn predict(&self, pixels: &[u8]) -> Result<Prediction> {
        let mut out = self.predict_batch(&[pixels])?;
        out.pop().ok_or_else(|| Error::msg("no prediction"))
    }

    /// Decodes an image file (PNG, JPEG, BMP), resizes it to the input shape and predicts.
    pub fn predict_file(&self, path: &Path) -> Result<Prediction> {
        let [c, h, w] = self.meta.input_shape;
        let pixels = ember_data::load_image(path, c, h, w)?;
        self.predict(&pixels)
    }

    /// Predicts many images (u8 `[C, H, W]` each), batched. Calls from several threads run
    /// at the same time, each on a network of its own.
    pub fn predict_batch(&self, images: &[&[u8]]) -> Result<Vec<Prediction>> {
        let [c, h, w] = self.meta.input_shape;
        let per = c * h * w;
        if let Some(i) = images.iter().position(|img| img.len() != per) {
            return Err(Error(format!(
                "image {i} has {} pixel values, the model needs {per} ({c}x{h}x{w})",
                images[i].len()
            )));
        }
        let normalize = self.meta.normalize();
        let mut preds = Vec::with_capacity(images.len());
        let mut replica = self.replica()?;
        let model = replica
            .model
            .as_mut()
            .ok_or_else(|| Error::msg("no network"))?;
        for chunk in images.chunks(self.batch) {
            let mut x = Tensor::zeros([chunk.len(), c, h, w]);
            for (i, img) in chunk.iter().enumerate() {
                normalize.apply(img, c, x.item_mut(i));
            }
            // A model may end without a flatten ([N, C, 1, 1]): its rows are the logits.
            let out = crate::tta::logits(model, &x, self.tta);
            let k = out.shape().item_numel();
            let probs = softmax_rows(&out.reshape([chunk.len(), k])?);
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

#[cfg(test)]
mod tests {
    /// What the type system promises applications: one classifier for all threads.
    #[test]
    fn classifier_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<super::Classifier>();
    }
}
