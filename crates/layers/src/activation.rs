//! Element-wise layers: one [`Elementwise`] layer type over a function and its derivative
//! ([`ElementwiseOp`]): [`ReLU`](struct@ReLU), [`LeakyReLU`], [`GELU`](struct@GELU) and
//! [`Scale`] (multiplication by a constant).

use std::fmt::Debug;

use std::f32::consts::FRAC_1_SQRT_2;

use ember_tensor::simd::Simd;
use ember_tensor::{Shape, Tensor, simd, simd_dispatch};

use crate::buffers::{Buffers, expect_shape};
use crate::{Layer, LayerError, Mode, par};

/// An element-wise function `f` and its derivative, applied by an [`Elementwise`] layer to
/// every element (in parallel chunks, at the SIMD level chosen at run time).
pub trait ElementwiseOp: Clone + Debug + Send + Sync + 'static {
    /// `out[i] = f(x[i])`.
    fn forward(&self, x: &[f32], out: &mut [f32]);
    /// `out[i] = f'(x[i]) * g[i]`, with `x` the layer's input.
    fn backward(&self, x: &[f32], g: &[f32], out: &mut [f32]);
    /// For summaries, e.g. `LeakyReLU(0.01)`.
    fn describe(&self) -> String;
    /// Floating-point operations per element (for summaries).
    fn flops_per_element(&self) -> u64 {
        1
    }
    /// Whether this is a plain ReLU, which `Sequential::fuse_relu` may fold into a neighbour.
    const IS_RELU: bool = false;
}

/// A layer applying an [`ElementwiseOp`] to every element; the output has the input's shape.
#[derive(Clone, Debug, Default)]
pub struct Elementwise<Op> {
    op: Op,
    bufs: Buffers,
}

impl<Op: ElementwiseOp> Elementwise<Op> {
    /// The layer applying `op`.
    pub fn from_op(op: Op) -> Self {
        Elementwise {
            op,
            bufs: Buffers::EMPTY,
        }
    }

    /// The function this layer applies.
    pub fn op(&self) -> &Op {
        &self.op
    }
}

impl<Op: ElementwiseOp> Layer for Elementwise<Op> {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let op = &self.op;
        let out = self.bufs.out_for(x.shape());
        par::unary(x.data(), out.data_mut(), |x, o| op.forward(x, o));
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let name = self.op.describe();
        expect_shape(&name, "grad_out", grad_out.shape(), x.shape());
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        let op = &self.op;
        let g = self.bufs.grad_for(x.shape());
        par::binary(x.data(), grad_out.data(), g.data_mut(), |x, g, o| {
            op.backward(x, g, o)
        });
        g
    }

    crate::buffers::buffered_outputs!();

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        Ok(input)
    }

    fn flops(&self, input: Shape) -> u64 {
        input.numel() as u64 * self.op.flops_per_element()
    }

    fn describe(&self) -> String {
        self.op.describe()
    }

    fn is_relu(&self) -> bool {
        Op::IS_RELU
    }
}

/// `max(x, 0)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReluOp;

impl ElementwiseOp for ReluOp {
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        simd::relu(x, out)
    }
    fn backward(&self, x: &[f32], g: &[f32], out: &mut [f32]) {
        simd::relu_backward(x, g, out)
    }
    fn describe(&self) -> String {
        "ReLU".into()
    }
    const IS_RELU: bool = true;
}

/// `max(x, 0)`, element-wise. Write it as the constant [`ReLU`](const@ReLU):
/// `Sequential::new().add(ReLU)`, or `let mut relu = ReLU;` to use it on its own (the
/// layer owns its output buffer, so it is a struct with private fields behind a constant
/// rather than a unit struct; `&mut ReLU` would borrow a temporary).
pub type ReLU = Elementwise<ReluOp>;

/// A fresh [`ReLU`](type@ReLU) layer, so that `ReLU` reads like a unit struct.
#[allow(non_upper_case_globals)]
pub const ReLU: ReLU = Elementwise {
    op: ReluOp,
    bufs: Buffers::EMPTY,
};

/// `x` where `x > 0`, else `slope * x`.
#[derive(Clone, Copy, Debug)]
pub struct LeakyReluOp {
    slope: f32,
}

impl ElementwiseOp for LeakyReluOp {
    // Lane-wise selects the compiler turns into SIMD blends, compiled per level.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        let slope = self.slope;
        simd_dispatch!(_s => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = if v > 0.0 { v } else { slope * v };
            }
        })
    }
    fn backward(&self, x: &[f32], g: &[f32], out: &mut [f32]) {
        let slope = self.slope;
        simd_dispatch!(_s => {
            for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
                *o = if v > 0.0 { g } else { slope * g };
            }
        })
    }
    fn describe(&self) -> String {
        format!("LeakyReLU({})", self.slope)
    }
}

/// `x` where `x > 0`, else `negative_slope * x` (PyTorch's `LeakyReLU`, default slope 0.01).
pub type LeakyReLU = Elementwise<LeakyReluOp>;

impl LeakyReLU {
    /// A leaky ReLU with the given negative slope.
    pub fn new(negative_slope: f32) -> Self {
        Elementwise::from_op(LeakyReluOp {
            slope: negative_slope,
        })
    }

    /// The negative slope.
    pub fn negative_slope(&self) -> f32 {
        self.op.slope
    }
}

impl Default for LeakyReluOp {
    fn default() -> Self {
        LeakyReluOp { slope: 0.01 }
    }
}

