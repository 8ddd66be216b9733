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

mod build;

use ember_layers::Sequential;
use ember_tensor::Shape;
use serde::{Deserialize, Serialize};

pub use build::{MAX_PARAMETERS, MAX_TENSOR_ELEMENTS, ModelSizes};

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

/// How a convolution's weight starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvInit {
    /// PyTorch's default (uniform in `±1/sqrt(fan_in)`).
    #[default]
    Default,
    /// The identity on the first `in` output channels (PyTorch's `dirac_`), the rest as
    /// the default.
    Dirac,
    /// From the training images before training: the eigenvectors of the covariance of
    /// their `kernel`-sized patches, scaled to whiten them, and their negatives (needs
    /// `out = 2 * in * kh * kw`, stride 1). Only training sets it; elsewhere it is the default.
    Whiten,
}

impl ConvInit {
    fn is_default(&self) -> bool {
        *self == ConvInit::Default
    }
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
        /// How the weight starts (default: PyTorch's default).
        #[serde(default, skip_serializing_if = "ConvInit::is_default")]
        init: ConvInit,
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
    /// `GELU`, the exact (erf) form.
    Gelu,
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
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A name for summaries and checkpoints.
    #[serde(default)]
    pub name: Option<String>,
    /// Input `[channels, height, width]`; [`NO_INPUT`] when a file leaves it out (training
    /// then takes it from the dataset, see [`ModelSpec::with_input`]).
    #[serde(default, skip_serializing_if = "is_no_input")]
    pub input: [usize; 3],
    /// The layers in order.
    #[serde(rename = "layer")]
    pub layers: Vec<LayerSpec>,
    /// Parameters that keep their initial values in training (PyTorch's
    /// `requires_grad = False`), by name: `"0.weight"`, `"2.weight"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<String>,
}

/// The `input` of a spec file that does not give one.
pub const NO_INPUT: [usize; 3] = [0, 0, 0];

