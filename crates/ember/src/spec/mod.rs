//! Model specifications: a network described as data (the Sequential API as a TOML file),
//! validated by shape propagation and built into an `ember_layers::Sequential`.
//!
//! ```toml
//! name = "tiny"
//! input = [1, 28, 28]          # channels, height, width
//!
//! [[layer]]
//! type = "conv2d"
//! out = 8                      # input channels are inferred
//! kernel = 3
//! padding = 1
//!
//! [[layer]]
//! type = "relu"
//!
//! [[layer]]
//! type = "max_pool2d"
//! kernel = 2
//!
//! [[layer]]
//! type = "flatten"
//!
//! [[layer]]
//! type = "linear"
//! out = 10                     # input features are inferred
//! ```
//! Residual blocks nest: `type = "residual"` with `[[layer.block]]` tables and optional
//! `[[layer.shortcut]]` tables.

use std::ops::Range;

use ember_layers::conv::Conv2d;
use ember_layers::pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};
use ember_layers::{
    BatchNorm2d, Dropout, Flatten, Layer, LeakyReLU, Linear, ReLU, Residual, Scale, Sequential,
};
use ember_tensor::Shape;
use serde::{Deserialize, Serialize};

/// A size given as one number (both sides) or `[height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// The same size on both sides.
    One(usize),
    /// `[height, width]`.
    Two([usize; 2]),
}

impl Size {
    fn pair(self) -> (usize, usize) {
        match self {
            Size::One(v) => (v, v),
            Size::Two([h, w]) => (h, w),
        }
    }
}

fn one() -> Size {
    Size::One(1)
}
fn zero() -> Size {
    Size::One(0)
}
fn yes() -> bool {
    true
}
fn one_group() -> usize {
    1
}
fn slope() -> f32 {
    0.01
}
fn bn_eps() -> f32 {
    1e-5
}
fn bn_momentum() -> f32 {
    0.1
}

/// One layer of a [`ModelSpec`]. Input sizes (channels, features) are inferred.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `Conv2d`; weights `[out, in/groups, kh, kw]`.
    Conv2d {
        /// Output channels.
        out: usize,
        /// Kernel size.
        kernel: Size,
        /// Stride (default 1).
        #[serde(default = "one")]
        stride: Size,
        /// Zero padding (default 0).
        #[serde(default = "zero")]
        padding: Size,
        /// Dilation (default 1).
        #[serde(default = "one")]
        dilation: Size,
        /// Groups (default 1).
        #[serde(default = "one_group")]
        groups: usize,
        /// Whether there is a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `MaxPool2d`; stride defaults to the kernel size.
    MaxPool2d {
        /// Window size.
        kernel: Size,
        /// Stride (default: the kernel size).
        #[serde(default)]
        stride: Option<Size>,
        /// Padding (default 0).
        #[serde(default = "zero")]
        padding: Size,
    },
    /// `AvgPool2d`; stride defaults to the kernel size.
    AvgPool2d {
        /// Window size.
        kernel: Size,
        /// Stride (default: the kernel size).
        #[serde(default)]
        stride: Option<Size>,
        /// Padding (default 0).
        #[serde(default = "zero")]
        padding: Size,
        /// Whether padding counts in the divisor (default true, as PyTorch).
        #[serde(default = "yes")]
        count_include_pad: bool,
    },
    /// Global average pooling to `[N, C, 1, 1]`.
    GlobalAvgPool2d,
    /// `Linear`; the input must be flat (`[N, features]`).
    Linear {
        /// Output features.
        out: usize,
        /// Whether there is a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `ReLU`.
    Relu,
    /// `LeakyReLU`.
    LeakyRelu {
        /// Negative slope (default 0.01).
        #[serde(default = "slope")]
        slope: f32,
    },
    /// `Flatten` to `[N, C*H*W]`.
    Flatten,
    /// `Dropout`.
    Dropout {
        /// Drop probability.
        p: f32,
        /// Mask seed (default 0).
        #[serde(default)]
        seed: u64,
    },
    /// `BatchNorm2d` over the channels of the input.
    BatchNorm2d {
        /// Epsilon (default 1e-5).
        #[serde(default = "bn_eps")]
        eps: f32,
        /// Running-statistics momentum (default 0.1).
        #[serde(default = "bn_momentum")]
        momentum: f32,
    },
    /// Multiply by a constant.
    Scale {
        /// The factor.
        factor: f32,
    },
    /// `block(x) + shortcut(x)`; identity shortcut when none is given.
    Residual {
        /// The main branch.
        block: Vec<LayerSpec>,
        /// The projection branch (default identity).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shortcut: Option<Vec<LayerSpec>>,
    },
}

/// A network described as data: input shape and layers in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// A name for summaries and checkpoints.
    #[serde(default)]
    pub name: Option<String>,
    /// Input `[channels, height, width]`.
    pub input: [usize; 3],
    /// The layers in order.
    #[serde(rename = "layer")]
    pub layers: Vec<LayerSpec>,
}

