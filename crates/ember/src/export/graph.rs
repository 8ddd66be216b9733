//! The ONNX graph of a [`ModelSpec`]'s layers: one or a few standard operators (opset 13)
//! per layer, the weights as initialisers under their `state_dict` names.

use super::onnx_proto::attribute_proto::AttributeType;
use super::onnx_proto::tensor_proto::DataType;
use super::onnx_proto::{AttributeProto, NodeProto, TensorProto};
use crate::checkpoint::{StoredTensor, TensorMap};
use crate::error::{Error, Result};
use crate::spec::{LayerSpec, Size};

/// Nodes and initialisers being collected, with the weights they are taken from.
pub(super) struct GraphBuilder<'a> {
    state: &'a TensorMap,
    /// The operators, in an order where every input is produced before it is read.
    pub nodes: Vec<NodeProto>,
    /// Weights and constants.
    pub initializers: Vec<TensorProto>,
}

fn pair(s: Size) -> [i64; 2] {
    match s {
        Size::One(v) => [v as i64, v as i64],
        Size::Two([h, w]) => [h as i64, w as i64],
    }
}

/// Kernel, stride and `[top, left, bottom, right]` padding attributes of a window operator.
fn window_attrs(kernel: Size, stride: Size, padding: Size) -> Vec<AttributeProto> {
    let [ph, pw] = pair(padding);
    vec![
        ints("kernel_shape", &pair(kernel)),
        ints("strides", &pair(stride)),
        ints("pads", &[ph, pw, ph, pw]),
    ]
}

/// `v` as string slices, the inputs [`GraphBuilder::node`] takes.
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// An attribute `name` of type `ty`, its value not yet set.
fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: values.to_vec(),
        ..attr(name, AttributeType::Ints)
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        i: Some(value),
        ..attr(name, AttributeType::Int)
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        f: Some(value),
        ..attr(name, AttributeType::Float)
    }
}

/// An f32 tensor as ONNX stores it (little-endian raw bytes).
pub(super) fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

impl<'a> GraphBuilder<'a> {
    /// A builder reading weights from `state`.
    pub fn new(state: &'a TensorMap) -> Self {
        GraphBuilder {
            state,
            nodes: Vec::new(),
            initializers: Vec::new(),
        }
    }

