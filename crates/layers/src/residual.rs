//! `Residual`: `block(x) + shortcut(x)`.

use std::sync::Arc;

use ember_tensor::{Rng, Shape, Tensor, simd};

use crate::buffers::{Buffers, expect_shape, shape_or_panic};
use crate::replica::ReplicaSum;
use crate::{Layer, LayerError, Mode, Param, Sequential, par};

/// A residual connection: `output = block(x) + shortcut(x)`, where the shortcut is the
/// identity unless one is given (typically a 1x1 convolution and batch norm projecting to
/// the block's output shape).
///
/// Parameter names: `block.0.weight`, ..., `shortcut.0.weight`, ... under the residual's
/// own prefix (so `3.block.0.weight` inside a `Sequential`).
///
/// ```
/// use ember_layers::{Layer, Linear, Mode, ReLU, Residual, Sequential};
/// use ember_tensor::{Shape, Tensor};
/// let mut res = Residual::new(Sequential::new().add(Linear::new(4, 4)).add(ReLU));
/// let y = res.forward(&Tensor::zeros([2, 4]), Mode::Train);
/// assert_eq!(y.shape(), Shape::from([2, 4]));
/// ```
#[derive(Debug)]
pub struct Residual {
    block: Sequential,
    shortcut: Option<Sequential>,
    bufs: Buffers,
}

impl Residual {
    /// `block(x) + x`.
    pub fn new(block: Sequential) -> Self {
        Residual {
            block,
            shortcut: None,
            bufs: Buffers::EMPTY,
        }
    }

    /// Replaces the identity shortcut with `shortcut` (its output must have the block's shape).
    pub fn shortcut(mut self, shortcut: Sequential) -> Self {
        self.shortcut = Some(shortcut);
        self
    }

    /// The main branch.
    pub fn block(&self) -> &Sequential {
        &self.block
    }

    /// The projection shortcut, or `None` for the identity.
    pub fn shortcut_block(&self) -> Option<&Sequential> {
        self.shortcut.as_ref()
    }
}

impl Layer for Residual {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let shape = shape_or_panic("Residual", self.output_shape(x.shape()));
        self.block.forward(x, mode);
        if let Some(s) = &mut self.shortcut {
            s.forward(x, mode);
        }
        let skip = self.shortcut.as_ref().map_or(x, |s| s.output());
        let out = self.bufs.out_for(shape);
        par::binary(
            self.block.output().data(),
            skip.data(),
            out.data_mut(),
            simd::add,
        );
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let shape = shape_or_panic("Residual", self.output_shape(x.shape()));
        expect_shape("Residual", "grad_out", grad_out.shape(), shape);
        self.block.backward(x, grad_out, need_input_grad);
        if let Some(s) = &mut self.shortcut {
            s.backward(x, grad_out, need_input_grad);
        }
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        let skip = self.shortcut.as_ref().map_or(grad_out, |s| s.input_grad());
        let dx = self.bufs.grad_for(x.shape());
        par::binary(
            self.block.input_grad().data(),
            skip.data(),
            dx.data_mut(),
            simd::add,
        );
        dx
    }

    fn output(&self) -> &Tensor {
        self.bufs.out()
    }

    fn input_grad(&self) -> &Tensor {
        self.bufs.grad()
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.block.visit_params(&format!("{prefix}block."), f);
        if let Some(s) = &mut self.shortcut {
            s.visit_params(&format!("{prefix}shortcut."), f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.block.visit_buffers(&format!("{prefix}block."), f);
        if let Some(s) = &mut self.shortcut {
            s.visit_buffers(&format!("{prefix}shortcut."), f);
        }
    }

    fn reset_parameters(&mut self, rng: &mut Rng) {
        self.block.reset_parameters(rng);
        if let Some(s) = &mut self.shortcut {
            s.reset_parameters(rng);
        }
    }

    fn begin_step(&mut self, step: u64) {
        self.block.begin_step(step);
        if let Some(s) = &mut self.shortcut {
            s.begin_step(step);
        }
    }

    fn sync_batch_stats(&mut self, group: Option<&Arc<dyn ReplicaSum>>) {
        self.block.sync_batch_stats(group);
        if let Some(s) = &mut self.shortcut {
            s.sync_batch_stats(group);
        }
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        let main = self
            .block
            .validate(input)
            .map_err(|e| LayerError(format!("Residual block: {e}")))?;
        let skip = match &self.shortcut {
            Some(s) => s
                .validate(input)
                .map_err(|e| LayerError(format!("Residual shortcut: {e}")))?,
            None => input,
        };
        if main != skip {
            return Err(LayerError(format!(
                "Residual: the block maps {input} to {main} but the {} gives {skip}; \
                 they must match (add a projection shortcut)",
                if self.shortcut.is_some() {
                    "shortcut"
                } else {
                    "identity shortcut"
                }
            )));
        }
        Ok(main)
    }

    fn flops(&self, input: Shape) -> u64 {
        let skip = self.shortcut.as_ref().map_or(0, |s| s.flops(input));
        let add = self.output_shape(input).map_or(0, |s| s.numel() as u64);
        self.block.flops(input) + skip + add
    }

    fn describe(&self) -> String {
        let inner = |s: &Sequential| {
            (0..s.len())
                .filter_map(|i| s.layer(i).map(|l| l.describe()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.shortcut {
            Some(s) => format!("Residual[{}] + shortcut[{}]", inner(&self.block), inner(s)),
            None => format!("Residual[{}] + x", inner(&self.block)),
        }
    }
}
