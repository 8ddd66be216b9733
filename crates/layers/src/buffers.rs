//! Output and input-gradient buffers that a layer owns and reuses between steps.
//!
//! The buffers start empty and unallocated, so that layers without options (`ReLU`,
//! `Flatten`) can be constants that read like unit structs: `.add(ReLU)`.

use std::sync::LazyLock;

use ember_tensor::{Shape, Tensor};

/// What `output()` / `input_grad()` return before the first forward / backward.
static EMPTY: LazyLock<Tensor> = LazyLock::new(|| Tensor::zeros([0]));

/// A layer's output buffer and input-gradient buffer, allocated on first use.
#[derive(Clone, Debug, Default)]
pub(crate) struct Buffers {
    out: Option<Tensor>,
    grad: Option<Tensor>,
}

impl Buffers {
    /// No buffers yet (usable in constants).
    pub(crate) const EMPTY: Buffers = Buffers {
        out: None,
        grad: None,
    };

    /// The output buffer resized to `shape` (contents unspecified).
    pub(crate) fn out_for(&mut self, shape: Shape) -> &mut Tensor {
        sized(&mut self.out, shape)
    }

    /// The input-gradient buffer resized to `shape` (contents unspecified).
    pub(crate) fn grad_for(&mut self, shape: Shape) -> &mut Tensor {
        sized(&mut self.grad, shape)
    }

    /// The last output, with the input-gradient buffer resized to `shape` (for a backward
    /// pass that reads the output).
    pub(crate) fn out_and_grad_for(&mut self, shape: Shape) -> (&Tensor, &mut Tensor) {
        let grad = sized(&mut self.grad, shape);
        (self.out.as_ref().unwrap_or(&EMPTY), grad)
    }

    /// The last output (empty before the first forward).
    pub(crate) fn out(&self) -> &Tensor {
        self.out.as_ref().unwrap_or(&EMPTY)
    }

    /// The last input gradient (empty before the first backward, or when it was skipped).
    pub(crate) fn grad(&self) -> &Tensor {
        self.grad.as_ref().unwrap_or(&EMPTY)
    }

    /// Marks the input gradient as not computed (an empty tensor), keeping its allocation.
    pub(crate) fn skip_grad(&mut self) -> &Tensor {
        if let Some(g) = self.grad.as_mut() {
            g.resize_for([0]);
        }
        self.grad()
    }
}

fn sized(slot: &mut Option<Tensor>, shape: Shape) -> &mut Tensor {
    let t = slot.get_or_insert_with(|| Tensor::zeros([0]));
    if t.shape() != shape {
        t.resize_for(shape);
    }
    t
}

/// The `output` and `input_grad` methods of a layer that keeps its buffers in a
/// `bufs: Buffers` field (or the field path given, e.g. `inner.bufs`).
macro_rules! buffered_outputs {
    () => {
        $crate::buffers::buffered_outputs!(bufs);
    };
    ($($field:ident).+) => {
        fn output(&self) -> &ember_tensor::Tensor {
            self.$($field).+.out()
        }

        fn input_grad(&self) -> &ember_tensor::Tensor {
            self.$($field).+.grad()
        }
    };
}
pub(crate) use buffered_outputs;

/// Panics with the layer's description and both shapes when `x` does not have `want`.
#[track_caller]
pub(crate) fn expect_shape(layer: &str, what: &str, got: Shape, want: Shape) {
    assert!(
        got == want,
        "{layer}: {what} has shape {got}, expected {want}"
    );
}

/// The output shape for `input`, or a panic naming the layer and the problem
/// (forward passes treat a wrong input shape as a programming error).
#[track_caller]
pub(crate) fn shape_or_panic(layer: &str, result: Result<Shape, crate::LayerError>) -> Shape {
    match result {
        Ok(s) => s,
        Err(e) => panic!("{layer}: {e}"),
    }
}