/// A spec that cannot be parsed or built, with the line it concerns when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// The raw form with spans, used only for error messages that name the line.
#[derive(Deserialize)]
struct RawSpec {
    #[serde(rename = "layer", default)]
    layers: Vec<toml::Spanned<toml::Value>>,
}

impl ModelSpec {
    /// Parses a spec from TOML text; `origin` (a file name) prefixes error messages.
    /// Shape errors are found here too (the spec is built once to validate it).
    pub fn from_toml(text: &str, origin: &str) -> Result<ModelSpec, SpecError> {
        let spec: ModelSpec =
            toml::from_str(text).map_err(|e| SpecError(format!("{origin}: {e}")))?;
        if let Err(e) = spec.build() {
            let lines = layer_lines(text);
            let msg = match e.layer_path.first().and_then(|&i| lines.get(i)) {
                Some(line) => format!("{origin}:{line}: {}", e.message),
                None => format!("{origin}: {}", e.message),
            };
            return Err(SpecError(msg));
        }
        Ok(spec)
    }

    /// The spec as TOML text (what `from_toml` reads).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialise spec: {e}"))
    }

    /// Builds the network, checking that every layer fits the shape it receives, with each
    /// top-level ReLU fused into a neighbour ([`Sequential::fuse_relu`]: same parameter
    /// names, outputs and gradients as [`ModelSpec::build_unfused`], less memory traffic).
    pub fn build(&self) -> Result<Sequential, BuildError> {
        let mut net = self.build_unfused()?;
        net.fuse_relu();
        Ok(net)
    }

    /// Builds the network layer for layer as written, every ReLU a layer of its own.
    pub fn build_unfused(&self) -> Result<Sequential, BuildError> {
        let input = Shape::from([1, self.input[0], self.input[1], self.input[2]]);
        if self.input.contains(&0) {
            return Err(BuildError {
                layer_path: vec![],
                message: format!("input shape {:?} has a zero dimension", self.input),
            });
        }
        if self.layers.is_empty() {
            return Err(BuildError {
                layer_path: vec![],
                message: "the model has no layers".into(),
            });
        }
        build_seq(&self.layers, input, &[]).map(|(seq, _)| seq)
    }

    /// The output shape for a batch of one, e.g. `[1, 10]`.
    pub fn output_shape(&self) -> Result<Shape, BuildError> {
        let input = Shape::from([1, self.input[0], self.input[1], self.input[2]]);
        build_seq(&self.layers, input, &[]).map(|(_, s)| s)
    }
}

/// Why a spec cannot be built: the path of layer indices (outermost first) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// Indices from the top-level layer list down into nested blocks.
    pub layer_path: Vec<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

