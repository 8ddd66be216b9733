//! Max, average and global average pooling layers with vectorised kernels.
//!
//! The plane kernels ([`max_pool2d_plane`], [`avg_pool2d_plane`] and their backward
//! functions) work on one `H x W` channel plane at a time, a row of window taps at a time:
//! for stride 1 each step is a contiguous run the compiler turns into SIMD max/add, and the
//! common 2x2 stride-2 max pool has an explicit vector path; every kernel runs at the SIMD level
//! chosen at run time (`ember_tensor::simd`). Layers run the planes
//! of a batch in parallel with rayon. Max pooling's backward recomputes each window's first
//! maximum from the input instead of storing indices, so forward stays a pure reduction.

mod kernels;

use ember_tensor::{Shape, Tensor, simd};
use rayon::prelude::*;

pub use kernels::{
    PoolGeometry, avg_pool2d_backward_plane, avg_pool2d_plane, is_2x2_stride_2,
    max_pool2d_backward_2x2_plane, max_pool2d_backward_plane, max_pool2d_plane,
};

use crate::buffers::Buffers;
use crate::{Layer, LayerError, Mode, Pair};

/// The stride and padding options of a windowed pool (their field in `inner`), the
/// padding's documentation `$padding_doc`.
macro_rules! window_options {
    ($padding_doc:literal) => {
        /// Stride (default: the kernel size).
        pub fn stride(mut self, s: impl Into<Pair>) -> Self {
            self.inner.stride = s.into();
            self
        }

        #[doc = $padding_doc]
        pub fn padding(mut self, p: impl Into<Pair>) -> Self {
            self.inner.padding = p.into();
            self
        }
    };
}

/// What the two windowed pooling layers share: options, buffers, shape checks.
#[derive(Clone, Debug)]
struct Windowed {
    name: &'static str,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    bufs: Buffers,
}

impl Windowed {
    fn new(name: &'static str, kernel: Pair) -> Self {
        Windowed {
            name,
            kernel,
            stride: kernel,
            padding: Pair(0, 0),
            bufs: Buffers::EMPTY,
        }
    }

    fn geometry(&self, input: Shape) -> Result<PoolGeometry, LayerError> {
        let (batch, channels, height, width) = crate::layer::nchw(input, || self.describe())?;
        let g = PoolGeometry {
            batch,
            channels,
            height,
            width,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        g.validate(&self.describe())
            .map_err(|e| LayerError(format!("{e} (input shape {input})")))?;
        Ok(g)
    }

    fn geometry_or_panic(&self, input: Shape) -> PoolGeometry {
        self.geometry(input).unwrap_or_else(|e| panic!("{e}"))
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        let g = self.geometry(input)?;
        Ok(Shape::from([g.batch, g.channels, g.out_h(), g.out_w()]))
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "{}(k{}, s{}",
            self.name,
            self.kernel.short(),
            self.stride.short()
        );
        if self.padding != Pair(0, 0) {
            s += &format!(", p{}", self.padding.short());
        }
        s + ")"
    }

    fn flops(&self, input: Shape) -> u64 {
        self.output_shape(input)
            .map_or(0, |s| (s.numel() * self.kernel.0 * self.kernel.1) as u64)
    }

    /// Runs `f(x_plane, y_plane)` over all planes in parallel.
    fn forward(
        &mut self,
        x: &Tensor,
        f: impl Fn(&[f32], &PoolGeometry, &mut [f32]) + Sync,
    ) -> &Tensor {
        let g = self.geometry_or_panic(x.shape());
        let out = self
            .bufs
            .out_for(Shape::from([g.batch, g.channels, g.out_h(), g.out_w()]));
        let (pin, pout) = (g.height * g.width, g.out_h() * g.out_w());
        if pout > 0 && pin > 0 {
            let xs = x.data();
            out.data_mut()
                .par_chunks_mut(pout)
                .enumerate()
                .for_each(|(i, y)| f(&xs[i * pin..(i + 1) * pin], &g, y));
        }
        out
    }

    fn check_grad(&self, g: &PoolGeometry, grad_out: &Tensor) {
        let want = Shape::from([g.batch, g.channels, g.out_h(), g.out_w()]);
        assert!(
            grad_out.shape() == want,
            "{}: grad_out has shape {}, expected {want}",
            self.describe(),
            grad_out.shape()
        );
    }
}

