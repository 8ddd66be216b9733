//! `Flatten`: `[N, d1, d2, ...]` to `[N, d1 * d2 * ...]`.

use ember_tensor::{Shape, Tensor};

use crate::buffers::{Buffers, expect_shape, shape_or_panic};
use crate::{Layer, LayerError, Mode};

/// Flattens every dimension after the batch one: `[N, C, H, W]` becomes `[N, C*H*W]`.
/// Write it as the constant [`Flatten`](const@Flatten): `.add(Flatten)`.
///
/// The layer copies into its own buffer (the `Layer` contract has it return a buffer it
/// owns); the copy is a memcpy, small next to the layers around it.
#[derive(Clone, Debug, Default)]
pub struct Flatten {
    bufs: Buffers,
}

/// A fresh [`Flatten`](struct@Flatten) layer, so that `Flatten` reads like a unit struct.
#[allow(non_upper_case_globals)]
pub const Flatten: Flatten = Flatten {
    bufs: Buffers::EMPTY,
};

impl Layer for Flatten {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let shape = shape_or_panic("Flatten", self.output_shape(x.shape()));
        let out = self.bufs.out_for(shape);
        out.data_mut().copy_from_slice(x.data());
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let flat = shape_or_panic("Flatten", self.output_shape(x.shape()));
        expect_shape("Flatten", "grad_out", grad_out.shape(), flat);
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        let g = self.bufs.grad_for(x.shape());
        g.data_mut().copy_from_slice(grad_out.data());
        g
    }

    crate::buffers::buffered_outputs!();

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        if input.rank() == 0 {
            return Err(LayerError(format!(
                "Flatten needs a batch dimension, got a scalar shape {input}"
            )));
        }
        Ok(Shape::from([input.dim(0), input.item_numel()]))
    }

    fn describe(&self) -> String {
        "Flatten".into()
    }
}
