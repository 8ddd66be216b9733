//! Building a [`ModelSpec`](super::ModelSpec) into layers: the shape is carried from layer
//! to layer, and every size (parameters, activations, a convolution's unfolded input) is
//! computed with checked arithmetic and held to the caps below before anything is
//! allocated, so that a spec or a checkpoint with absurd sizes is refused, not an abort.

use ember_layers::conv::{Conv2d, out_len};
use ember_layers::pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};
use ember_layers::{
    BatchNorm2d, Dropout, Flatten, GELU, Layer, LeakyReLU, Linear, ReLU, Residual, Scale,
    Sequential,
};
use ember_tensor::{Shape, checked_product};

use super::{BuildError, ConvInit, LayerSpec};

/// The most elements one tensor may hold (2^31): a parameter, one image's activation or
/// unfolded convolution input, or a whole batch of one of those.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// The most trainable parameters a model may have (2^28: 1 GiB of f32 weights; training
/// needs about four times that with gradients and optimizer state).
pub const MAX_PARAMETERS: usize = 1 << 28;

/// What a model needs, counted while it is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelSizes {
    /// Trainable parameters.
    pub params: usize,
    /// Elements of the largest tensor one image needs: an activation, or a convolution's
    /// unfolded input.
    pub largest_per_image: usize,
}

impl ModelSizes {
    /// Checks that a batch of `batch` images keeps every tensor within
    /// [`MAX_TENSOR_ELEMENTS`]; `flag` names the option in the message.
    pub fn check_batch(&self, batch: usize, flag: &str) -> Result<(), String> {
        match batch.checked_mul(self.largest_per_image) {
            Some(n) if n <= MAX_TENSOR_ELEMENTS => Ok(()),
            _ => Err(format!(
                "{flag} {batch} is too large for this model: its largest tensor would hold \
                 {batch} x {} elements, above the cap of 2^31 per tensor (at most {} images)",
                self.largest_per_image,
                MAX_TENSOR_ELEMENTS / self.largest_per_image.max(1)
            )),
        }
    }
}

fn path_name(path: &[usize]) -> String {
    path.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// Checks the shape of one image against [`MAX_TENSOR_ELEMENTS`] and records it.
pub(super) fn check_image(shape: Shape, sizes: &mut ModelSizes) -> Result<(), String> {
    match shape.checked_numel() {
        Some(n) if n <= MAX_TENSOR_ELEMENTS => {
            sizes.largest_per_image = sizes.largest_per_image.max(n);
            Ok(())
        }
        _ => Err(format!(
            "shape {shape} holds more than 2^31 elements per image (the cap per tensor)"
        )),
    }
}

/// Builds `layers` for inputs of `shape`, adding what they need to `sizes`.
pub(super) fn build_seq(
    layers: &[LayerSpec],
    mut shape: Shape,
    parent: &[usize],
    sizes: &mut ModelSizes,
) -> Result<(Sequential, Shape), BuildError> {
    let mut seq = Sequential::new();
    for (i, spec) in layers.iter().enumerate() {
        let mut path = parent.to_vec();
        path.push(i);
        let err = |message: String| BuildError {
            layer_path: path.clone(),
            message: format!("layer {} ({}): {message}", path_name(&path), spec.kind()),
        };
        let layer = make_layer(spec, shape, &path, sizes).map_err(|e| match e {
            Made::Nested(b) => b,
            Made::Msg(m) => err(m),
        })?;
        shape = layer
            .output_shape(shape)
            .map_err(|e| err(format!("input {shape} does not fit: {e}")))?;
        check_image(shape, sizes).map_err(|m| err(format!("output {m}")))?;
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

/// Counts a parameter tensor of `dims` towards `sizes`, refusing one above
/// [`MAX_TENSOR_ELEMENTS`] or a model above [`MAX_PARAMETERS`].
fn add_params(sizes: &mut ModelSizes, what: &str, dims: &[usize]) -> Result<(), Made> {
    let n = checked_product(dims)
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| {
            Made::Msg(format!(
                "its {what} {dims:?} would hold more than 2^31 elements (the cap per tensor)"
            ))
        })?;
    sizes.params = sizes
        .params
        .checked_add(n)
        .filter(|&t| t <= MAX_PARAMETERS)
        .ok_or_else(|| {
            Made::Msg(format!(
                "its {what} {dims:?} takes the model above {MAX_PARAMETERS} parameters (2^28, the cap)"
            ))
        })?;
    Ok(())
}

fn finite(name: &str, v: f32) -> Result<(), Made> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Made::Msg(format!("{name} = {v} must be a finite number")))
    }
}

