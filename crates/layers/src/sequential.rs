//! `Sequential`: the container a model is defined with, and its parameter names.

use std::fmt;
use std::sync::Arc;

use ember_tensor::{Rng, Shape, Tensor};

use crate::buffers::{Buffers, shape_or_panic};
use crate::replica::ReplicaSum;
use crate::summary::{Summary, SummaryRow};
use crate::timing::{LayerTime, Pass, Timer};
use crate::{Layer, LayerError, Mode, Param};

/// Layers applied one after another, each reading the previous layer's output buffer (no
/// copies). It is itself a [`Layer`], so containers nest.
///
/// Parameter names follow a PyTorch `nn.Sequential` `state_dict`: `0.weight`, `4.bias`,
/// nested `3.block.0.weight`, so weights can be exchanged with PyTorch.
///
/// A training step runs `forward(x, Mode::Train)`, the loss, then
/// `backward(x, grad_logits, false)`: `false` tells the first layer that nobody needs the
/// gradient with respect to the images, so it skips that work.
///
/// ```
/// use ember_layers::{Flatten, Layer, Linear, Mode, ReLU, Sequential};
/// use ember_tensor::{Shape, Tensor};
/// let mut model = Sequential::new()
///     .add(Flatten)
///     .add(Linear::new(28 * 28, 64))
///     .add(ReLU)
///     .add(Linear::new(64, 10));
/// assert_eq!(model.validate(Shape::from([8, 1, 28, 28]))?, Shape::from([8, 10]));
/// assert_eq!(model.param_names(), ["1.weight", "1.bias", "3.weight", "3.bias"]);
/// assert_eq!(model.num_params(), 784 * 64 + 64 + 64 * 10 + 10);
/// let logits = model.forward(&Tensor::zeros([8, 1, 28, 28]), Mode::Eval);
/// assert_eq!(logits.shape(), Shape::from([8, 10]));
/// println!("{}", model.summary(Shape::from([8, 1, 28, 28]))?);
/// # Ok::<(), ember_layers::LayerError>(())
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    /// Per layer: its parameters' names (relative to the layer) and element counts, taken
    /// when the layer was added (layers cannot change their parameter set afterwards).
    params: Vec<Vec<(String, usize)>>,
    /// Per layer: true when [`Sequential::fuse_relu`] moved its work into a neighbour, so
    /// forward and backward skip it (it keeps its index, and so the parameter names).
    fused: Vec<bool>,
    /// Used only while the container is empty (it is then the identity).
    bufs: Buffers,
    /// Per-layer wall times, while [`Sequential::set_timing`] has them on.
    timer: Option<Timer>,
}

impl Sequential {
    /// An empty container (the identity until layers are added).
    pub fn new() -> Self {
        Sequential::default()
    }

