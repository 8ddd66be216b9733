//! Checkpoints: safetensors weights under PyTorch `state_dict` names, with the description
//! of the run embedded in the file's metadata and copied to a JSON sidecar.
//!
//! A checkpoint `best.safetensors` loads in PyTorch with `safetensors.torch.load_file` and
//! `model.load_state_dict`. Its header metadata key `ember` holds the [`CheckpointMeta`]
//! JSON (architecture, input shape, normalisation, classes, epoch, metrics, version and a
//! SHA-256 of the tensor contents); `best.json` beside it is the same JSON for people and
//! tools. The `.safetensors` file is the source of truth: it is written whole to a temporary
//! file, fsynced and renamed over the old one, so a checkpoint is never half-written.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use ember_layers::{Layer, Sequential};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, io_error};
use crate::spec::ModelSpec;

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
    /// Metrics at that point (e.g. `val_accuracy`).
    pub metrics: BTreeMap<String, f64>,
    /// SHA-256 (hex) of the tensors: names, dtypes, shapes and bytes, in name order.
    pub content_sha256: String,
}

/// Tensor contents as stored.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit integers (PyTorch's `num_batches_tracked`).
    I64(Vec<i64>),
}

/// A tensor as stored in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its contents.
    pub data: TensorData,
}

impl StoredTensor {
    fn bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    fn dtype(&self) -> Dtype {
        match self.data {
            TensorData::F32(_) => Dtype::F32,
            TensorData::I64(_) => Dtype::I64,
        }
    }

    /// The values as f32 (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// Named tensors in name order.
pub type TensorMap = BTreeMap<String, StoredTensor>;

/// SHA-256 (hex) over names, dtypes, shapes and little-endian bytes, in name order.
pub fn content_hash(tensors: &TensorMap) -> String {
    let mut h = Sha256::new();
    for (name, t) in tensors {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(format!("{:?}", t.dtype()).as_bytes());
        for d in &t.shape {
            h.update((*d as u64).to_le_bytes());
        }
        h.update(t.bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename,
/// fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "cannot create folder", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, "cannot write", e)
    })
}

/// Writes tensors and string metadata as one safetensors file, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &TensorMap,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, &StoredTensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.bytes(), t))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, t)| {
            TensorView::new(t.dtype(), t.shape.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error(format!("{}: tensor {n}: {e}", path.display())))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error(format!("{}: cannot serialise: {e}", path.display())))?;
    write_atomic(path, &out)
}

/// Reads a safetensors file: its tensors (F32 and I64 only) and its string metadata.
pub fn read_safetensors(path: &Path) -> Result<(TensorMap, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, "cannot read checkpoint", e))?;
    let bad = |what: String| {
        Error(format!(
            "{}: not a valid safetensors checkpoint: {what}",
            path.display()
        ))
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut map = TensorMap::new();
    for (name, view) in st.iter() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => TensorData::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::I64 => TensorData::I64(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            other => {
                return Err(bad(format!(
                    "tensor {name} has dtype {other:?}; only F32 and I64 are supported"
                )));
            }
        };
        map.insert(
            name.to_string(),
            StoredTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((map, header.metadata().clone().unwrap_or_default()))
}

/// The model's parameters and buffers under their `state_dict` names.
/// `num_batches_tracked` is stored as I64, as PyTorch does.
pub fn model_state(model: &mut dyn Layer) -> TensorMap {
    let mut map = TensorMap::new();
    model.visit_params("", &mut |name, p| {
        map.insert(
            name.to_string(),
            StoredTensor {
                shape: p.value.shape().dims().to_vec(),
                data: TensorData::F32(p.value.to_vec()),
            },
        );
    });
    model.visit_buffers("", &mut |name, t| {
        let data = if name.ends_with("num_batches_tracked") {
            TensorData::I64(t.data().iter().map(|&x| x as i64).collect())
        } else {
            TensorData::F32(t.to_vec())
        };
        map.insert(
            name.to_string(),
            StoredTensor {
                shape: t.shape().dims().to_vec(),
                data,
            },
        );
    });
    map
}

/// Loads `state` into the model strictly: every parameter and buffer must be present with
/// its shape, and nothing else may be there. `origin` names the file in errors.
pub fn load_model_state(model: &mut dyn Layer, state: &TensorMap, origin: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut used = 0usize;
    let mut take = |name: &str, shape: &[usize], dst: &mut [f32]| match state.get(name) {
        None => problems.push(format!("missing tensor {name}")),
        Some(t)
            if t.shape.iter().product::<usize>() != dst.len()
                || (t.shape != shape && !(t.shape.is_empty() && shape.is_empty())) =>
        {
            problems.push(format!(
                "tensor {name} has shape {:?}, the model needs {:?}",
                t.shape, shape
            ))
        }
        Some(t) => {
            used += 1;
            dst.copy_from_slice(&t.to_f32());
        }
    };
    model.visit_params("", &mut |name, p| {
        let shape = p.value.shape().dims().to_vec();
        take(name, &shape, p.value.data_mut());
    });
    model.visit_buffers("", &mut |name, t| {
        let shape = t.shape().dims().to_vec();
        take(name, &shape, t.data_mut());
    });
    if used < state.len() && problems.is_empty() {
        let mut names = Vec::new();
        model.visit_params("", &mut |n, _| names.push(n.to_string()));
        model.visit_buffers("", &mut |n, _| names.push(n.to_string()));
        let extra: Vec<&String> = state.keys().filter(|k| !names.contains(k)).collect();
        problems.push(format!(
            "unexpected tensors {extra:?} (a checkpoint of another architecture?)"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error(format!(
            "{}: does not fit the model: {}",
            origin.display(),
            problems.join("; ")
        )))
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
    let state = model_state(model);
    meta.content_sha256 = content_hash(&state);
    let json = serde_json::to_string_pretty(meta)
        .map_err(|e| Error(format!("{}: {e}", path.display())))?;
    let mut md = HashMap::new();
    md.insert("format".to_string(), "pt".to_string());
    md.insert("ember".to_string(), json.clone());
    write_safetensors(path, &state, md)?;
    write_atomic(&path.with_extension("json"), json.as_bytes())
}

/// Loads a checkpoint: checks its format and content hash, rebuilds the architecture it
/// describes and loads the weights into it.
pub fn load(path: &Path) -> Result<(CheckpointMeta, Sequential)> {
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
    load_model_state(&mut model, &state, &file)?;
    Ok((meta, model))
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
