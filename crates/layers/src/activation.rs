//! Element-wise layers: `ReLU`, `LeakyReLU` and `Scale` (multiplication by a constant).

use ember_tensor::{Shape, Tensor, simd, simd_dispatch};

use crate::buffers::{Buffers, expect_shape};
use crate::par;
use crate::{Layer, LayerError, Mode, Param};

/// `max(x, 0)`, element-wise. Write it as the constant [`ReLU`](const@ReLU):
/// `Sequential::new().add(ReLU)`, or `let mut relu = ReLU;` to use it on its own (the
/// layer owns its output buffer, so it is a struct with private fields behind a constant
/// rather than a unit struct; `&mut ReLU` would borrow a temporary).
#[derive(Clone, Debug, Default)]
pub struct ReLU {
    bufs: Buffers,
}

/// A fresh [`ReLU`](struct@ReLU) layer, so that `ReLU` reads like a unit struct.
#[allow(non_upper_case_globals)]
pub const ReLU: ReLU = ReLU {
    bufs: Buffers::EMPTY,
};

impl Layer for ReLU {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let out = self.bufs.out_for(x.shape());
        par::unary(x.data(), out.data_mut(), simd::relu);
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        expect_shape("ReLU", "grad_out", grad_out.shape(), x.shape());
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        let g = self.bufs.grad_for(x.shape());
        par::binary(x.data(), grad_out.data(), g.data_mut(), simd::relu_backward);
        g
    }

    fn output(&self) -> &Tensor {
        self.bufs.out()
    }

    fn input_grad(&self) -> &Tensor {
        self.bufs.grad()
    }

    fn visit_params(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        Ok(input)
    }

    fn flops(&self, input: Shape) -> u64 {
        input.numel() as u64
    }

    fn describe(&self) -> String {
        "ReLU".into()
    }

    fn is_relu(&self) -> bool {
        true
    }
}

/// `x` where `x > 0`, else `negative_slope * x` (PyTorch's `LeakyReLU`, default slope 0.01).
#[derive(Clone, Debug)]
pub struct LeakyReLU {
    slope: f32,
    bufs: Buffers,
}

impl LeakyReLU {
    /// A leaky ReLU with the given negative slope.
    pub fn new(negative_slope: f32) -> Self {
        LeakyReLU {
            slope: negative_slope,
            bufs: Buffers::EMPTY,
        }
    }

    /// The negative slope.
    pub fn negative_slope(&self) -> f32 {
        self.slope
    }
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU::new(0.01)
    }
}

/// Lane-wise selects the compiler turns into SIMD blends, compiled per level by the
/// dispatch (ember_tensor::simd has no leaky kernel).
fn leaky_forward(slope: f32, x: &[f32], out: &mut [f32]) {
    simd_dispatch!(_s => {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = if v > 0.0 { v } else { slope * v };
        }
    })
}

fn leaky_backward(slope: f32, x: &[f32], g: &[f32], out: &mut [f32]) {
    simd_dispatch!(_s => {
        for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
            *o = if v > 0.0 { g } else { slope * g };
        }
    })
}

impl Layer for LeakyReLU {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let slope = self.slope;
        let out = self.bufs.out_for(x.shape());
        par::unary(x.data(), out.data_mut(), |x, o| leaky_forward(slope, x, o));
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        expect_shape("LeakyReLU", "grad_out", grad_out.shape(), x.shape());
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        let slope = self.slope;
        let g = self.bufs.grad_for(x.shape());
        par::binary(x.data(), grad_out.data(), g.data_mut(), |x, g, o| {
            leaky_backward(slope, x, g, o)
        });
        g
    }

    fn output(&self) -> &Tensor {
        self.bufs.out()
    }

    fn input_grad(&self) -> &Tensor {
        self.bufs.grad()
    }

    fn visit_params(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        Ok(input)
    }

    fn flops(&self, input: Shape) -> u64 {
        input.numel() as u64
    }

    fn describe(&self) -> String {
        format!("LeakyReLU({})", self.slope)
    }
}

/// Multiplies its input by a constant (ResNet-9 scales its logits by 0.125).
#[derive(Clone, Debug)]
pub struct Scale {
    factor: f32,
    bufs: Buffers,
}

impl Scale {
    /// A layer computing `factor * x`.
    pub fn new(factor: f32) -> Self {
        Scale {
            factor,
            bufs: Buffers::EMPTY,
        }
    }

    /// The factor.
    pub fn factor(&self) -> f32 {
        self.factor
    }
}

fn scaled(factor: f32, x: &[f32], out: &mut [f32]) {
    out.copy_from_slice(x);
    simd::scale(out, factor);
}

impl Layer for Scale {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let f = self.factor;
        let out = self.bufs.out_for(x.shape());
        par::unary(x.data(), out.data_mut(), |x, o| scaled(f, x, o));
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        expect_shape("Scale", "grad_out", grad_out.shape(), x.shape());
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        let f = self.factor;
        let g = self.bufs.grad_for(x.shape());
        par::unary(grad_out.data(), g.data_mut(), |x, o| scaled(f, x, o));
        g
    }

    fn output(&self) -> &Tensor {
        self.bufs.out()
    }

    fn input_grad(&self) -> &Tensor {
        self.bufs.grad()
    }

    fn visit_params(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        Ok(input)
    }

    fn flops(&self, input: Shape) -> u64 {
        input.numel() as u64
    }

    fn describe(&self) -> String {
        format!("Scale({})", self.factor)
    }
}