/// Max pooling (`-inf` padding), PyTorch semantics without ceil mode or dilation.
///
/// ```
/// use ember_layers::{pool::MaxPool2d, Layer, Mode};
/// use ember_tensor::Tensor;
/// let mut pool = MaxPool2d::new(2);
/// let x = Tensor::from_vec([1, 1, 2, 2], vec![1.0, 4.0, 3.0, 2.0]).unwrap();
/// assert_eq!(pool.forward(&x, Mode::Eval).data(), &[4.0]);
/// ```
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    inner: Windowed,
    relu: bool,
}

impl MaxPool2d {
    /// A max pool with window `kernel`, stride equal to the window, no padding.
    pub fn new(kernel: impl Into<Pair>) -> Self {
        MaxPool2d {
            inner: Windowed::new("MaxPool2d", kernel.into()),
            relu: false,
        }
    }

    /// Fuses a ReLU in front of the pool: the layer computes `maxpool(relu(x))`, which
    /// equals `relu(maxpool(x))`, in one pass (default off).
    pub fn relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    window_options!("Padding on each side, read as `-inf` (default 0; at most half the kernel).");
}

/// The [`Layer`] methods both windowed pools answer from their shared window `inner`: the
/// output buffers, output shape and FLOPs.
macro_rules! from_window {
    () => {
        crate::buffers::buffered_outputs!(inner.bufs);

        fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
            self.inner.output_shape(input)
        }

        fn flops(&self, input: Shape) -> u64 {
            self.inner.flops(input)
        }
    };
}

impl Layer for MaxPool2d {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        if self.relu {
            self.inner.forward(x, |x, g, y| {
                max_pool2d_plane(x, g, y);
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            })
        } else {
            self.inner.forward(x, max_pool2d_plane)
        }
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let g = self.inner.geometry_or_panic(x.shape());
        self.inner.check_grad(&g, grad_out);
        assert!(
            self.inner.bufs.out().shape() == grad_out.shape(),
            "{}: backward needs the forward output of the same input",
            self.inner.describe()
        );
        if !need_input_grad {
            return self.inner.bufs.skip_grad();
        }
        let (out, grad_in) = self.inner.bufs.out_and_grad_for(x.shape());
        let (pin, pout) = (g.height * g.width, g.out_h() * g.out_w());
        if pin > 0 {
            let (xs, ys, gys) = (x.data(), out.data(), grad_out.data());
            let relu = self.relu;
            let fast = is_2x2_stride_2(&g);
            grad_in
                .data_mut()
                .par_chunks_mut(pin)
                .enumerate()
                .for_each(|(i, gx)| {
                    let (x, o) = (&xs[i * pin..(i + 1) * pin], i * pout..(i + 1) * pout);
                    if fast {
                        let (h, w) = (g.height, g.width);
                        max_pool2d_backward_2x2_plane(x, &ys[o.clone()], &gys[o], h, w, relu, gx);
                    } else {
                        gx.fill(0.0);
                        max_pool2d_backward_plane(x, &ys[o.clone()], &gys[o], &g, relu, gx);
                    }
                });
        }
        grad_in
    }

    from_window!();

    fn describe(&self) -> String {
        let d = self.inner.describe();
        if self.relu { format!("ReLU+{d}") } else { d }
    }

    /// `maxpool(relu(x)) = relu(maxpool(x))`, and the gradient of the first maximum of
    /// `relu(x)` reaches the same input as the fused backward's (or is zeroed by ReLU).
    fn absorb_relu_before(&mut self) -> bool {
        if self.relu {
            return false;
        }
        self.relu = true;
        true
    }
}

/// Average pooling (zero padding), PyTorch semantics including `count_include_pad`.
///
/// ```
/// use ember_layers::{pool::AvgPool2d, Layer, Mode};
/// use ember_tensor::Tensor;
/// let mut pool = AvgPool2d::new(2);
/// let x = Tensor::from_vec([1, 1, 2, 2], vec![1.0, 4.0, 3.0, 2.0]).unwrap();
/// assert_eq!(pool.forward(&x, Mode::Eval).data(), &[2.5]);
/// ```
#[derive(Clone, Debug)]
pub struct AvgPool2d {
    inner: Windowed,
    count_include_pad: bool,
    scaled: Vec<f32>,
}