    /// Adds operator `op` named `name`, reading `inputs` and writing the value `name`;
    /// returns that name.
    fn node(
        &mut self,
        op: &str,
        name: String,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            name: Some(name.clone()),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.clone()],
            attribute: attrs,
            ..Default::default()
        });
        name
    }

    /// The inputs of a layer with weights: `x`, the initializer of `{at}.weight` and, with
    /// `bias`, that of `{at}.bias`.
    fn weighted_inputs(&mut self, x: String, at: &str, bias: bool) -> Result<Vec<String>> {
        let mut inputs = vec![x, self.weight(&format!("{at}.weight"))?];
        if bias {
            inputs.push(self.weight(&format!("{at}.bias"))?);
        }
        Ok(inputs)
    }

    /// The weight `name` as an initialiser (once), checked to hold `len` finite values.
    fn weight(&mut self, name: &str) -> Result<String> {
        let t: &StoredTensor = self
            .state
            .get(name)
            .ok_or_else(|| Error(format!("tensor {name} is missing from the checkpoint")))?;
        if !self
            .initializers
            .iter()
            .any(|i| i.name.as_deref() == Some(name))
        {
            self.initializers
                .push(f32_tensor(name, &t.shape, &t.to_f32()));
        }
        Ok(name.to_string())
    }

    /// A scalar constant as an initialiser.
    fn scalar(&mut self, name: String, value: f32) -> String {
        self.initializers.push(f32_tensor(&name, &[], &[value]));
        name
    }

    /// Adds the operators of `layers` (state_dict prefix `prefix`, e.g. `""` or
    /// `"3.block."`) reading the value `x`; returns the name of their output.
    pub fn layers(&mut self, layers: &[LayerSpec], prefix: &str, mut x: String) -> Result<String> {
        for (i, layer) in layers.iter().enumerate() {
            x = self.layer(layer, &format!("{prefix}{i}"), x)?;
        }
        Ok(x)
    }

    /// Adds the operators of one layer whose state_dict prefix is `at` (e.g. `3` or
    /// `3.block.0`), reading `x`; returns the name of its output.
    fn layer(&mut self, layer: &LayerSpec, at: &str, x: String) -> Result<String> {
        let out = format!("/{}", at.replace('.', "/"));
        Ok(match *layer {
            LayerSpec::Conv2d {
                kernel,
                stride,
                padding,
                dilation,
                groups,
                bias,
                ..
            } => {
                let inputs = self.weighted_inputs(x, at, bias)?;
                let mut attrs = window_attrs(kernel, stride, padding);
                attrs.push(ints("dilations", &pair(dilation)));
                attrs.push(int("group", groups as i64));
                self.node("Conv", format!("{out}/Conv"), &strs(&inputs), attrs)
            }
            LayerSpec::MaxPool2d {
                kernel,
                stride,
                padding,
            } => self.node(
                "MaxPool",
                format!("{out}/MaxPool"),
                &[&x],
                window_attrs(kernel, stride.unwrap_or(kernel), padding),
            ),
            LayerSpec::AvgPool2d {
                kernel,
                stride,
                padding,
                count_include_pad,
            } => {
                let mut attrs = window_attrs(kernel, stride.unwrap_or(kernel), padding);
                attrs.push(int("count_include_pad", i64::from(count_include_pad)));
                self.node("AveragePool", format!("{out}/AveragePool"), &[&x], attrs)
            }
            LayerSpec::GlobalAvgPool2d => self.node(
                "GlobalAveragePool",
                format!("{out}/GlobalAveragePool"),
                &[&x],
                vec![],
            ),
            LayerSpec::Linear { bias, .. } => {
                let inputs = self.weighted_inputs(x, at, bias)?;
                let attrs = vec![int("transB", 1)];
                self.node("Gemm", format!("{out}/Gemm"), &strs(&inputs), attrs)
            }
            LayerSpec::Relu => self.node("Relu", format!("{out}/Relu"), &[&x], vec![]),
            LayerSpec::LeakyRelu { slope } => self.node(
                "LeakyRelu",
                format!("{out}/LeakyRelu"),
                &[&x],
                vec![float("alpha", slope)],
            ),
            LayerSpec::Gelu => self.gelu(&out, x),
            LayerSpec::Flatten => self.node(
                "Flatten",
                format!("{out}/Flatten"),
                &[&x],
                vec![int("axis", 1)],
            ),
            // Identity at inference.
            LayerSpec::Dropout { .. } => x,
            LayerSpec::BatchNorm2d { eps, .. } => {
                let inputs = [
                    x,
                    self.weight(&format!("{at}.weight"))?,
                    self.weight(&format!("{at}.bias"))?,
                    self.weight(&format!("{at}.running_mean"))?,
                    self.weight(&format!("{at}.running_var"))?,
                ];
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.node(
                    "BatchNormalization",
                    format!("{out}/BatchNormalization"),
                    &refs,
                    vec![float("epsilon", eps)],
                )
            }
            LayerSpec::Scale { factor } => {
                let c = self.scalar(format!("{out}/factor"), factor);
                self.node("Mul", format!("{out}/Mul"), &[&x, &c], vec![])
            }
            LayerSpec::Residual {
                ref block,
                ref shortcut,
            } => {
                let main = self.layers(block, &format!("{at}.block."), x.clone())?;
                let side = match shortcut {
                    Some(s) => self.layers(s, &format!("{at}.shortcut."), x)?,
                    None => x,
                };
                self.node("Add", format!("{out}/Add"), &[&main, &side], vec![])
            }
        })
    }

    /// `x Φ(x) = 0.5 x (1 + erf(x / √2))`, the exact GELU, with opset-13 operators.
    fn gelu(&mut self, out: &str, x: String) -> String {
        let sqrt2 = self.scalar(format!("{out}/sqrt2"), std::f32::consts::SQRT_2);
        let one = self.scalar(format!("{out}/one"), 1.0);
        let half = self.scalar(format!("{out}/half"), 0.5);
        let scaled = self.node("Div", format!("{out}/Div"), &[&x, &sqrt2], vec![]);
        let erf = self.node("Erf", format!("{out}/Erf"), &[&scaled], vec![]);
        let plus = self.node("Add", format!("{out}/Add"), &[&erf, &one], vec![]);
        let times_x = self.node("Mul", format!("{out}/Mul"), &[&x, &plus], vec![]);
        self.node("Mul", format!("{out}/Mul_1"), &[&times_x, &half], vec![])
    }
}