    /// Appends a layer (builder style).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Layer + 'static) -> Self {
        self.push(Box::new(layer));
        self
    }

    /// Appends a boxed layer.
    pub fn push(&mut self, mut layer: Box<dyn Layer>) {
        let mut params = Vec::new();
        layer.visit_params("", &mut |name, p| {
            params.push((name.to_string(), p.value.len()))
        });
        self.layers.push(layer);
        self.params.push(params);
        self.fused.push(false);
    }

    /// Folds each top-level ReLU into a neighbour: into the next layer as `f(relu(x))` when
    /// it can (a max pool: the cheaper place, as it works on the pooled output), else into
    /// the previous layer as `relu(f(x))` (a convolution's epilogue). The ReLU keeps its
    /// slot, so indices and parameter names do not change; forward and backward skip it,
    /// saving a pass over its input each way. Outputs and gradients are those of the
    /// unfused model (the next layer's output; a skipped slot's own buffers stay empty).
    /// Returns how many ReLUs were fused. Nested containers are left as they are.
    ///
    /// ```
    /// use ember_layers::{conv::Conv2d, pool::MaxPool2d, Flatten, Linear, ReLU, Sequential};
    /// let mut model = Sequential::new()
    ///     .add(Conv2d::new(1, 8, 3).padding(1)).add(ReLU).add(MaxPool2d::new(2))
    ///     .add(Conv2d::new(8, 8, 3).padding(1)).add(ReLU)
    ///     .add(Flatten).add(Linear::new(8 * 4 * 4, 10));
    /// assert_eq!(model.fuse_relu(), 2); // into the pool, into the second conv
    /// assert!(model.is_fused(1) && model.is_fused(4));
    /// assert_eq!(model.param_names()[2], "3.weight"); // indices unchanged
    /// ```
    pub fn fuse_relu(&mut self) -> usize {
        let mut count = 0;
        for i in 0..self.layers.len() {
            if self.fused[i] || !self.layers[i].is_relu() {
                continue;
            }
            let into_next = i + 1 < self.layers.len()
                && !self.fused[i + 1]
                && self.layers[i + 1].absorb_relu_before();
            let done = into_next
                || (i > 0 && !self.fused[i - 1] && self.layers[i - 1].absorb_relu_after());
            if done {
                self.fused[i] = true;
                count += 1;
            }
        }
        count
    }

    /// Whether layer `i` was folded into a neighbour by [`Sequential::fuse_relu`].
    pub fn is_fused(&self, i: usize) -> bool {
        self.fused.get(i).copied().unwrap_or(false)
    }

    /// The last layer that runs (not fused away) before index `i`.
    fn active_before(&self, i: usize) -> Option<usize> {
        (0..i).rev().find(|&j| !self.fused[j])
    }

    /// The number of layers (top level).
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Layer `i`, if there is one.
    pub fn layer(&self, i: usize) -> Option<&dyn Layer> {
        self.layers.get(i).map(|l| &**l)
    }

    /// Layer `i` mutably, if there is one.
    pub fn layer_mut(&mut self, i: usize) -> Option<&mut dyn Layer> {
        match self.layers.get_mut(i) {
            Some(l) => Some(&mut **l),
            None => None,
        }
    }

    /// Switches per-layer timing on (from zero) or off. While on, every top-level layer's
    /// `forward` and `backward` wall time is summed; [`Sequential::layer_times`] reads the
    /// sums. Layers inside a nested container count as one.
    ///
    /// ```
    /// use ember_layers::{Flatten, Layer, Linear, Mode, ReLU, Sequential};
    /// use ember_tensor::Tensor;
    ///
    /// let mut net = Sequential::new().add(Flatten).add(Linear::new(4, 2)).add(ReLU);
    /// net.set_timing(true);
    /// let x = Tensor::zeros([3, 1, 2, 2]);
    /// net.forward(&x, Mode::Train);
    /// let times = net.layer_times().expect("timing is on");
    /// assert_eq!(times.len(), 3);
    /// assert_eq!((times[1].layer.as_str(), times[1].forward_calls), ("Linear(4->2)", 1));
    /// net.set_timing(false);
    /// assert!(net.layer_times().is_none());
    /// ```
    pub fn set_timing(&mut self, on: bool) {
        self.timer = on.then(Timer::default);
    }

    /// The per-layer times summed since [`Sequential::set_timing`] switched timing on, one
    /// row per top-level layer (a ReLU fused into a neighbour shows no time: its work is in
    /// the neighbour's); `None` while timing is off.
    pub fn layer_times(&self) -> Option<Vec<LayerTime>> {
        let t = self.timer.as_ref()?;
        Some(t.rows(self.layers.len(), |i| self.layers[i].describe()))
    }

    /// Sets every parameter gradient to zero.
    pub fn zero_grad(&mut self) {
        self.visit_params("", &mut |_, p| p.zero_grad());
    }

    /// The number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.params.iter().flatten().map(|(_, n)| n).sum()
    }

    /// The `state_dict` names of the trainable parameters, in visiting order.
    pub fn param_names(&self) -> Vec<String> {
        self.params
            .iter()
            .enumerate()
            .flat_map(|(i, ps)| ps.iter().map(move |(name, _)| format!("{i}.{name}")))
            .collect()
    }

    /// The output shape for `input`, or an error naming the first layer (by index and
    /// description) whose input does not fit, with the shapes involved.
    pub fn validate(&self, input: Shape) -> Result<Shape, LayerError> {
        let mut shape = input;
        for (i, layer) in self.layers.iter().enumerate() {
            shape = layer.output_shape(shape).map_err(|e| {
                LayerError(format!(
                    "layer {i} ({}) cannot take input {shape}: {e}",
                    layer.describe()
                ))
            })?;
        }
        Ok(shape)
    }

    /// A Keras-style summary for `input` (per layer: output shape, parameters, forward
    /// FLOPs; totals). Print it with `{}`, or read its rows.
    pub fn summary(&self, input: Shape) -> Result<Summary, LayerError> {
        self.validate(input)?;
        let mut shape = input;
        let mut rows = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let flops = layer.flops(shape);
            shape = layer.output_shape(shape)?;
            let mut name = layer.describe();
            if self.fused[i] {
                name += " (fused)";
            }
            rows.push(SummaryRow {
                index: i,
                layer: name,
                output: shape,
                params: self.params[i].iter().map(|(_, n)| n).sum(),
                flops,
            });
        }
        Ok(Summary::new(input, rows))
    }
}

impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.layers.iter().map(|l| l.describe()))
            .finish()
    }
}

impl Layer for Sequential {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        shape_or_panic("Sequential", self.validate(x.shape()));
        if self.layers.is_empty() {
            let out = self.bufs.out_for(x.shape());
            out.data_mut().copy_from_slice(x.data());
            return out;
        }
        let mut prev = None;
        for i in 0..self.layers.len() {
            if self.fused[i] {
                continue;
            }
            let (done, rest) = self.layers.split_at_mut(i);
            let input = prev.map_or(x, |p: usize| done[p].output());
            match self.timer.as_mut() {
                Some(t) => t.time(i, Pass::Forward, || rest[0].forward(input, mode)),
                None => rest[0].forward(input, mode),
            };
            prev = Some(i);
        }
        self.output()
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        if self.layers.is_empty() {
            if !need_input_grad {
                return self.bufs.skip_grad();
            }
            let g = self.bufs.grad_for(grad_out.shape());
            g.data_mut().copy_from_slice(grad_out.data());
            return g;
        }
        let mut next = None;
        for i in (0..self.layers.len()).rev() {
            if self.fused[i] {
                continue;
            }
            let prev = self.active_before(i);
            let (before, rest) = self.layers.split_at_mut(i);
            let (current, after) = rest.split_at_mut(1);
            let input = prev.map_or(x, |p| before[p].output());
            let grad = next.map_or(grad_out, |n: usize| after[n - i - 1].input_grad());
            let need = prev.is_some() || need_input_grad;
            match self.timer.as_mut() {
                Some(t) => t.time(i, Pass::Backward, || current[0].backward(input, grad, need)),
                None => current[0].backward(input, grad, need),
            };
            next = Some(i);
        }
        self.input_grad()
    }

    fn output(&self) -> &Tensor {
        let mut active = self.layers.iter().zip(&self.fused).filter(|(_, f)| !**f);
        active
            .next_back()
            .map_or(self.bufs.out(), |(l, _)| l.output())
    }

    fn input_grad(&self) -> &Tensor {
        let mut active = self.layers.iter().zip(&self.fused).filter(|(_, f)| !**f);
        active
            .next()
            .map_or(self.bufs.grad(), |(l, _)| l.input_grad())
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        // One name buffer per call (this runs every step: zero_grad, the optimizer).
        let mut name = String::with_capacity(prefix.len() + 8);
        for (i, (layer, params)) in self.layers.iter_mut().zip(&self.params).enumerate() {
            if params.is_empty() {
                continue;
            }
            name.clear();
            name.push_str(prefix);
            name.push_str(itoa(i, &mut [0; 20]));
            name.push('.');
            layer.visit_params(&name, f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.visit_buffers(&format!("{prefix}{i}."), f);
        }
    }

    fn reset_parameters(&mut self, rng: &mut Rng) {
        for layer in &mut self.layers {
            layer.reset_parameters(rng);
        }
    }

    fn begin_step(&mut self, step: u64) {
        for layer in &mut self.layers {
            layer.begin_step(step);
        }
    }

    fn sync_batch_stats(&mut self, group: Option<&Arc<dyn ReplicaSum>>) {
        for layer in &mut self.layers {
            layer.sync_batch_stats(group);
        }
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        self.validate(input)
    }

    fn flops(&self, input: Shape) -> u64 {
        let mut shape = input;
        let mut total = 0;
        for layer in &self.layers {
            total += layer.flops(shape);
            match layer.output_shape(shape) {
                Ok(s) => shape = s,
                Err(_) => break,
            }
        }
        total
    }

    fn describe(&self) -> String {
        let inner: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        format!("Sequential[{}]", inner.join(", "))
    }
}

/// `i` in decimal, written into `buf` (no allocation).
fn itoa(mut i: usize, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    #[test]
    fn itoa_writes_decimal() {
        for i in [0, 7, 10, 99, 100, 12_345, usize::MAX] {
            assert_eq!(super::itoa(i, &mut [0; 20]), i.to_string());
        }
    }
}