impl AvgPool2d {
    /// An average pool with window `kernel`, stride equal to the window, no padding.
    pub fn new(kernel: impl Into<Pair>) -> Self {
        AvgPool2d {
            inner: Windowed::new("AvgPool2d", kernel.into()),
            count_include_pad: true,
            scaled: Vec::new(),
        }
    }

    window_options!("Zero padding on each side (default 0; at most half the kernel).");

    /// Whether padded cells count in the divisor (default true, as in PyTorch).
    pub fn count_include_pad(mut self, yes: bool) -> Self {
        self.count_include_pad = yes;
        self
    }
}

impl Layer for AvgPool2d {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let cip = self.count_include_pad;
        self.inner
            .forward(x, |x, g, y| avg_pool2d_plane(x, g, cip, y))
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let g = self.inner.geometry_or_panic(x.shape());
        self.inner.check_grad(&g, grad_out);
        if !need_input_grad {
            return self.inner.bufs.skip_grad();
        }
        let grad_in = self.inner.bufs.grad_for(x.shape());
        let (pin, pout, wo) = (g.height * g.width, g.out_h() * g.out_w(), g.out_w());
        let cip = self.count_include_pad;
        if pin > 0 {
            // One scratch row per plane keeps the planes independent.
            let planes = g.batch * g.channels;
            if self.scaled.len() < planes * wo {
                self.scaled.resize(planes * wo, 0.0);
            }
            let gys = grad_out.data();
            grad_in
                .data_mut()
                .par_chunks_mut(pin)
                .zip(self.scaled.par_chunks_mut(wo.max(1)))
                .enumerate()
                .for_each(|(i, (gx, row))| {
                    gx.fill(0.0);
                    avg_pool2d_backward_plane(&gys[i * pout..(i + 1) * pout], &g, cip, row, gx);
                });
        }
        grad_in
    }

    from_window!();

    fn describe(&self) -> String {
        let d = self.inner.describe();
        if self.count_include_pad || self.inner.padding == Pair(0, 0) {
            d
        } else {
            format!("{}, exclude pad)", d.trim_end_matches(')'))
        }
    }
}

/// Global average pooling: `[N, C, H, W] -> [N, C, 1, 1]`, the mean of each plane.
#[derive(Clone, Debug)]
pub struct GlobalAvgPool2d {
    bufs: Buffers,
}

impl Default for GlobalAvgPool2d {
    fn default() -> Self {
        Self::new()
    }
}

impl GlobalAvgPool2d {
    /// A global average pool.
    pub fn new() -> Self {
        GlobalAvgPool2d {
            bufs: Buffers::EMPTY,
        }
    }

    fn nchw(input: Shape) -> (usize, usize, usize, usize) {
        input
            .nchw()
            .unwrap_or_else(|_| panic!("GlobalAvgPool2d: input shape {input} is not NCHW"))
    }
}

impl Layer for GlobalAvgPool2d {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let (n, c, h, w) = Self::nchw(x.shape());
        let out = self.bufs.out_for(Shape::from([n, c, 1, 1]));
        let plane = h * w;
        if plane == 0 {
            out.fill(f32::NAN);
            return out;
        }
        let xs = x.data();
        out.data_mut()
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, y)| *y = simd::sum(&xs[i * plane..(i + 1) * plane]) / plane as f32);
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let (n, c, h, w) = Self::nchw(x.shape());
        let want = Shape::from([n, c, 1, 1]);
        assert!(
            grad_out.shape() == want,
            "GlobalAvgPool2d: grad_out has shape {}, expected {want}",
            grad_out.shape()
        );
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        let grad_in = self.bufs.grad_for(x.shape());
        let plane = h * w;
        if plane > 0 {
            let gys = grad_out.data();
            grad_in
                .data_mut()
                .par_chunks_mut(plane)
                .enumerate()
                .for_each(|(i, gx)| gx.fill(gys[i] / plane as f32));
        }
        grad_in
    }

    crate::buffers::buffered_outputs!();

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        let (n, c, h, w) = input
            .nchw()
            .map_err(|_| LayerError(format!("GlobalAvgPool2d: input shape {input} is not NCHW")))?;
        if h == 0 || w == 0 {
            return Err(LayerError(format!(
                "GlobalAvgPool2d: input shape {input} has an empty plane"
            )));
        }
        Ok(Shape::from([n, c, 1, 1]))
    }

    fn flops(&self, input: Shape) -> u64 {
        input.numel() as u64
    }

    fn describe(&self) -> String {
        "GlobalAvgPool2d".into()
    }
}