fn path_name(path: &[usize]) -> String {
    path.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

fn build_seq(
    layers: &[LayerSpec],
    mut shape: Shape,
    parent: &[usize],
) -> Result<(Sequential, Shape), BuildError> {
    let mut seq = Sequential::new();
    for (i, spec) in layers.iter().enumerate() {
        let mut path = parent.to_vec();
        path.push(i);
        let err = |message: String| BuildError {
            layer_path: path.clone(),
            message: format!("layer {} ({}): {message}", path_name(&path), spec.kind()),
        };
        let layer = make_layer(spec, shape, &path).map_err(|e| match e {
            Made::Nested(b) => b,
            Made::Msg(m) => err(m),
        })?;
        shape = layer
            .output_shape(shape)
            .map_err(|e| err(format!("input {shape} does not fit: {e}")))?;
        if shape.numel() == 0 {
            return Err(err(format!("output shape {shape} is empty")));
        }
        seq.push(layer);
    }
    Ok((seq, shape))
}

enum Made {
    Msg(String),
    Nested(BuildError),
}

fn channels(shape: Shape, what: &str) -> Result<usize, Made> {
    shape.nchw().map(|(_, c, _, _)| c).map_err(|_| {
        Made::Msg(format!(
            "{what} needs an image input [N, C, H, W], got {shape}"
        ))
    })
}

fn make_layer(spec: &LayerSpec, shape: Shape, path: &[usize]) -> Result<Box<dyn Layer>, Made> {
    Ok(match *spec {
        LayerSpec::Conv2d {
            out,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            bias,
        } => {
            let cin = channels(shape, "conv2d")?;
            if out == 0 || groups == 0 || cin % groups != 0 || out % groups != 0 {
                return Err(Made::Msg(format!(
                    "groups = {groups} must divide input channels {cin} and output channels {out}"
                )));
            }
            if kernel.pair().0 == 0
                || kernel.pair().1 == 0
                || stride.pair().0 == 0
                || stride.pair().1 == 0
            {
                return Err(Made::Msg("kernel and stride must be positive".into()));
            }
            Box::new(
                Conv2d::new(cin, out, kernel.pair())
                    .stride(stride.pair())
                    .padding(padding.pair())
                    .dilation(dilation.pair())
                    .groups(groups)
                    .bias(bias),
            )
        }
        LayerSpec::MaxPool2d {
            kernel,
            stride,
            padding,
        } => {
            channels(shape, "max_pool2d")?;
            Box::new(
                MaxPool2d::new(kernel.pair())
                    .stride(stride.unwrap_or(kernel).pair())
                    .padding(padding.pair()),
            )
        }
        LayerSpec::AvgPool2d {
            kernel,
            stride,
            padding,
            count_include_pad,
        } => {
            channels(shape, "avg_pool2d")?;
            Box::new(
                AvgPool2d::new(kernel.pair())
                    .stride(stride.unwrap_or(kernel).pair())
                    .padding(padding.pair())
                    .count_include_pad(count_include_pad),
            )
        }
        LayerSpec::GlobalAvgPool2d => {
            channels(shape, "global_avg_pool2d")?;
            Box::new(GlobalAvgPool2d::new())
        }
        LayerSpec::Linear { out, bias } => {
            let features = match *shape.dims() {
                [_, f] => f,
                _ => {
                    return Err(Made::Msg(format!(
                        "linear needs a flat input [N, features], got {shape}: add a flatten layer before it"
                    )));
                }
            };
            if out == 0 {
                return Err(Made::Msg("out must be positive".into()));
            }
            Box::new(Linear::new(features, out).bias(bias))
        }
        LayerSpec::Relu => Box::new(ReLU),
        LayerSpec::LeakyRelu { slope } => Box::new(LeakyReLU::new(slope)),
        LayerSpec::Flatten => Box::new(Flatten),
        LayerSpec::Dropout { p, seed } => {
            if !(0.0..1.0).contains(&p) {
                return Err(Made::Msg(format!("p = {p} must be in [0, 1)")));
            }
            Box::new(Dropout::new(p).seed(seed))
        }
        LayerSpec::BatchNorm2d { eps, momentum } => {
            let c = channels(shape, "batch_norm2d")?;
            Box::new(BatchNorm2d::new(c).eps(eps).momentum(momentum))
        }
        LayerSpec::Scale { factor } => Box::new(Scale::new(factor)),
        LayerSpec::Residual {
            ref block,
            ref shortcut,
        } => {
            let (b, bshape) = build_seq(block, shape, path).map_err(Made::Nested)?;
            let mut r = Residual::new(b);
            let sshape = match shortcut {
                Some(s) => {
                    let (s, sshape) = build_seq(s, shape, path).map_err(Made::Nested)?;
                    r = r.shortcut(s);
                    sshape
                }
                None => shape,
            };
            if bshape.dims()[1..] != sshape.dims()[1..] {
                return Err(Made::Msg(format!(
                    "block output {bshape} and shortcut output {sshape} differ; add a projection shortcut"
                )));
            }
            Box::new(r)
        }
    })
}

impl LayerSpec {
    /// The `type` name as written in spec files.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::GlobalAvgPool2d => "global_avg_pool2d",
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Relu => "relu",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::BatchNorm2d { .. } => "batch_norm2d",
            LayerSpec::Scale { .. } => "scale",
            LayerSpec::Residual { .. } => "residual",
        }
    }
}

/// Line numbers (1-based) of each top-level `[[layer]]` table.
fn layer_lines(text: &str) -> Vec<usize> {
    let Ok(raw) = toml::from_str::<RawSpec>(text) else {
        return vec![];
    };
    raw.layers.iter().map(|l| line_of(text, l.span())).collect()
}

fn line_of(text: &str, span: Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}
