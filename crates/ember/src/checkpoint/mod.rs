//! Checkpoints: safetensors weights under PyTorch `state_dict` names, with the description
//! of the run embedded in the file's metadata and copied to a JSON sidecar.
//!
//! A checkpoint `best.safetensors` loads in PyTorch with `safetensors.torch.load_file` and
//! `model.load_state_dict`. Its header metadata key `ember` holds the [`CheckpointMeta`]
//! JSON (architecture, input shape, normalisation, classes, epoch, metrics, version and a
//! SHA-256 of the tensor contents); `best.json` beside it is the same JSON for people and
//! tools. The `.safetensors` file is the source of truth: it is written whole to a temporary
//! file, fsynced and renamed over the old one, so a checkpoint is never half-written.

mod tensors;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ember_data::Normalize;
use ember_layers::Sequential;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::spec::ModelSpec;

pub use tensors::{
    PartialLoad, StoredTensor, TensorData, TensorMap, commit, content_hash, encode_safetensors,
    load_matching_state, load_model_state, model_state, read_safetensors, write_atomic,
    write_safetensors, write_temp,
};

/// The format tag written into every checkpoint.
pub const FORMAT: &str = "ember-checkpoint/1";

/// Per-channel normalisation applied to `[0, 1]` pixels before the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

/// What a checkpoint says about itself (the sidecar JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// The Ember version that wrote it.
    pub ember_version: String,
    /// The zoo name, when the model came from the zoo.
    pub zoo: Option<String>,
    /// The architecture itself.
    pub model: ModelSpec,
    /// Input `[channels, height, width]`.
    pub input_shape: [usize; 3],
    /// How pixels are normalised before the model.
    pub normalization: Normalization,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Epochs completed when written.
    pub epoch: u64,
    /// Optimizer steps completed when written.
    pub step: u64,
    /// Metrics at that point (e.g. `val_accuracy`). A value that is not finite is written
    /// as `null` and read back as NaN, so that the checkpoint stays readable.
    #[serde(deserialize_with = "metrics_with_nulls")]
    pub metrics: BTreeMap<String, f64>,
    /// SHA-256 (hex) of the tensors: names, dtypes, shapes and bytes, in name order.
    pub content_sha256: String,
    /// How the training images were read, so that `eval` reads a dataset the same way
    /// (absent in checkpoints not written by the trainer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRecord>,
}

/// How a run read its dataset: what `eval` needs to read it the same way.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    /// `--image-size`: image folders were resized to `[height, width]` on load (bilinear,
    /// as `predict` resizes), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<[usize; 2]>,
    /// `--test-split`: the fraction of a dataset without a test part held out as its test
    /// set (stratified, with `seed`), when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_split: Option<f64>,
    /// The seed of the run's splits.
    #[serde(default)]
    pub seed: u64,
    /// `--label-column` of a Parquet dataset, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// `--split-column` of a Parquet dataset, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_column: Option<String>,
}

/// Reads metrics where a non-finite value was written as `null`: NaN.
fn metrics_with_nulls<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

impl CheckpointMeta {
    /// The description of a model that no training run produced (imported weights, a
    /// benchmark's random ones): epoch 0, no metrics; `content_sha256` is filled in by
    /// [`save`].
    pub fn untrained(
        model: ModelSpec,
        zoo: Option<String>,
        classes: Vec<String>,
        normalization: Normalization,
    ) -> CheckpointMeta {
        CheckpointMeta {
            format: FORMAT.into(),
            ember_version: env!("CARGO_PKG_VERSION").into(),
            zoo,
            input_shape: model.input,
            model,
            normalization,
            classes,
            epoch: 0,
            step: 0,
            metrics: BTreeMap::new(),
            content_sha256: String::new(),
            data: None,
        }
    }

    /// Checks that the description is one the model in `model` can be used with: the
    /// input shape is the architecture's, there is a finite mean and a positive finite
    /// standard deviation per channel (or one for all), and one class name per output.
    /// `file` names the checkpoint in errors.
    pub fn check(&self, file: &Path, outputs: usize) -> Result<()> {
        let bad = |what: String| Err(Error(format!("{}: {what}", file.display())));
        if self.input_shape != self.model.input {
            return bad(format!(
                "input_shape {:?} differs from the architecture's input {:?}",
                self.input_shape, self.model.input
            ));
        }
        let norm = Normalize {
            mean: self.normalization.mean.clone(),
            std: self.normalization.std.clone(),
        };
        if let Err(e) = norm.check(self.input_shape[0]) {
            return bad(e.to_string());
        }
        if self.classes.len() != outputs {
            return bad(format!(
                "{} class names for a model with {outputs} outputs",
                self.classes.len()
            ));
        }
        Ok(())
    }