/// `factor * x`.
#[derive(Clone, Copy, Debug)]
pub struct ScaleOp {
    factor: f32,
}

impl ElementwiseOp for ScaleOp {
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        out.copy_from_slice(x);
        simd::scale(out, self.factor);
    }
    fn backward(&self, _x: &[f32], g: &[f32], out: &mut [f32]) {
        self.forward(g, out)
    }
    fn describe(&self) -> String {
        format!("Scale({})", self.factor)
    }
}

/// Multiplies its input by a constant (ResNet-9 scales its logits by 0.125).
pub type Scale = Elementwise<ScaleOp>;

impl Scale {
    /// A layer computing `factor * x`.
    pub fn new(factor: f32) -> Self {
        Elementwise::from_op(ScaleOp { factor })
    }

    /// The factor.
    pub fn factor(&self) -> f32 {
        self.op.factor
    }
}

/// `x Φ(x)`, `Φ` the standard normal distribution function (the exact form, PyTorch's
/// `GELU()` default).
#[derive(Clone, Copy, Debug, Default)]
pub struct GeluOp;

impl ElementwiseOp for GeluOp {
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        simd_dispatch!(s => gelu_vectors(s, x, None, out))
    }
    fn backward(&self, x: &[f32], g: &[f32], out: &mut [f32]) {
        simd_dispatch!(s => gelu_vectors(s, x, Some(g), out))
    }
    fn describe(&self) -> String {
        "GELU".into()
    }
    fn flops_per_element(&self) -> u64 {
        20
    }
}

/// GELU (`g = None`: `x Φ(x)`) or its input gradient (`g (Φ(x) + x φ(x))`) over whole
/// vectors, the tail in scalars.
#[inline(always)]
fn gelu_vectors<S: Simd>(s: S, x: &[f32], g: Option<&[f32]>, out: &mut [f32]) {
    let l = S::LANES;
    let body = out.len() / l * l;
    for (i, o) in out.chunks_exact_mut(l).enumerate() {
        let v = s.load(&x[i * l..]);
        let cdf = s.mul(
            s.splat(0.5),
            s.add(
                s.splat(1.0),
                erf_vector(s, s.mul(v, s.splat(FRAC_1_SQRT_2))),
            ),
        );
        let y = match g {
            None => s.mul(v, cdf),
            Some(g) => {
                let pdf = s.mul(
                    s.splat(INV_SQRT_2PI),
                    s.exp(s.mul(s.splat(-0.5), s.mul(v, v))),
                );
                s.mul(s.load(&g[i * l..]), s.mul_add(v, pdf, cdf))
            }
        };
        s.store(o, y);
    }
    for i in body..out.len() {
        let v = x[i];
        out[i] = match g {
            None => v * normal_cdf(v),
            Some(g) => g[i] * (normal_cdf(v) + v * normal_pdf(v)),
        };
    }
}

/// The Gaussian error linear unit `x Φ(x)`. Write it as the constant [`GELU`](const@GELU).
#[allow(clippy::upper_case_acronyms)]
pub type GELU = Elementwise<GeluOp>;

/// A fresh [`GELU`](type@GELU) layer, so that `GELU` reads like a unit struct.
#[allow(non_upper_case_globals)]
pub const GELU: GELU = Elementwise {
    op: GeluOp,
    bufs: Buffers::EMPTY,
};

/// `Φ(x) = (1 + erf(x / √2)) / 2`.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// `1 / √(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// `φ(x) = exp(-x²/2) / √(2π)`.
#[inline(always)]
fn normal_pdf(x: f32) -> f32 {
    INV_SQRT_2PI * (-0.5 * x * x).exp()
}

/// The coefficients of `P`, highest power first (see [`erf`]).
const ERFC_POLY: [f32; 10] = [
    0.170_872_77,
    -0.822_152_23,
    1.488_515_9,
    -1.135_204,
    0.278_868_07,
    -0.186_288_06,
    0.096_784_18,
    0.374_091_96,
    1.000_023_7,
    -1.265_512_2,
];

/// The error function in f32: erf(x) = sign(x) (1 - t·exp(-x² + P(t))) with
/// `t = 1 / (1 + |x|/2)` and `P` the degree-9 polynomial of Numerical Recipes' `erfc`
/// (fractional error below 1.2e-7 everywhere).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = ERFC_POLY.iter().fold(0.0, |acc, &c| acc * t + c);
    let erfc = t * (-z * z + p).exp();
    (1.0 - erfc).copysign(x)
}

/// [`erf`] lane by lane.
#[inline(always)]
fn erf_vector<S: Simd>(s: S, x: S::V) -> S::V {
    let z = s.abs(x);
    let t = s.div(s.splat(1.0), s.mul_add(s.splat(0.5), z, s.splat(1.0)));
    // A plain loop: an iterator's `fold` may not be inlined into the dispatch arm.
    let mut p = s.splat(ERFC_POLY[0]);
    for &c in &ERFC_POLY[1..] {
        p = s.mul_add(p, t, s.splat(c));
    }
    let erfc = s.mul(t, s.exp(s.sub(p, s.mul(z, z))));
    s.copysign(s.sub(s.splat(1.0), erfc), x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 erf against the f64 reference on [-8, 8].
    #[test]
    fn erf_matches_reference() {
        for i in -800..=800 {
            let x = i as f64 / 100.0;
            let want = crate::reference::dense::erf(x);
            let got = erf(x as f32) as f64;
            assert!((got - want).abs() <= 3e-7, "erf({x}) = {got}, want {want}");
        }
    }
}
