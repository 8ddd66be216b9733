//! The `Layer` trait, trainable parameters and the train/eval mode.

use std::sync::Arc;

use ember_tensor::{Rng, Shape, Tensor};

use crate::replica::ReplicaSum;

/// Training or evaluation: decides batch-norm statistics and whether dropout drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics, active dropout, remember what backward needs.
    Train,
    /// Running statistics, identity dropout.
    Eval,
}

/// A trainable tensor and its accumulated gradient.
#[derive(Clone, Debug)]
pub struct Param {
    /// The values.
    pub value: Tensor,
    /// dLoss/dvalue, accumulated by `backward` until [`Param::zero_grad`].
    pub grad: Tensor,
    /// Whether weight decay should apply (true for weights; false for biases and
    /// normalisation parameters).
    pub decay: bool,
}

impl Param {
    /// A parameter with a zero gradient of the same shape.
    pub fn new(value: Tensor, decay: bool) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param { value, grad, decay }
    }

    /// Resets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }
}

/// A pair of sizes `(height, width)` for kernels, strides, paddings and dilations.
/// Built from one `usize` (both sides) or a `(h, w)` tuple / `[h, w]` array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair(pub usize, pub usize);

/// `input` as `(n, c, h, w)`, else the error that the layer `describe` names is given an
/// input that is not NCHW.
pub(crate) fn nchw(
    input: Shape,
    describe: impl FnOnce() -> String,
) -> Result<(usize, usize, usize, usize), LayerError> {
    input
        .nchw()
        .map_err(|_| LayerError(format!("{}: input shape {input} is not NCHW", describe())))
}

impl Pair {
    /// `3` for `Pair(3, 3)`, `3x5` for `Pair(3, 5)`: how layer descriptions show sizes.
    pub(crate) fn short(self) -> String {
        if self.0 == self.1 {
            self.0.to_string()
        } else {
            format!("{}x{}", self.0, self.1)
        }
    }
}

impl From<usize> for Pair {
    fn from(v: usize) -> Self {
        Pair(v, v)
    }
}

impl From<(usize, usize)> for Pair {
    fn from((h, w): (usize, usize)) -> Self {
        Pair(h, w)
    }
}

impl From<[usize; 2]> for Pair {
    fn from([h, w]: [usize; 2]) -> Self {
        Pair(h, w)
    }
}

/// An error building or wiring layers: a shape that does not fit, a bad option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerError(pub String);

impl std::fmt::Display for LayerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayerError {}

/// One layer of a network, with an explicit forward and backward pass.
///
/// Layers own their output and input-gradient buffers and reuse them between steps, so a
/// training step allocates nothing once the buffers have grown to size. `backward` is given
/// the same input `x` that the last `forward` saw (a `Sequential` still holds it as the
/// previous layer's output), so layers do not copy their inputs.
pub trait Layer: Send {
    /// Computes the output for `x` into the layer's own buffer and returns it.
    /// Panics, naming both shapes, if `x` does not have the shape the layer expects.
    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor;

    /// Given the input of the last forward and dLoss/doutput, accumulates parameter
    /// gradients and returns dLoss/dinput (from the layer's own buffer). When
    /// `need_input_grad` is false (the first layer of a network) the layer may skip that
    /// work and return an empty tensor.
    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor;

    /// The output of the last forward (what `forward` returned).
    fn output(&self) -> &Tensor;

    /// dLoss/dinput from the last backward (what `backward` returned).
    fn input_grad(&self) -> &Tensor;

    /// Calls `f` with each trainable parameter and its PyTorch `state_dict` name under
    /// `prefix` (for example `"3.weight"` with prefix `"3."`). Layers without parameters
    /// keep the default, which calls nothing.
    fn visit_params(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    /// Calls `f` with each non-trainable state tensor (batch-norm running statistics) and
    /// its `state_dict` name under `prefix`. Most layers have none.
    fn visit_buffers(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Tensor)) {}

    /// Re-initialises the trainable parameters from `rng` (PyTorch's default schemes unless
    /// the layer documents otherwise). Layers are built initialised from a fixed seed, so a
    /// model is usable at once; a seeded run calls this on the whole model.
    fn reset_parameters(&mut self, _rng: &mut Rng) {}

    /// Tells the layer the global training step before a forward pass, so that randomised
    /// layers (dropout) draw from a stream derived from (seed, step) and a resumed run
    /// repeats exactly.
    fn begin_step(&mut self, _step: u64) {}

    /// Makes the layer compute its training-mode batch statistics over the global batch of
    /// a data-parallel group (`Some`), or over its local batch again (`None`). Only batch
    /// norm has such statistics; containers pass the group on to their layers.
    fn sync_batch_stats(&mut self, _group: Option<&Arc<dyn ReplicaSum>>) {}

    /// The output shape for an input shape, or an error saying why the input does not fit.
    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError>;

    /// Forward floating-point operations for one input of shape `input` (whole batch).
    fn flops(&self, _input: Shape) -> u64 {
        0
    }

    /// A short description for summaries, e.g. `Conv2d(3->32, k3, s1, p1)`.
    fn describe(&self) -> String;

    /// For [`Sequential::fuse_relu`](crate::Sequential::fuse_relu): whether this layer is
    /// a plain ReLU that a neighbour may absorb.
    fn is_relu(&self) -> bool {
        false
    }

    /// For [`Sequential::fuse_relu`](crate::Sequential::fuse_relu): makes the layer compute
    /// `f(relu(x))` with the gradients of that composition, and returns true; or returns
    /// false (the default) if it cannot.
    fn absorb_relu_before(&mut self) -> bool {
        false
    }

    /// For [`Sequential::fuse_relu`](crate::Sequential::fuse_relu): makes the layer compute
    /// `relu(f(x))` with the gradients of that composition, and returns true; or returns
    /// false (the default) if it cannot.
    fn absorb_relu_after(&mut self) -> bool {
        false
    }
}
