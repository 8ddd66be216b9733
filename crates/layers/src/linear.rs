//! The fully connected `Linear` layer: `y = x W^T + b`.

use ember_tensor::gemm::{MatMut, MatRef, gemm};
use ember_tensor::{Rng, Shape, Tensor, init, simd};

use crate::buffers::{Buffers, expect_shape, shape_or_panic};
use crate::{Layer, LayerError, Mode, Param};

/// The seed every `Linear` is initialised from at construction, so that a model is usable
/// at once and reproducible; a seeded run calls `reset_parameters` on the whole model.
const INIT_SEED: u64 = 0x11_7EA2;

/// A fully connected layer, `y = x W^T + b`, with PyTorch's layout and names: `weight` is
/// `[out_features, in_features]`, `bias` is `[out_features]`.
///
/// Shapes: input `[N, in_features]`, output `[N, out_features]` (put a
/// [`Flatten`](struct@crate::Flatten) before it for images).
///
/// ```
/// use ember_layers::{Layer, Linear, Mode};
/// use ember_tensor::Tensor;
/// let mut fc = Linear::new(3, 2).bias(false);
/// let y = fc.forward(&Tensor::zeros([4, 3]), Mode::Eval);
/// assert_eq!(y.shape().dims(), &[4, 2]);
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    in_features: usize,
    out_features: usize,
    weight: Param,
    bias: Option<Param>,
    bufs: Buffers,
}

impl Linear {
    /// A layer with a bias, initialised like PyTorch: weight and bias `U(±1/sqrt(in))`.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        let mut layer = Linear {
            in_features,
            out_features,
            weight: Param::new(Tensor::zeros([out_features, in_features]), true),
            bias: Some(Param::new(Tensor::zeros([out_features]), false)),
            bufs: Buffers::EMPTY,
        };
        layer.reset_parameters(&mut Rng::new(INIT_SEED));
        layer
    }

    /// With or without a bias (default: with).
    pub fn bias(mut self, bias: bool) -> Self {
        match (bias, self.bias.is_some()) {
            (false, _) => self.bias = None,
            (true, false) => {
                let mut rng = Rng::new(INIT_SEED).fork(1);
                let b = init::torch_default([self.out_features], self.in_features, &mut rng);
                self.bias = Some(Param::new(b, false));
            }
            (true, true) => {}
        }
        self
    }

    /// `in_features`.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// `out_features`.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The weight `[out_features, in_features]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The bias `[out_features]`, if any.
    pub fn bias_param(&self) -> Option<&Param> {
        self.bias.as_ref()
    }
}

impl Layer for Linear {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let shape = shape_or_panic("Linear", self.output_shape(x.shape()));
        let (n, k, m) = (shape.dim(0), self.in_features, self.out_features);
        let out = self.bufs.out_for(shape);
        let y = out.data_mut();
        let w = MatRef::new(self.weight.value.data(), m, k, k);
        gemm(
            1.0,
            MatRef::new(x.data(), n, k, k),
            w.t(),
            0.0,
            MatMut::new(y, n, m, m),
        );
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(m.max(1)) {
                simd::add_assign(row, b.value.data());
            }
        }
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let shape = shape_or_panic("Linear", self.output_shape(x.shape()));
        expect_shape("Linear", "grad_out", grad_out.shape(), shape);
        let (n, k, m) = (shape.dim(0), self.in_features, self.out_features);
        let g = grad_out.data();
        // dW += g^T x: [m, n] x [n, k].
        let (gv, xv) = (MatRef::new(g, n, m, m), MatRef::new(x.data(), n, k, k));
        let dw = MatMut::new(self.weight.grad.data_mut(), m, k, k);
        gemm(1.0, gv.t(), xv, 1.0, dw);
        if let Some(b) = &mut self.bias {
            let db = b.grad.data_mut();
            for row in g.chunks_exact(m.max(1)) {
                simd::add_assign(db, row);
            }
        }
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        // dx = g W: [n, m] x [m, k].
        let dx = self.bufs.grad_for(x.shape());
        let w = MatRef::new(self.weight.value.data(), m, k, k);
        gemm(1.0, gv, w, 0.0, MatMut::new(dx.data_mut(), n, k, k));
        dx
    }

    crate::buffers::buffered_outputs!();

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&format!("{prefix}weight"), &mut self.weight);
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}bias"), b);
        }
    }

    fn reset_parameters(&mut self, rng: &mut Rng) {
        let (m, k) = (self.out_features, self.in_features);
        self.weight.value = init::torch_default([m, k], k, rng);
        if let Some(b) = &mut self.bias {
            b.value = init::torch_default([m], k, rng);
        }
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        match *input.dims() {
            [n, k] if k == self.in_features => Ok(Shape::from([n, self.out_features])),
            _ => Err(LayerError(format!(
                "{} needs input [N, {}], got {input}{}",
                self.describe(),
                self.in_features,
                if input.rank() > 2 {
                    " (add a Flatten before it)"
                } else {
                    ""
                }
            ))),
        }
    }

    fn flops(&self, input: Shape) -> u64 {
        let n = input.dims().first().copied().unwrap_or(0) as u64;
        let (k, m) = (self.in_features as u64, self.out_features as u64);
        2 * n * k * m + if self.bias.is_some() { n * m } else { 0 }
    }

    fn describe(&self) -> String {
        format!(
            "Linear({}->{}{})",
            self.in_features,
            self.out_features,
            if self.bias.is_some() { "" } else { ", no bias" }
        )
    }
}
