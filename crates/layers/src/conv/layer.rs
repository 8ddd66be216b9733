//! The `Conv2d` layer: parameters, buffers, and the dispatch of each pass to the algorithm
//! [`ConvAlgorithm`] chooses. Work is split over the batch with rayon, a few chunks per
//! thread; each chunk owns a [`Workspace`]. Parameter gradients are per-chunk partial sums
//! reduced at the end, so no two threads write the same memory.

use ember_tensor::{Rng, Shape, Tensor, init, simd};
use rayon::prelude::*;

use super::chunk::{AlgorithmScratch, BackwardImages, ForwardImages, Workspace, grow};
use super::epilogue::Epilogue;
use super::{ConvAlgorithm, ConvGeometry, direct, im2col, winograd};
use crate::buffers::Buffers;
use crate::{Layer, LayerError, Mode, Pair, Param};

/// The seed a freshly built layer's parameters are drawn from (before `reset_parameters`).
const INIT_SEED: u64 = 0xC0_4E_2D;

/// A 2-D convolution over NCHW input, PyTorch semantics.
///
/// Weight OIHW `[out, in/groups, kh, kw]` (`state_dict` name `weight`), bias `[out]`
/// (`bias`), both initialised like PyTorch (`U(±1/sqrt(fan_in))`). Options are builders
/// with PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1, bias on; `relu(true)`
/// fuses a ReLU into the output (the layer then computes `relu(conv(x) + b)`).
///
/// Invalid settings (groups not dividing the channels, zero sizes, a kernel larger than
/// the padded input) are reported by [`Layer::output_shape`] as a [`LayerError`];
/// `forward` on an input that does not fit panics with that message.
///
/// ```
/// use ember_layers::{conv::Conv2d, Layer, Mode};
/// use ember_tensor::Tensor;
/// let mut conv = Conv2d::new(3, 8, 3).padding(1).stride(2);
/// let x = Tensor::zeros([2, 3, 9, 9]);
/// let y = conv.forward(&x, Mode::Train);
/// // Shapes: [2, 3, 9, 9] -> [2, 8, 5, 5].
/// assert_eq!(y.shape().dims(), &[2, 8, 5, 5]);
/// ```
pub struct Conv2d {
    in_channels: usize,
    out_channels: usize,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: usize,
    relu: bool,
    dirac: bool,
    algorithm: ConvAlgorithm,
    weight: Param,
    bias: Option<Param>,
    bufs: Buffers,
    /// The weights as the running pass's algorithm wants them (packed or transformed).
    packed: Vec<f32>,
    /// One per batch chunk.
    workspaces: Vec<Workspace>,
}

