//! The `Conv2d` layer: parameters, algorithm choice, forward and backward over a batch.

use ember_tensor::gemm::{Op, gemm, gemm_serial};
use ember_tensor::{Rng, Shape, Tensor, init};
use rayon::prelude::*;

use super::direct::{conv2d_direct_3x3, direct_3x3_scratch_len, pack_3x3_weights, packed_3x3_len};
use super::panel_gemm::{panel_gemm, panel_len};
use super::winograd::{
    WINOGRAD_POSITIONS, WinogradTiles, winograd_input, winograd_len, winograd_output,
    winograd_plane, winograd_weights, winograd_weights_len,
};
use super::{ConvGeometry, im2col};
use crate::{Layer, LayerError, Mode, Pair, Param};

/// The seed a freshly built layer's parameters are drawn from (before `reset_parameters`).
const INIT_SEED: u64 = 0xC0_4E_2D;

/// How a [`Conv2d`] computes its forward pass (and its input gradient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Choose per shape by the measured rule in [`ConvAlgorithm::choose`].
    Auto,
    /// im2col + GEMM (any configuration).
    Im2colGemm,
    /// The direct 3x3 stride-1 SIMD kernel; falls back to im2col + GEMM for shapes it does
    /// not cover (see [`ConvAlgorithm::direct_applies`]).
    Direct3x3,
    /// Winograd F(2x2, 3x3) for every pass; falls back to im2col + GEMM for shapes it does
    /// not cover (see [`ConvAlgorithm::winograd_applies`]).
    Winograd,
}

impl ConvAlgorithm {
    /// Whether the direct kernel covers `g`: 3x3 kernel, stride 1, dilation 1, one group,
    /// padding at most 2 (so that the input gradient is a direct 3x3 convolution too).
    pub fn direct_applies(g: &ConvGeometry) -> bool {
        g.kernel == Pair(3, 3)
            && g.stride == Pair(1, 1)
            && g.dilation == Pair(1, 1)
            && g.groups == 1
            && g.padding.0 <= 2
            && g.padding.1 <= 2
    }

    /// Whether Winograd F(2x2, 3x3) covers `g`: 3x3 kernel, stride 1, dilation 1, one
    /// group (any padding).
    pub fn winograd_applies(g: &ConvGeometry) -> bool {
        g.kernel == Pair(3, 3)
            && g.stride == Pair(1, 1)
            && g.dilation == Pair(1, 1)
            && g.groups == 1
            && WinogradTiles::new(g.height, g.width, g.padding).is_some()
    }

    /// The algorithm `Auto` resolves to for `g`'s forward pass and input gradient.
    /// Measured (`tests/conv_speed.rs`, 2 threads, the five CIFAR-sized shapes): Winograd
    /// wherever both channel counts are at least 16 (forward 248-354 GFLOP/s against
    /// 189-215 for the direct kernel, input gradient 266-354 against 187-217); the direct
    /// kernel for the 3-channel first layer (forward 142 against Winograd's 64) and wherever
    /// it applies and Winograd does not; im2col + GEMM otherwise.
    pub fn choose(self, g: &ConvGeometry) -> ConvAlgorithm {
        match self {
            ConvAlgorithm::Winograd if Self::winograd_applies(g) => ConvAlgorithm::Winograd,
            ConvAlgorithm::Auto if Self::winograd_wins(g) => ConvAlgorithm::Winograd,
            ConvAlgorithm::Auto | ConvAlgorithm::Direct3x3 if Self::direct_applies(g) => {
                ConvAlgorithm::Direct3x3
            }
            _ => ConvAlgorithm::Im2colGemm,
        }
    }

    /// Where `Auto` takes Winograd: at least 16 channels in and out, and outputs of at most
    /// 64x64 (a pass holds at least one whole image's tiles, so larger images would make
    /// its buffers large; they take the direct kernel).
    fn winograd_wins(g: &ConvGeometry) -> bool {
        let small = WinogradTiles::new(g.height, g.width, g.padding)
            .is_some_and(|t| t.per_image() <= 32 * 32);
        Self::winograd_applies(g) && small && g.in_channels >= 16 && g.out_channels >= 16
    }

    /// The algorithm for the weight gradient. `Auto` takes Winograd where it takes it for
    /// the forward pass (weight gradient 210-280 GFLOP/s on the four deeper shapes against
    /// 159-194 for the direct kernel), the direct kernel for outputs at least 12 wide
    /// otherwise (the first layer: 64-74 against Winograd's 36; on 8x8 outputs the direct
    /// kernel's per-weight horizontal sums cost more than GEMM's packing), im2col + GEMM
    /// for the rest.
    pub fn choose_weight_grad(self, g: &ConvGeometry) -> ConvAlgorithm {
        let direct = Self::direct_applies(g);
        match self {
            ConvAlgorithm::Auto | ConvAlgorithm::Winograd
                if self.choose(g) == ConvAlgorithm::Winograd =>
            {
                ConvAlgorithm::Winograd
            }
            ConvAlgorithm::Direct3x3 if direct => ConvAlgorithm::Direct3x3,
            ConvAlgorithm::Auto if direct && g.out_w() >= 12 => ConvAlgorithm::Direct3x3,
            _ => ConvAlgorithm::Im2colGemm,
        }
    }
}

