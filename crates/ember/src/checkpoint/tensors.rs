//! Named tensors on disk: safetensors files written atomically, read with their dtypes
//! checked, and moved in and out of a model under its `state_dict` names.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use ember_layers::Layer;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, io_error};

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

/// The folder of `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to a temporary file beside `path` (`.<name>.<pid>.tmp`), fsynced, and
/// returns its path; [`commit`] then renames it over `path`. Nothing is left behind on
/// failure, and `path` itself is untouched until the commit.
pub fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = folder_of(path);
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "cannot create folder", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io_error(path, "cannot write", e))
        }
    }
}

/// Renames `from` over `to` (atomic within a folder) and fsyncs the folder.
pub fn commit(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| {
        let _ = std::fs::remove_file(from);
        io_error(to, "cannot write", e)
    })?;
    if let Ok(d) = std::fs::File::open(folder_of(to)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename,
/// fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(path, bytes)?;
    commit(&tmp, path)
}

/// Tensors and string metadata as the bytes of one safetensors file; `path` names it in
/// errors.
pub fn encode_safetensors(
    path: &Path,
    tensors: &TensorMap,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
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
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error(format!("{}: cannot serialise: {e}", path.display())))
}

/// Writes tensors and string metadata as one safetensors file, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &TensorMap,
    metadata: HashMap<String, String>,
) -> Result<()> {
    write_atomic(path, &encode_safetensors(path, tensors, metadata)?)
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
        let data = if is_counter(name) {
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

/// True for the one kind of tensor stored as integers (batch norm's step counter).
fn is_counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Why `t` cannot be the model's tensor `name` of `shape`, if it cannot: another shape,
/// integer weights, or values that are not finite.
fn unfit(name: &str, t: &StoredTensor, shape: &[usize], len: usize) -> Option<String> {
    if t.shape.iter().product::<usize>() != len
        || (t.shape != shape && !(t.shape.is_empty() && shape.is_empty()))
    {
        return Some(format!(
            "tensor {name} has shape {:?}, the model needs {shape:?}",
            t.shape
        ));
    }
    match &t.data {
        TensorData::I64(_) if !is_counter(name) => Some(format!(
            "tensor {name} is stored as I64; weights must be F32 (only num_batches_tracked is an integer)"
        )),
        TensorData::F32(v) => {
            let bad = v.iter().filter(|x| !x.is_finite()).count();
            (bad > 0).then(|| {
                format!(
                    "tensor {name} holds NaN or infinite values ({bad} of {}): the weights \
                     diverged or are damaged",
                    v.len()
                )
            })
        }
        TensorData::I64(_) => None,
    }
}

/// What [`visit_all`] calls: a tensor's name, shape and values.
type TensorVisitor<'a> = dyn FnMut(&str, &[usize], &mut [f32]) + 'a;

/// Calls `f` with every parameter and buffer of `model`: its name, shape and values.
fn visit_all(model: &mut dyn Layer, f: &mut TensorVisitor) {
    model.visit_params("", &mut |name, p| {
        let shape = p.value.shape().dims().to_vec();
        f(name, &shape, p.value.data_mut());
    });
    model.visit_buffers("", &mut |name, t| {
        let shape = t.shape().dims().to_vec();
        f(name, &shape, t.data_mut());
    });
}

/// Loads `state` into the model strictly: every parameter and buffer must be present with
/// its shape, as F32 (I64 only for `num_batches_tracked`) and finite, and nothing else may
/// be there. `origin` names the file in errors.
pub fn load_model_state(model: &mut dyn Layer, state: &TensorMap, origin: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut names = Vec::new();
    visit_all(model, &mut |name, shape, dst| {
        names.push(name.to_string());
        match state.get(name) {
            None => problems.push(format!("missing tensor {name}")),
            Some(t) => match unfit(name, t, shape, dst.len()) {
                Some(why) => problems.push(why),
                None => dst.copy_from_slice(&t.to_f32()),
            },
        }
    });
    let extra: Vec<&String> = state.keys().filter(|k| !names.contains(k)).collect();
    if !extra.is_empty() && problems.is_empty() {
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

/// What [`load_matching_state`] did: the tensors it loaded and those it left as they were.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialLoad {
    /// Names loaded from the file.
    pub loaded: Vec<String>,
    /// Tensors of the model left as initialised, with why (absent, or another shape).
    pub kept: Vec<(String, String)>,
    /// Tensors of the file the model has no place for.
    pub unused: Vec<String>,
}

/// Loads every tensor of `state` whose name and shape match one of the model's (for
/// fine-tuning: a new head keeps its fresh initialisation). A matching tensor that is
/// integer-typed or not finite is an error naming `origin`.
pub fn load_matching_state(
    model: &mut dyn Layer,
    state: &TensorMap,
    origin: &Path,
) -> Result<PartialLoad> {
    let mut done = PartialLoad::default();
    let mut problems = Vec::new();
    visit_all(model, &mut |name, shape, dst| match state.get(name) {
        None => done.kept.push((name.to_string(), "not in the file".into())),
        Some(t) if t.shape.as_slice() != shape => done.kept.push((
            name.to_string(),
            format!("{:?} in the file, {shape:?} in the model", t.shape),
        )),
        Some(t) => match unfit(name, t, shape, dst.len()) {
            Some(why) => problems.push(why),
            None => {
                dst.copy_from_slice(&t.to_f32());
                done.loaded.push(name.to_string());
            }
        },
    });
    if !problems.is_empty() {
        return Err(Error(format!(
            "{}: {}",
            origin.display(),
            problems.join("; ")
        )));
    }
    let mut names = done.loaded.clone();
    names.extend(done.kept.iter().map(|(n, _)| n.clone()));
    done.unused = state
        .keys()
        .filter(|k| !names.contains(k))
        .cloned()
        .collect();
    Ok(done)
}
