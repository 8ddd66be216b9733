//! Seeded inverted `Dropout` (identity in eval mode).

use ember_tensor::{Rng, Shape, Tensor, simd};
use rayon::prelude::*;

use crate::buffers::{Buffers, expect_shape};
use crate::{Layer, LayerError, Mode};

/// The seed of a dropout layer whose seed was not set (see [`Dropout::seed`]).
const DEFAULT_SEED: u64 = 0xD809_0D80;

/// Inverted dropout: in training each element is zeroed with probability `p` and the
/// survivors are scaled by `1 / (1 - p)`; in eval mode the layer is the identity.
///
/// The mask of a step comes from `Rng::new(seed).fork(step)` (then one sub-stream per batch
/// item, so it does not depend on the thread count), where `step` is the value given to
/// [`Layer::begin_step`] (and counts up by itself when nobody calls it). A resumed run
/// therefore drops the same elements. Without an explicit [`Dropout::seed`],
/// `reset_parameters(rng)` draws the seed from the model's `rng`, so dropout layers of one
/// seeded model get different masks.
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f32,
    seed: u64,
    seed_set: bool,
    step: u64,
    /// Per-element factor of the last training forward: 0 or `1 / (1 - p)`.
    mask: Tensor,
    last_mode: Mode,
    bufs: Buffers,
}

impl Dropout {
    /// Dropout with drop probability `p`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1]` (like PyTorch, which raises).
    pub fn new(p: f32) -> Self {
        assert!(
            (0.0..=1.0).contains(&p),
            "Dropout probability has to be between 0 and 1, got {p}"
        );
        Dropout {
            p,
            seed: DEFAULT_SEED,
            seed_set: false,
            step: 0,
            mask: Tensor::zeros([0]),
            last_mode: Mode::Eval,
            bufs: Buffers::EMPTY,
        }
    }

    /// The seed of the mask stream (fixed: `reset_parameters` no longer changes it).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.seed_set = true;
        self
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Layer for Dropout {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        self.last_mode = mode;
        let out = self.bufs.out_for(x.shape());
        if mode == Mode::Eval || self.p == 0.0 {
            out.data_mut().copy_from_slice(x.data());
            return out;
        }
        let keep_scale = if self.p >= 1.0 {
            0.0
        } else {
            1.0 / (1.0 - self.p)
        };
        let p = self.p as f64;
        let stream = Rng::new(self.seed).fork(self.step);
        self.step = self.step.wrapping_add(1);
        self.mask.resize_for(x.shape());
        let item = x.shape().item_numel().max(1);
        self.mask
            .data_mut()
            .par_chunks_mut(item)
            .enumerate()
            .for_each(|(i, m)| {
                let mut rng = stream.fork(i as u64);
                for v in m {
                    *v = if rng.bernoulli(p) { 0.0 } else { keep_scale };
                }
            });
        simd::mul(x.data(), self.mask.data(), out.data_mut());
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        expect_shape("Dropout", "grad_out", grad_out.shape(), x.shape());
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        let identity = self.last_mode == Mode::Eval || self.p == 0.0;
        let g = self.bufs.grad_for(x.shape());
        if identity {
            g.data_mut().copy_from_slice(grad_out.data());
        } else {
            expect_shape("Dropout", "input", x.shape(), self.mask.shape());
            simd::mul(grad_out.data(), self.mask.data(), g.data_mut());
        }
        g
    }

    crate::buffers::buffered_outputs!();

    fn reset_parameters(&mut self, rng: &mut Rng) {
        if !self.seed_set {
            self.seed = rng.next_u64();
        }
    }

    fn begin_step(&mut self, step: u64) {
        self.step = step;
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        Ok(input)
    }

    fn flops(&self, input: Shape) -> u64 {
        input.numel() as u64
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }
}