/// Per-chunk workspace: each batch chunk runs on one thread and owns one of these.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) cols: Vec<f32>,
    pub(super) grad_cols: Vec<f32>,
    pub(super) padded: Vec<f32>,
    pub(super) masked: Vec<f32>,
    pub(super) wgrad: Vec<f32>,
    pub(super) grad_weight: Vec<f32>,
    pub(super) grad_bias: Vec<f32>,
    pub(super) packed_b: Vec<f32>,
}

pub(super) fn grow(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

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
    pub(super) in_channels: usize,
    pub(super) out_channels: usize,
    pub(super) kernel: Pair,
    pub(super) stride: Pair,
    pub(super) padding: Pair,
    pub(super) dilation: Pair,
    pub(super) groups: usize,
    pub(super) relu: bool,
    pub(super) algorithm: ConvAlgorithm,
    pub(super) weight: Param,
    pub(super) bias: Option<Param>,
    pub(super) out: Tensor,
    pub(super) grad_in: Tensor,
    pub(super) packed: Vec<f32>,
    pub(super) scratch: Vec<Scratch>,
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
            algorithm: ConvAlgorithm::Auto,
            weight: Param::new(Tensor::zeros([0]), true),
            bias: Some(Param::new(Tensor::zeros([0]), false)),
            out: Tensor::zeros([0]),
            grad_in: Tensor::zeros([0]),
            packed: Vec::new(),
            scratch: Vec::new(),
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
    pub(super) fn geometry_for(&self, input: Shape) -> ConvGeometry {
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
    pub(super) fn chunks(n: usize) -> (usize, usize) {
        const PER_THREAD: usize = 4;
        let threads = rayon::current_num_threads().max(1);
        let chunk = n.div_ceil((PER_THREAD * threads).min(n).max(1)).max(1);
        (chunk, n.div_ceil(chunk))
    }
}

/// `C = op(A) op(B)`, on the calling thread or split over threads.
#[allow(clippy::too_many_arguments)]
pub(super) fn mm(
    par: bool,
    oa: Op,
    ob: Op,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    if par {
        gemm(oa, ob, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
    } else {
        gemm_serial(oa, ob, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
    }
}

pub(super) fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kernel == Pair(1, 1) && g.stride == Pair(1, 1) && g.padding == Pair(0, 0)
}

/// Adds the bias and applies the fused ReLU to one output image `[cout, p]`.
fn epilogue(y: &mut [f32], p: usize, bias: Option<&[f32]>, relu: bool) {
    for (co, row) in y.chunks_exact_mut(p).enumerate() {
        let b = bias.map_or(0.0, |b| b[co]);
        if relu {
            row.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
        } else if b != 0.0 {
            row.iter_mut().for_each(|v| *v += b);
        }
    }
}

/// im2col + GEMM forward of one image.
#[allow(clippy::too_many_arguments)]
fn forward_gemm(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    cols: &mut Vec<f32>,
    par: bool,
) {
    let p = g.out_h() * g.out_w();
    let (cig, cog, kl) = (g.in_per_group(), g.out_per_group(), g.kernel_len());
    let plane = g.height * g.width;
    for gi in 0..g.groups {
        let xg = &x[gi * cig * plane..(gi + 1) * cig * plane];
        let b: &[f32] = if is_pointwise(g) {
            xg
        } else {
            let c = grow(cols, kl * p);
            im2col(xg, cig, g, c);
            c
        };
        let yg = &mut y[gi * cog * p..(gi + 1) * cog * p];
        mm(
            par,
            Op::N,
            Op::N,
            cog,
            p,
            kl,
            &w[gi * cog * kl..],
            kl,
            b,
            p,
            0.0,
            yg,
            p,
        );
    }
    epilogue(y, p, bias, relu);
}

/// Tiles per Winograd pass: the transformed input and output of this many tiles stay
/// within L2 for the channel counts the rule picks Winograd for.
const WINOGRAD_TILES_PER_PASS: usize = 32;

/// Images per Winograd pass (at least one).
pub(super) fn winograd_images(tiles: &WinogradTiles) -> usize {
    (WINOGRAD_TILES_PER_PASS / tiles.per_image().max(1)).max(1)
}

/// Runs `f(pos, c_pos)` for the 16 positions of a Winograd product, `c_pos` the plane
/// (`plane` elements) of position `pos` in `c`; over threads when `par`.
pub(super) fn for_positions(
    par: bool,
    c: &mut [f32],
    plane: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let c = &mut c[..WINOGRAD_POSITIONS * plane];
    if par {
        c.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, cp)| f(p, cp));
    } else {
        c.chunks_mut(plane).enumerate().for_each(|(p, cp)| f(p, cp));
    }
}