fn make_layer(
    spec: &LayerSpec,
    shape: Shape,
    path: &[usize],
    sizes: &mut ModelSizes,
) -> Result<Box<dyn Layer>, Made> {
    Ok(match *spec {
        LayerSpec::Conv2d {
            out,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            bias,
            init,
        } => {
            let cin = channels(shape, "conv2d")?;
            if out == 0 || groups == 0 || cin % groups != 0 || out % groups != 0 {
                return Err(Made::Msg(format!(
                    "groups = {groups} must divide input channels {cin} and output channels {out}"
                )));
            }
            let ((kh, kw), (sh, sw)) = (kernel.pair(), stride.pair());
            if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
                return Err(Made::Msg("kernel and stride must be positive".into()));
            }
            add_params(sizes, "weight", &[out, cin / groups, kh, kw])?;
            if bias {
                add_params(sizes, "bias", &[out])?;
            }
            // The unfolded input of one image (im2col) is the largest buffer a conv needs.
            let (_, _, h, w) = shape.nchw().unwrap_or((1, cin, 1, 1));
            let ((ph, pw), (dh, dw)) = (padding.pair(), dilation.pair());
            if let (Some(oh), Some(ow)) = (out_len(h, kh, sh, ph, dh), out_len(w, kw, sw, pw, dw)) {
                let unfolded = Shape::from([cin / groups, kh, kw, oh, ow]);
                check_image(unfolded, sizes)
                    .map_err(|m| Made::Msg(format!("its unfolded input {m}")))?;
            }
            Box::new(
                Conv2d::new(cin, out, kernel.pair())
                    .stride(stride.pair())
                    .padding(padding.pair())
                    .dilation(dilation.pair())
                    .groups(groups)
                    .bias(bias)
                    .dirac(init == ConvInit::Dirac),
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
            add_params(sizes, "weight", &[out, features])?;
            if bias {
                add_params(sizes, "bias", &[out])?;
            }
            Box::new(Linear::new(features, out).bias(bias))
        }
        LayerSpec::Relu => Box::new(ReLU),
        LayerSpec::Gelu => Box::new(GELU),
        LayerSpec::LeakyRelu { slope } => {
            finite("slope", slope)?;
            Box::new(LeakyReLU::new(slope))
        }
        LayerSpec::Flatten => Box::new(Flatten),
        LayerSpec::Dropout { p, seed } => {
            if !(0.0..1.0).contains(&p) {
                return Err(Made::Msg(format!("p = {p} must be in [0, 1)")));
            }
            Box::new(Dropout::new(p).seed(seed))
        }
        LayerSpec::BatchNorm2d { eps, momentum } => {
            let c = channels(shape, "batch_norm2d")?;
            if !(eps.is_finite() && eps > 0.0) {
                return Err(Made::Msg(format!("eps = {eps} must be a positive number")));
            }
            if !(0.0..=1.0).contains(&momentum) {
                return Err(Made::Msg(format!(
                    "momentum = {momentum} must be in [0, 1]"
                )));
            }
            add_params(sizes, "weight and bias", &[2, c])?;
            Box::new(BatchNorm2d::new(c).eps(eps).momentum(momentum))
        }
        LayerSpec::Scale { factor } => {
            finite("factor", factor)?;
            Box::new(Scale::new(factor))
        }
        LayerSpec::Residual {
            ref block,
            ref shortcut,
        } => {
            let (b, bshape) = build_seq(block, shape, path, sizes).map_err(Made::Nested)?;
            let mut r = Residual::new(b);
            let sshape = match shortcut {
                Some(s) => {
                    let (s, sshape) = build_seq(s, shape, path, sizes).map_err(Made::Nested)?;
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