    /// The normalisation as the data loader takes it.
    pub fn normalize(&self) -> Normalize {
        Normalize {
            mean: self.normalization.mean.clone(),
            std: self.normalization.std.clone(),
        }
    }
}

/// Resolves what a user passes as `--checkpoint`: a run folder (its `best.safetensors`),
/// a `.safetensors` file, or its `.json` sidecar.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        let best = path.join("best.safetensors");
        if best.exists() {
            return Ok(best);
        }
        let last = path.join("last.safetensors");
        if last.exists() {
            return Ok(last);
        }
        return Err(Error(format!(
            "{}: no best.safetensors or last.safetensors in this folder",
            path.display()
        )));
    }
    if path.extension().is_some_and(|e| e == "json") {
        return Ok(path.with_extension("safetensors"));
    }
    if !path.exists() {
        return Err(Error(format!("{}: no such checkpoint", path.display())));
    }
    Ok(path.to_path_buf())
}

/// Saves the model with its description as `<path>` (a `.safetensors` file) and the
/// sidecar `<path minus extension>.json`. Fills in `content_sha256`.
pub fn save(path: &Path, model: &mut Sequential, meta: &mut CheckpointMeta) -> Result<()> {
    let (bytes, json) = encode(path, model, meta)?;
    write_atomic(path, &bytes)?;
    write_atomic(&path.with_extension("json"), json.as_bytes())
}

/// The bytes of checkpoint `path` and of its JSON sidecar, for writers that place the
/// files themselves. Fills in `content_sha256`.
pub fn encode(
    path: &Path,
    model: &mut Sequential,
    meta: &mut CheckpointMeta,
) -> Result<(Vec<u8>, String)> {
    let state = model_state(model);
    meta.content_sha256 = content_hash(&state);
    let json = serde_json::to_string_pretty(meta)
        .map_err(|e| Error(format!("{}: {e}", path.display())))?;
    let mut md = HashMap::new();
    md.insert("format".to_string(), "pt".to_string());
    md.insert("ember".to_string(), json.clone());
    Ok((encode_safetensors(path, &state, md)?, json))
}

/// Loads a checkpoint: checks its format and content hash, rebuilds the architecture it
/// describes and loads the weights into it.
pub fn load(path: &Path) -> Result<(CheckpointMeta, Sequential)> {
    load_with_state(path).map(|(meta, model, _)| (meta, model))
}

/// [`load`], also returning the tensors read (to build more copies of the model from).
pub fn load_with_state(path: &Path) -> Result<(CheckpointMeta, Sequential, TensorMap)> {
    let file = resolve(path)?;
    let (state, md) = read_safetensors(&file)?;
    let meta = meta_from(&file, &md)?;
    let hash = content_hash(&state);
    if hash != meta.content_sha256 {
        return Err(Error(format!(
            "{}: content hash mismatch (file {hash}, recorded {}): the checkpoint is damaged",
            file.display(),
            meta.content_sha256
        )));
    }
    let mut model = meta.model.build().map_err(|e| {
        Error(format!(
            "{}: its architecture does not build: {e}",
            file.display()
        ))
    })?;
    let outputs = meta
        .model
        .output_shape()
        .map(|s| s.item_numel())
        .unwrap_or(0);
    meta.check(&file, outputs)?;
    load_model_state(&mut model, &state, &file)?;
    Ok((meta, model, state))
}

/// The SHA-256 (hex) of a file's bytes, e.g. of a checkpoint as `sha256sum` prints it.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| crate::error::io_error(path, "cannot read", e))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The description of checkpoint `path` (a run folder, a `.safetensors` file or its
/// sidecar), without building its model.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let file = resolve(path)?;
    let (_, md) = read_safetensors(&file)?;
    meta_from(&file, &md)
}

fn meta_from(file: &Path, md: &HashMap<String, String>) -> Result<CheckpointMeta> {
    let json = md.get("ember").ok_or_else(|| {
        Error(format!(
            "{}: no Ember metadata in this safetensors file (not written by Ember?)",
            file.display()
        ))
    })?;
    let meta: CheckpointMeta = serde_json::from_str(json).map_err(|e| {
        Error(format!(
            "{}: unreadable Ember metadata: {e}",
            file.display()
        ))
    })?;
    if meta.format != FORMAT {
        return Err(Error(format!(
            "{}: format {:?}, this Ember reads {FORMAT:?}",
            file.display(),
            meta.format
        )));
    }
    Ok(meta)
}