/// Winograd forward of a chunk of images `xs` into `ys`, `u` the transformed weights.
#[allow(clippy::too_many_arguments)]
fn forward_winograd(
    g: &ConvGeometry,
    xs: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    ys: &mut [f32],
    s: &mut Scratch,
    par: bool,
) {
    let tiles = WinogradTiles::new(g.height, g.width, g.padding).expect("winograd applies");
    let (cin, cout) = (g.in_channels, g.out_channels);
    let (in_item, out_item) = (g.in_item(), g.out_item());
    let images = ys.len() / out_item;
    let step = winograd_images(&tiles);
    for first in (0..images).step_by(step) {
        let n = step.min(images - first);
        let t = tiles.columns(n);
        let v = grow(&mut s.cols, winograd_len(cin * t));
        let scratch = grow(&mut s.padded, tiles.scratch_len());
        winograd_input(&xs[first * in_item..], n, cin, &tiles, v, scratch);
        let m = grow(&mut s.grad_cols, winograd_len(cout * t));
        let (pu, pv) = (
            winograd_plane(panel_len(cout, cin)),
            winograd_plane(cin * t),
        );
        let cols = n * tiles.per_image();
        for_positions(par, m, winograd_plane(cout * t), |p, mp| {
            panel_gemm(cout, cols, cin, &u[p * pu..], &v[p * pv..], t, mp, t);
        });
        winograd_output(
            m,
            n,
            cout,
            &tiles,
            bias,
            relu,
            scratch,
            &mut ys[first * out_item..],
        );
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let g = self.geometry_for(x.shape());
        let (n, ho, wo) = (g.batch, g.out_h(), g.out_w());
        self.out.resize_for([n, self.out_channels, ho, wo]);
        if n == 0 {
            return &self.out;
        }
        let algo = self.algorithm.choose(&g);
        let (cin, cout) = (g.in_channels, g.out_channels);
        if algo == ConvAlgorithm::Direct3x3 {
            let len = packed_3x3_len(cout, cin);
            pack_3x3_weights(
                self.weight.value.data(),
                cout,
                cin,
                grow(&mut self.packed, len),
            );
        } else if algo == ConvAlgorithm::Winograd {
            let u = grow(&mut self.packed, winograd_weights_len(cout, cin, false));
            winograd_weights(self.weight.value.data(), cout, cin, false, u);
        }
        let (chunk, nchunks) = Conv2d::chunks(n);
        if self.scratch.len() < nchunks {
            self.scratch.resize_with(nchunks, Scratch::default);
        }
        let par = nchunks == 1 && rayon::current_num_threads() > 1;
        let (xs, w) = (x.data(), self.weight.value.data());
        let bias = self.bias.as_ref().map(|b| b.value.data());
        let (relu, packed) = (self.relu, &self.packed[..]);
        let (in_item, out_item) = (g.in_item(), g.out_item());
        self.out
            .data_mut()
            .par_chunks_mut(chunk * out_item)
            .zip(self.scratch.par_iter_mut())
            .enumerate()
            .for_each(|(c, (ys, s))| {
                if algo == ConvAlgorithm::Winograd {
                    let xs = &xs[c * chunk * in_item..][..ys.len() / out_item * in_item];
                    forward_winograd(&g, xs, packed, bias, relu, ys, s, par);
                    return;
                }
                for (i, y) in ys.chunks_exact_mut(out_item).enumerate() {
                    let xi = &xs[(c * chunk + i) * in_item..][..in_item];
                    if algo == ConvAlgorithm::Direct3x3 {
                        let pad = g.padding;
                        let sl = direct_3x3_scratch_len(g.in_channels, g.height, g.width, pad);
                        let scratch = grow(&mut s.padded, sl);
                        conv2d_direct_3x3(
                            xi,
                            g.in_channels,
                            g.height,
                            g.width,
                            pad,
                            packed,
                            g.out_channels,
                            bias,
                            relu,
                            scratch,
                            y,
                        );
                    } else {
                        forward_gemm(&g, xi, w, bias, relu, y, &mut s.cols, par);
                    }
                }
            });
        &self.out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        super::backward::backward(self, x, grad_out, need_input_grad);
        &self.grad_in
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn input_grad(&self) -> &Tensor {
        &self.grad_in
    }

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
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        let (n, c, h, w) = input.nchw().map_err(|_| {
            LayerError(format!(
                "{}: input shape {input} is not NCHW",
                self.describe()
            ))
        })?;
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
        let pair = |p: Pair| {
            if p.0 == p.1 {
                p.0.to_string()
            } else {
                format!("{}x{}", p.0, p.1)
            }
        };
        let mut s = format!(
            "Conv2d({}->{}, k{}, s{}, p{}",
            self.in_channels,
            self.out_channels,
            pair(self.kernel),
            pair(self.stride),
            pair(self.padding)
        );
        if self.dilation != Pair(1, 1) {
            s += &format!(", d{}", pair(self.dilation));
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
