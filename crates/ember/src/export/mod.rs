//! `ember export --onnx`: a checkpoint as an ONNX model (opset 13), for other runtimes.
//!
//! Every layer a [`ModelSpec`](crate::ModelSpec) can hold maps to standard operators:
//! `Conv` (stride, padding, dilation, groups, bias), `MaxPool`, `AveragePool`
//! (`count_include_pad`), `GlobalAveragePool`, `BatchNormalization` (running statistics),
//! `Relu`, `LeakyRelu`, GELU as `x * 0.5 * (1 + Erf(x / √2))`, `Gemm` (linear, `transB`),
//! `Flatten`, `Mul` (scale) and `Add` (residual); dropout is left out (the identity at
//! inference). ReLUs that Ember fuses into a neighbour are written as their own `Relu`.
//!
//! The graph reads `input`, a float tensor `[N, C, H, W]` already normalised as the
//! checkpoint says, and writes `logits` `[N, classes]`. The model's `metadata_props` hold
//! what a caller needs around it: `classes` and `normalization` (JSON), `input_shape`,
//! `preprocessing` (the formula), the checkpoint's file and content SHA-256 and the
//! architecture (`ember_model`, JSON). The file is written with prost from the official
//! `onnx.proto` (vendored in `crates/ember/third_party/onnx/`).
//!
//! ```no_run
//! let summary = ember::export::export_onnx("runs/latest".as_ref(), "model.onnx".as_ref())?;
//! println!("{} nodes, {} bytes", summary.nodes, summary.bytes);
//! # Ok::<(), ember::Error>(())
//! ```

mod graph;
#[rustfmt::skip]
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
mod onnx_proto;

use std::path::Path;

use prost::Message;

use crate::checkpoint::{self, CheckpointMeta, TensorMap};
use crate::error::{Error, Result};
use graph::GraphBuilder;
use onnx_proto::tensor_proto::DataType;
use onnx_proto::tensor_shape_proto::{Dimension, dimension};
use onnx_proto::type_proto::{self, Tensor as TensorType};
use onnx_proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The ONNX operator set the export uses.
pub const OPSET: i64 = 13;

/// The ONNX IR version of opset 13.
const IR_VERSION: i64 = 7;

/// The graph's input and output names.
pub const INPUT: &str = "input";
/// See [`INPUT`].
pub const OUTPUT: &str = "logits";

/// What [`export_onnx`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// Operators in the graph.
    pub nodes: usize,
    /// Weight and constant tensors.
    pub initializers: usize,
    /// Size of the file.
    pub bytes: usize,
    /// The graph's input shape with a symbolic batch (`[N, C, H, W]`).
    pub input_shape: [usize; 3],
    /// Classes (outputs per image).
    pub classes: usize,
}

/// Exports the checkpoint at `checkpoint` (a run folder, a `.safetensors` file or its
/// sidecar) to `out`, written atomically. The checkpoint is loaded and checked as
/// `predict` loads it first.
pub fn export_onnx(checkpoint: &Path, out: &Path) -> Result<ExportSummary> {
    let file = checkpoint::resolve(checkpoint)?;
    let (meta, _, state) = checkpoint::load_with_state(&file)?;
    let sha = checkpoint::file_sha256(&file)?;
    let model = onnx_model(&meta, &state, &sha)?;
    let bytes = model.encode_to_vec();
    checkpoint::write_atomic(out, &bytes)?;
    let graph = model.graph.unwrap_or_default();
    Ok(ExportSummary {
        nodes: graph.node.len(),
        initializers: graph.initializer.len(),
        bytes: bytes.len(),
        input_shape: meta.input_shape,
        classes: meta.classes.len(),
    })
}

/// The ONNX bytes of a model described by `meta` with weights `state`; `file_sha256` is
/// the checkpoint file's digest, recorded in the metadata.
pub fn onnx_bytes(meta: &CheckpointMeta, state: &TensorMap, file_sha256: &str) -> Result<Vec<u8>> {
    Ok(onnx_model(meta, state, file_sha256)?.encode_to_vec())
}

fn tensor_type(dims: &[Dimension]) -> TypeProto {
    TypeProto {
        value: Some(type_proto::Value::TensorType(TensorType {
            elem_type: Some(DataType::Float as i32),
            shape: Some(TensorShapeProto { dim: dims.to_vec() }),
        })),
        ..Default::default()
    }
}

fn dim(v: usize) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimValue(v as i64)),
        ..Default::default()
    }
}

fn batch_dim() -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimParam("N".into())),
        ..Default::default()
    }
}

fn entry(key: &str, value: String) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value),
    }
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn onnx_model(meta: &CheckpointMeta, state: &TensorMap, file_sha256: &str) -> Result<ModelProto> {
    let spec = &meta.model;
    let out_shape = spec
        .output_shape()
        .map_err(|e| Error(format!("the architecture does not build: {e}")))?;
    let mut g = GraphBuilder::new(state);
    let last = g.layers(&spec.layers, "", INPUT.to_string())?;
    // Name the final value `logits`: rename what produced it, or copy the input through.
    match g.nodes.last_mut() {
        Some(node) if node.output.first() == Some(&last) => node.output = vec![OUTPUT.into()],
        _ => g.nodes.push(NodeProto {
            name: Some("/Identity".into()),
            op_type: Some("Identity".into()),
            input: vec![last],
            output: vec![OUTPUT.into()],
            ..Default::default()
        }),
    }
    let [c, h, w] = meta.input_shape;
    let out_dims: Vec<Dimension> = std::iter::once(batch_dim())
        .chain(out_shape.dims()[1..].iter().map(|&d| dim(d)))
        .collect();
    let name = spec.name.clone().unwrap_or_else(|| "ember-model".into());
    let graph = GraphProto {
        name: Some(name.clone()),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![ValueInfoProto {
            name: Some(INPUT.into()),
            r#type: Some(tensor_type(&[batch_dim(), dim(c), dim(h), dim(w)])),
            ..Default::default()
        }],
        output: vec![ValueInfoProto {
            name: Some(OUTPUT.into()),
            r#type: Some(tensor_type(&out_dims)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let props = vec![
        entry("classes", json(&meta.classes)),
        entry("normalization", json(&meta.normalization)),
        entry("input_shape", json(&meta.input_shape)),
        entry(
            "preprocessing",
            "input[n, c, y, x] = (pixel / 255 - mean[c]) / std[c]; pixels RGB (3 channels) or \
             grayscale (1), resized to input_shape; softmax over logits gives probabilities"
                .into(),
        ),
        entry("checkpoint_sha256", file_sha256.into()),
        entry("content_sha256", meta.content_sha256.clone()),
        entry("ember_model", json(spec)),
    ];
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("ember".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "{name}: {} classes, input [N, {c}, {h}, {w}] normalised (see metadata)",
            meta.classes.len()
        )),
        graph: Some(graph),
        metadata_props: props,
        ..Default::default()
    })
}