fn is_no_input(input: &[usize; 3]) -> bool {
    *input == NO_INPUT
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
    /// Unknown keys are refused, and shape and size errors are found here too (the spec is
    /// built once to validate it) unless the file leaves `input` out.
    pub fn from_toml(text: &str, origin: &str) -> Result<ModelSpec, SpecError> {
        Self::from_toml_for(text, origin, None)
    }

    /// [`from_toml`](Self::from_toml), with `input` as the input shape when the file gives
    /// none (training takes it from the dataset).
    pub fn from_toml_for(
        text: &str,
        origin: &str,
        input: Option<[usize; 3]>,
    ) -> Result<ModelSpec, SpecError> {
        let mut spec: ModelSpec =
            toml::from_str(text).map_err(|e| SpecError(format!("{origin}: {e}")))?;
        let lines = layer_lines(text);
        let at = |path: &[usize], message: &str| match path.first().and_then(|&i| lines.get(i)) {
            Some(line) => SpecError(format!("{origin}:{line}: {message}")),
            None => SpecError(format!("{origin}: {message}")),
        };
        if let Some((i, message)) = keys_of_plain_layers(text) {
            return Err(at(&[i], &message));
        }
        if let (true, Some(input)) = (spec.input == NO_INPUT, input) {
            spec.input = input;
        }
        if spec.input == NO_INPUT {
            return Ok(spec);
        }
        if let Err(e) = spec.build() {
            return Err(at(&e.layer_path, &e.message));
        }
        Ok(spec)
    }

    /// The spec as TOML text (what `from_toml` reads).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialise spec: {e}"))
    }

    /// The same layers for inputs of `input`.
    pub fn with_input(&self, input: [usize; 3]) -> ModelSpec {
        ModelSpec {
            input,
            ..self.clone()
        }
    }

    /// The same network with `classes` outputs: the last top-level `linear` layer gets
    /// `out = classes`. Returns the new spec and the old output count, or `None` when there
    /// is no such layer.
    pub fn with_classes(&self, classes: usize) -> Option<(ModelSpec, usize)> {
        let mut spec = self.clone();
        spec.layers
            .iter_mut()
            .rev()
            .find_map(|l| match l {
                LayerSpec::Linear { out, .. } => Some(std::mem::replace(out, classes)),
                _ => None,
            })
            .map(|old| (spec, old))
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
        self.build_sized().map(|(seq, _, _)| seq)
    }

    /// The output shape for a batch of one, e.g. `[1, 10]`.
    pub fn output_shape(&self) -> Result<Shape, BuildError> {
        self.build_sized().map(|(_, shape, _)| shape)
    }

    /// The parameter names of the batch-norm layers: `"4.weight"`, `"4.bias"`, and inside
    /// residual blocks `"3.block.1.weight"`.
    pub fn norm_param_names(&self) -> Vec<String> {
        fn walk(layers: &[LayerSpec], prefix: &str, out: &mut Vec<String>) {
            for (i, layer) in layers.iter().enumerate() {
                match layer {
                    LayerSpec::BatchNorm2d { .. } => {
                        out.extend(["weight", "bias"].map(|p| format!("{prefix}{i}.{p}")));
                    }
                    LayerSpec::Residual { block, shortcut } => {
                        walk(block, &format!("{prefix}{i}.block."), out);
                        if let Some(s) = shortcut {
                            walk(s, &format!("{prefix}{i}.shortcut."), out);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.layers, "", &mut out);
        out
    }

    /// The parameter count and the largest per-image tensor, for checking a batch size
    /// before anything of that size is allocated.
    pub fn sizes(&self) -> Result<ModelSizes, BuildError> {
        self.build_sized().map(|(_, _, sizes)| sizes)
    }

    fn build_sized(&self) -> Result<(Sequential, Shape, ModelSizes), BuildError> {
        let whole = |message: String| BuildError {
            layer_path: vec![],
            message,
        };
        if self.input == NO_INPUT {
            return Err(whole(
                "the model has no input shape: add `input = [channels, height, width]` \
                 (training takes it from the dataset)"
                    .into(),
            ));
        }
        if self.input.contains(&0) {
            return Err(whole(format!(
                "input shape {:?} has a zero dimension",
                self.input
            )));
        }
        if self.layers.is_empty() {
            return Err(whole("the model has no layers".into()));
        }
        let input = Shape::from([1, self.input[0], self.input[1], self.input[2]]);
        let mut sizes = ModelSizes::default();
        build::check_image(input, &mut sizes).map_err(|m| whole(format!("input {m}")))?;
        let (seq, shape) = build::build_seq(&self.layers, input, &[], &mut sizes)?;
        let names = seq.param_names();
        if let Some(missing) = self.fixed.iter().find(|f| !names.contains(f)) {
            return Err(whole(format!(
                "fixed parameter {missing:?} is not a parameter of the model (they are {})",
                names.join(", ")
            )));
        }
        Ok((seq, shape, sizes))
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
            LayerSpec::Gelu => "gelu",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::BatchNorm2d { .. } => "batch_norm2d",
            LayerSpec::Scale { .. } => "scale",
            LayerSpec::Residual { .. } => "residual",
        }
    }
}

/// The layer types that take no options: a key beside `type` in one of them (`slope` on a
/// `relu`) is a mistake that serde would let through for such variants.
const PLAIN_LAYERS: [&str; 4] = ["relu", "gelu", "flatten", "global_avg_pool2d"];

/// The first option given to a layer that takes none, as (top-level layer index, message),
/// looking into residual blocks too.
fn keys_of_plain_layers(text: &str) -> Option<(usize, String)> {
    fn check(table: &toml::Value) -> Option<String> {
        let t = table.as_table()?;
        let kind = t.get("type").and_then(toml::Value::as_str).unwrap_or("");
        if PLAIN_LAYERS.contains(&kind)
            && let Some(key) = t.keys().find(|k| *k != "type")
        {
            return Some(format!(
                "unknown option `{key}` for layer type `{kind}`, which takes none{}",
                if kind == "relu" && key == "slope" {
                    " (a ReLU with a slope is `leaky_relu`)"
                } else {
                    ""
                }
            ));
        }
        ["block", "shortcut"]
            .iter()
            .filter_map(|k| t.get(*k).and_then(toml::Value::as_array))
            .flatten()
            .find_map(check)
    }
    let raw = toml::from_str::<RawSpec>(text).ok()?;
    raw.layers
        .iter()
        .enumerate()
        .find_map(|(i, l)| check(l.get_ref()).map(|m| (i, m)))
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