impl Conv2d {
    /// A convolution from `in_channels` to `out_channels` with a `kernel_size` kernel.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl Into<Pair>) -> Self {
        let mut c = Conv2d {
            in_channels,
            out_channels,
            kernel: kernel_size.into(),
            stride: Pair(1, 1),
            padding: Pair(0, 0),
            dilation: Pair(1, 1),
            groups: 1,
            relu: false,
            dirac: false,
            algorithm: ConvAlgorithm::Auto,
            weight: Param::new(Tensor::zeros([0]), true),
            bias: Some(Param::new(Tensor::zeros([0]), false)),
            bufs: Buffers::EMPTY,
            packed: Vec::new(),
            workspaces: Vec::new(),
        };
        c.rebuild_params();
        c
    }

    /// Like [`Conv2d::new`] with groups, checking that the configuration can run.
    pub fn try_new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Into<Pair>,
        groups: usize,
    ) -> Result<Self, LayerError> {
        let c = Conv2d::new(in_channels, out_channels, kernel_size).groups(groups);
        c.validate()?;
        Ok(c)
    }

    /// Checks the configuration independent of any input: channels, groups, kernel,
    /// stride and dilation.
    pub fn validate(&self) -> Result<(), LayerError> {
        let mut g = self.geometry(1, 0, 0);
        // Any input large enough for the kernel checks everything but the input size.
        g.height = self.kernel.0.saturating_mul(self.dilation.0).max(1);
        g.width = self.kernel.1.saturating_mul(self.dilation.1).max(1);
        g.validate()
    }

    /// Stride (default 1).
    pub fn stride(mut self, s: impl Into<Pair>) -> Self {
        self.stride = s.into();
        self
    }

    /// Zero padding on each side (default 0).
    pub fn padding(mut self, p: impl Into<Pair>) -> Self {
        self.padding = p.into();
        self
    }

    /// Kernel dilation (default 1).
    pub fn dilation(mut self, d: impl Into<Pair>) -> Self {
        self.dilation = d.into();
        self
    }

    /// Channel groups (default 1; `in_channels` for depthwise). Re-initialises the
    /// parameters, whose shape depends on it.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self.rebuild_params();
        self
    }

    /// Whether the layer has a bias (default true). Re-initialises the parameters.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias.then(|| Param::new(Tensor::zeros([0]), false));
        self.rebuild_params();
        self
    }

    /// Fuses a ReLU into the output: the layer computes `relu(conv(x) + b)` (default off).
    pub fn relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// Starts the first `in_channels / groups` output channels of each group as the identity
    /// (PyTorch's `dirac_` on them: 1 at the kernel's centre tap of the matching input
    /// channel, 0 elsewhere), the rest as usual; applies at every
    /// [`reset_parameters`](Layer::reset_parameters) (default off). Deep plain stacks train
    /// faster from it.
    pub fn dirac(mut self, dirac: bool) -> Self {
        self.dirac = dirac;
        self.reset_parameters(&mut Rng::new(INIT_SEED));
        self
    }

    /// Forces an algorithm (default [`ConvAlgorithm::Auto`]); results agree within rounding.
    pub fn algorithm(mut self, a: ConvAlgorithm) -> Self {
        self.algorithm = a;
        self
    }

    /// The weight, OIHW.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The weight, mutable (for loading values).
    pub fn weight_mut(&mut self) -> &mut Param {
        &mut self.weight
    }

    /// The bias, if the layer has one.
    pub fn bias_param(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The bias, mutable.
    pub fn bias_param_mut(&mut self) -> Option<&mut Param> {
        self.bias.as_mut()
    }

    /// The geometry of this layer on an `n x in_channels x h x w` input.
    pub fn geometry(&self, n: usize, h: usize, w: usize) -> ConvGeometry {
        ConvGeometry {
            batch: n,
            in_channels: self.in_channels,
            height: h,
            width: w,
            out_channels: self.out_channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }

    /// The identity on the first `in/groups` output channels of each group.
    fn set_dirac(&mut self) {
        let (cig, cog) = (
            self.in_channels / self.groups.max(1),
            self.out_channels / self.groups.max(1),
        );
        let (kh, kw) = (self.kernel.0, self.kernel.1);
        let centre = (kh / 2) * kw + kw / 2;
        let w = self.weight.value.data_mut();
        for g in 0..self.groups {
            for o in 0..cig.min(cog) {
                let filter = &mut w[(g * cog + o) * cig * kh * kw..][..cig * kh * kw];
                filter.fill(0.0);
                filter[o * kh * kw + centre] = 1.0;
            }
        }
    }

    fn weight_shape(&self) -> Shape {
        let cig = self.in_channels / self.groups.max(1);
        Shape::from([self.out_channels, cig, self.kernel.0, self.kernel.1])
    }

    fn fan_in(&self) -> usize {
        let s = self.weight_shape();
        s.dim(1) * s.dim(2) * s.dim(3)
    }

    fn rebuild_params(&mut self) {
        self.weight = Param::new(Tensor::zeros(self.weight_shape()), true);
        if self.bias.is_some() {
            self.bias = Some(Param::new(Tensor::zeros([self.out_channels]), false));
        }
        self.reset_parameters(&mut Rng::new(INIT_SEED));
    }

    /// The geometry for input `x`, or a panic naming both shapes.
    fn geometry_for(&self, input: Shape) -> ConvGeometry {
        if let Err(e) = self.output_shape(input) {
            panic!("{e}");
        }
        // Parameters may have been replaced through `weight_mut` / `bias_param_mut`.
        let (ws, want) = (self.weight.value.shape(), self.weight_shape());
        assert!(
            ws == want && self.weight.grad.shape() == want,
            "{}: weight has shape {ws} (grad {}), expected {want}",
            self.describe(),
            self.weight.grad.shape()
        );
        if let Some(b) = &self.bias {
            let bs = b.value.shape();
            assert!(
                bs.numel() == self.out_channels && b.grad.len() == self.out_channels,
                "{}: bias has shape {bs}, expected [{}]",
                self.describe(),
                self.out_channels
            );
        }
        let (n, _, h, w) = input.nchw().expect("checked by output_shape");
        self.geometry(n, h, w)
    }

    /// Batch chunks: a few per thread (so that a thread slowed by other work on a shared
    /// machine hands its remaining chunks to the others), at least one image each.
    /// Returns the chunk size and count, with a workspace for each chunk.
    fn chunks(&mut self, n: usize) -> (usize, usize) {
        const PER_THREAD: usize = 4;
        let threads = rayon::current_num_threads().max(1);
        let chunk = n.div_ceil((PER_THREAD * threads).min(n).max(1)).max(1);
        let count = n.div_ceil(chunk);
        if self.workspaces.len() < count {
            self.workspaces.resize_with(count, Workspace::default);
        }
        (chunk, count)
    }

    /// Puts the weights in the form `algo` needs for the forward pass (`input_grad`: for the
    /// input gradient) into `self.packed`.
    fn pack_weights(&mut self, algo: ConvAlgorithm, g: &ConvGeometry, input_grad: bool) {
        let w = self.weight.value.data();
        let packed = &mut self.packed;
        match (algo, input_grad) {
            (ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4x4, false) => {
                winograd::pack_forward(winograd_tile(algo), g, w, packed)
            }
            (ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4x4, true) => {
                winograd::pack_input_grad(winograd_tile(algo), g, w, packed)
            }
            (ConvAlgorithm::Direct3x3, false) => direct::pack_forward(g, w, packed),
            (ConvAlgorithm::Direct3x3, true) => direct::pack_input_grad(g, w, packed),
            // im2col + GEMM multiplies the OIHW weight as it is.
            (ConvAlgorithm::Im2colGemm | ConvAlgorithm::Auto, _) => {}
        }
    }

    fn backward_pass(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let g = self.geometry_for(x.shape());
        let want = Shape::from([g.batch, self.out_channels, g.out_h(), g.out_w()]);
        assert!(
            grad_out.shape() == want,
            "{}: grad_out has shape {}, the output of input {} has shape {want}",
            self.describe(),
            grad_out.shape(),
            x.shape()
        );
        if self.relu {
            assert!(
                self.bufs.out().shape() == want,
                "{}: backward with fused ReLU needs the forward output of the same input",
                self.describe()
            );
        }
        if !need_input_grad {
            self.bufs.skip_grad();
        }
        if g.batch == 0 {
            return if need_input_grad {
                self.bufs.grad_for(x.shape())
            } else {
                self.bufs.grad()
            };
        }
        let w_algo = self.algorithm.choose_weight_grad(&g);
        let gx_algo = need_input_grad.then(|| self.algorithm.choose(&g));
        if let Some(a) = gx_algo {
            self.pack_weights(a, &g, true);
        }
        let (chunk, nchunks) = self.chunks(g.batch);
        let par = nchunks == 1 && rayon::current_num_threads() > 1;
        // Images per call: as many as the algorithms take at once.
        let wino = w_algo
            .winograd_tile()
            .or(gx_algo.and_then(|a| a.winograd_tile()));
        let per_call = match (w_algo, wino) {
            (ConvAlgorithm::Direct3x3, _) => direct::images_per_call(&g),
            (_, Some(tile)) => winograd::images_per_pass(tile, &g),
            _ => im2col::images_per_call(&g),
        };
        let sum_len = weight_sum_len(w_algo, &g);
        let (in_item, out_item, plane) = (g.in_item(), g.out_item(), g.out_h() * g.out_w());
        let (out, grad_in) = self.bufs.out_and_grad_for(if need_input_grad {
            x.shape()
        } else {
            Shape::from([0])
        });
        let (xs, gys, out) = (x.data(), grad_out.data(), out.data());
        let (w, packed, relu) = (self.weight.value.data(), &self.packed[..], self.relu);
        let body = |c: usize, gx: &mut [f32], ws: &mut Workspace| {
            grow(&mut ws.weight_grad_sum, sum_len).fill(0.0);
            grow(&mut ws.bias_grad_sum, g.out_channels).fill(0.0);
            let first = c * chunk;
            let count = chunk.min(g.batch - first);
            for start in (0..count).step_by(per_call) {
                let images = per_call.min(count - start);
                let img0 = first + start;
                let range = img0 * out_item..(img0 + images) * out_item;
                let mut gy = &gys[range.clone()];
                if relu {
                    let m = grow(&mut ws.masked_grad, images * out_item);
                    simd::relu_backward(&out[range], gy, m);
                    gy = m;
                }
                for (i, row) in gy.chunks_exact(plane).enumerate() {
                    ws.bias_grad_sum[i % g.out_channels] += simd::sum(row);
                }
                let b = BackwardImages {
                    g: &g,
                    x: &xs[img0 * in_item..(img0 + images) * in_item],
                    gy,
                    images,
                    par,
                };
                // Empty when the input gradient is not wanted.
                let len = gx.len();
                let gxg =
                    &mut gx[(start * in_item).min(len)..((start + images) * in_item).min(len)];
                let sum = &mut ws.weight_grad_sum[..sum_len];
                let s = &mut ws.scratch;
                // One call when one algorithm gives both gradients (sharing its transforms).
                match gx_algo {
                    Some(a) if a == w_algo => {
                        backward_with(a, &b, w, packed, s, Some(gxg), Some(sum))
                    }
                    Some(a) => {
                        backward_with(w_algo, &b, w, packed, s, None, Some(sum));
                        backward_with(a, &b, w, packed, s, Some(gxg), None);
                    }
                    None => backward_with(w_algo, &b, w, packed, s, None, Some(sum)),
                }
            }
        };
        let workspaces = &mut self.workspaces[..nchunks];
        if need_input_grad {
            grad_in
                .data_mut()
                .par_chunks_mut(chunk * in_item)
                .zip(workspaces.par_iter_mut())
                .enumerate()
                .for_each(|(c, (gx, ws))| body(c, gx, ws));
        } else {
            workspaces
                .par_iter_mut()
                .enumerate()
                .for_each(|(c, ws)| body(c, &mut [], ws));
        }
        // Reduce the chunks' partial sums: no two threads wrote the same memory.
        let (first, rest) = self.workspaces[..nchunks].split_at_mut(1);
        let (sum, bias_sum) = (
            &mut first[0].weight_grad_sum[..sum_len],
            &mut first[0].bias_grad_sum,
        );
        for ws in rest.iter() {
            simd::add_assign(sum, &ws.weight_grad_sum[..sum_len]);
            simd::add_assign(
                &mut bias_sum[..g.out_channels],
                &ws.bias_grad_sum[..g.out_channels],
            );
        }
        let gw = self.weight.grad.data_mut();
        match w_algo {
            ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4x4 => {
                winograd::finish_weight_grad(winograd_tile(w_algo), &g, sum, gw)
            }
            _ => simd::add_assign(gw, sum),
        }
        if let Some(b) = self.bias.as_mut() {
            simd::add_assign(b.grad.data_mut(), &bias_sum[..g.out_channels]);
        }
        self.bufs.grad()
    }
}

/// Length of a chunk's weight-gradient sums for `algo` (Winograd sums in its transformed
/// domain, the others in OIHW).
fn weight_sum_len(algo: ConvAlgorithm, g: &ConvGeometry) -> usize {
    match algo {
        ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4x4 => {
            winograd::weight_sum_len(winograd_tile(algo), g)
        }
        _ => g.out_channels * g.kernel_len(),
    }
}

/// The Winograd variant of a Winograd `algo`.
fn winograd_tile(algo: ConvAlgorithm) -> winograd::WinogradTile {
    algo.winograd_tile()
        .expect("called for the Winograd algorithms only")
}

/// The backward of one group of images by `algo`: weight-gradient sums and/or input gradient.
fn backward_with(
    algo: ConvAlgorithm,
    b: &BackwardImages<'_>,
    w: &[f32],
    packed: &[f32],
    s: &mut AlgorithmScratch,
    gx: Option<&mut [f32]>,
    sum: Option<&mut [f32]>,
) {
    match algo {
        ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4x4 => {
            winograd::backward(winograd_tile(algo), b, packed, &mut s.winograd, gx, sum)
        }
        ConvAlgorithm::Direct3x3 => direct::backward(b, packed, &mut s.direct, gx, sum),
        ConvAlgorithm::Im2colGemm | ConvAlgorithm::Auto => {
            im2col::backward(b, w, &mut s.im2col, gx, sum)
        }
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let g = self.geometry_for(x.shape());
        if g.batch == 0 {
            return self
                .bufs
                .out_for(Shape::from([0, self.out_channels, g.out_h(), g.out_w()]));
        }
        let algo = self.algorithm.choose(&g);
        self.pack_weights(algo, &g, false);
        let (chunk, nchunks) = self.chunks(g.batch);
        let par = nchunks == 1 && rayon::current_num_threads() > 1;
        let ep = Epilogue {
            bias: self.bias.as_ref().map(|b| b.value.data()),
            relu: self.relu,
        };
        let (xs, w, packed) = (x.data(), self.weight.value.data(), &self.packed[..]);
        let in_chunk = chunk * g.in_item();
        let out = self.bufs.out_for(Shape::from([
            g.batch,
            self.out_channels,
            g.out_h(),
            g.out_w(),
        ]));
        out.data_mut()
            .par_chunks_mut(chunk * g.out_item())
            .zip(xs.par_chunks(in_chunk))
            .zip(self.workspaces.par_iter_mut())
            .for_each(|((ys, x), ws)| {
                let f = ForwardImages::new(&g, x, packed, ep, par);
                let scratch = &mut ws.scratch;
                match algo {
                    ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4x4 => {
                        winograd::forward(winograd_tile(algo), &f, ys, &mut scratch.winograd)
                    }
                    ConvAlgorithm::Direct3x3 => direct::forward(&f, ys, &mut scratch.direct),
                    ConvAlgorithm::Im2colGemm | ConvAlgorithm::Auto => {
                        let f = ForwardImages { weights: w, ..f };
                        im2col::forward(&f, ys, &mut scratch.im2col)
                    }
                }
            });
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        self.backward_pass(x, grad_out, need_input_grad)
    }

    crate::buffers::buffered_outputs!();

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&format!("{prefix}weight"), &mut self.weight);
        if let Some(b) = self.bias.as_mut() {
            f(&format!("{prefix}bias"), b);
        }
    }

    fn reset_parameters(&mut self, rng: &mut Rng) {
        let fan_in = self.fan_in();
        self.weight.value = init::torch_default(self.weight_shape(), fan_in, rng);
        if let Some(b) = self.bias.as_mut() {
            b.value = init::torch_default([self.out_channels], fan_in, rng);
        }
        if self.dirac {
            self.set_dirac();
        }
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        let (n, c, h, w) = crate::layer::nchw(input, || self.describe())?;
        if c != self.in_channels {
            return Err(LayerError(format!(
                "{}: input shape {input} has {c} channels, expected [N, {}, H, W]",
                self.describe(),
                self.in_channels
            )));
        }
        let g = self.geometry(n, h, w);
        g.validate()
            .map_err(|e| LayerError(format!("{e} (input shape {input})")))?;
        Ok(Shape::from([n, self.out_channels, g.out_h(), g.out_w()]))
    }

    fn flops(&self, input: Shape) -> u64 {
        match input.nchw() {
            Ok((n, _, h, w)) if self.output_shape(input).is_ok() => self.geometry(n, h, w).flops(),
            _ => 0,
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "Conv2d({}->{}, k{}, s{}, p{}",
            self.in_channels,
            self.out_channels,
            self.kernel.short(),
            self.stride.short(),
            self.padding.short()
        );
        if self.dilation != Pair(1, 1) {
            s += &format!(", d{}", self.dilation.short());
        }
        if self.groups != 1 {
            s += &format!(", groups {}", self.groups);
        }
        if self.bias.is_none() {
            s += ", no bias";
        }
        if self.relu {
            s += ", relu";
        }
        s + ")"
    }

    fn absorb_relu_after(&mut self) -> bool {
        if self.relu {
            return false;
        }
        self.relu = true;
        true
    }
}
