//! `ember import`: a PyTorch `state_dict` saved with `safetensors.torch.save_file` becomes
//! an Ember run folder (`best.safetensors` + `best.json`) that `eval`, `predict`, `serve`
//! and `export` take.
//!
//! The architecture comes from a zoo name or a spec file; every tensor of the file is
//! checked against the model's by name, shape and dtype, and each mismatch is listed. The
//! class names and the normalisation the weights were trained with are given by the user
//! (a `state_dict` carries neither).
//!
//! ```no_run
//! use ember::import::{ImportOptions, import_state_dict};
//! let opts = ImportOptions {
//!     state_dict: "fmnist.safetensors".into(),
//!     model: "fmnist-cnn".into(),
//!     classes: (0..10).map(|i| format!("class{i}")).collect(),
//!     mean: vec![0.2860],
//!     std: vec![0.3530],
//!     out: "runs/imported".into(),
//!     force: false,
//! };
//! let report = import_state_dict(&opts)?;
//! println!("{} tensors into {}", report.tensors, report.checkpoint.display());
//! # Ok::<(), ember::Error>(())
//! ```

use std::path::PathBuf;

use ember_data::Normalize;

use crate::checkpoint::{self, CheckpointMeta, Normalization, TensorMap};
use crate::error::{Error, Result};

/// What to import and where.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportOptions {
    /// The safetensors file of the `state_dict`.
    pub state_dict: PathBuf,
    /// A zoo name (its last linear layer gets one output per class) or a spec file.
    pub model: String,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Per-channel mean of `[0, 1]` pixels (one value for all channels, or one each).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
    /// The run folder to write.
    pub out: PathBuf,
    /// Replace a checkpoint already in `out`.
    pub force: bool,
}

/// What [`import_state_dict`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportReport {
    /// The checkpoint written (`out/best.safetensors`).
    pub checkpoint: PathBuf,
    /// Tensors imported.
    pub tensors: usize,
    /// Trainable parameters.
    pub params: usize,
    /// The model's name.
    pub model: String,
}

/// The first key prefix shared by every name (`module.`, `model.`), if there is one.
fn common_prefix(names: &[&String]) -> Option<String> {
    let first = names.first()?;
    let dot = first.find('.')?;
    let prefix = &first[..=dot];
    (prefix.parse::<usize>().is_err()
        && prefix.trim_end_matches('.').parse::<usize>().is_err()
        && names.iter().all(|n| n.starts_with(prefix)))
    .then(|| prefix.to_string())
}

/// Every way `file` differs from what `model` needs, one line each: missing tensors,
/// tensors of another shape or dtype, values that are not finite, and tensors the model
/// has no place for.
fn mismatches(model: &mut ember_layers::Sequential, file: &TensorMap) -> Vec<String> {
    let mut problems = Vec::new();
    // In the model's order, so that the list reads like the architecture.
    let mut wanted: Vec<(String, Vec<usize>)> = Vec::new();
    let mut want = |name: &str, dims: &[usize]| wanted.push((name.to_string(), dims.to_vec()));
    use ember_layers::Layer;
    model.visit_params("", &mut |n, p| want(n, p.value.shape().dims()));
    model.visit_buffers("", &mut |n, t| want(n, t.shape().dims()));
    for (name, dims) in &wanted {
        match file.get(name) {
            None => problems.push(format!("missing tensor {name} (shape {dims:?})")),
            Some(t) if &t.shape != dims => problems.push(format!(
                "tensor {name} has shape {:?}, the model needs {dims:?}",
                t.shape
            )),
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    let extra: Vec<&String> = file
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .collect();
    for name in &extra {
        problems.push(format!("unexpected tensor {name} (not in the model)"));
    }
    if !extra.is_empty() {
        let all: Vec<&String> = file.keys().collect();
        if let Some(p) = common_prefix(&all) {
            problems.push(format!(
                "every name in the file starts with {p:?}: save the inner module's state_dict \
                 (for example `model.module.state_dict()`), whose names start with the layer index"
            ));
        }
    }
    problems
}

/// Imports a `state_dict` as described by `opts`; see the module docs.
pub fn import_state_dict(opts: &ImportOptions) -> Result<ImportReport> {
    let (spec, zoo) = crate::resolve_model(&opts.model)?;
    if spec.input == crate::spec::NO_INPUT {
        return Err(Error(format!(
            "--model {}: the spec file has no `input = [channels, height, width]`, which an \
             imported model needs",
            opts.model
        )));
    }
    if opts.classes.iter().any(|c| c.trim().is_empty()) {
        return Err(Error::msg("--classes: a class name is empty"));
    }
    let spec = match (&zoo, spec.with_classes(opts.classes.len())) {
        (Some(_), Some((s, _))) => s,
        _ => spec,
    };
    let outputs = spec
        .output_shape()
        .map_err(|e| Error(format!("--model {}: {e}", opts.model)))?
        .item_numel();
    if outputs != opts.classes.len() {
        return Err(Error(format!(
            "--classes gives {} names, the model has {outputs} outputs",
            opts.classes.len()
        )));
    }
    let norm = Normalize {
        mean: opts.mean.clone(),
        std: opts.std.clone(),
    };
    norm.check(spec.input[0])
        .map_err(|e| Error(format!("--mean/--std: {e}")))?;
    let (state, _) = checkpoint::read_safetensors(&opts.state_dict)?;
    let mut model = spec.build()?;
    let problems = mismatches(&mut model, &state);
    if !problems.is_empty() {
        return Err(Error(format!(
            "{}: does not fit {} ({} problem{}):\n  {}",
            opts.state_dict.display(),
            spec.name.as_deref().unwrap_or(&opts.model),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        )));
    }
    // Shapes match: the strict load now checks dtypes and finiteness, and fills the model.
    checkpoint::load_model_state(&mut model, &state, &opts.state_dict)?;
    let best = opts.out.join("best.safetensors");
    if best.exists() && !opts.force {
        return Err(Error(format!(
            "{}: a checkpoint is already there; use --force to replace it or another --out",
            best.display()
        )));
    }
    let mut meta = CheckpointMeta::untrained(
        spec.clone(),
        zoo,
        opts.classes.clone(),
        Normalization {
            mean: opts.mean.clone(),
            std: opts.std.clone(),
        },
    );
    checkpoint::save(&best, &mut model, &mut meta)?;
    Ok(ImportReport {
        checkpoint: best,
        tensors: state.len(),
        params: model.num_params(),
        model: spec.name.clone().unwrap_or_else(|| opts.model.clone()),
    })
}
