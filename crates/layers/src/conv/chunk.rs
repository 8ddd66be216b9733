//! A batch chunk's state: the workspace one thread owns between steps, and the images one
//! forward or backward call works on.

use super::ConvGeometry;
use super::direct::DirectScratch;
use super::epilogue::Epilogue;
use super::im2col::Im2colScratch;
use super::winograd::WinogradScratch;

/// The buffers of one batch chunk, kept between steps so a step allocates nothing once they
/// have grown. Each algorithm has its own; only those a layer's passes use are ever grown.
#[derive(Default)]
pub(super) struct Workspace {
    /// What the algorithms use while they run.
    pub(super) scratch: AlgorithmScratch,
    /// The output gradient with the fused ReLU's mask applied.
    pub(super) masked_grad: Vec<f32>,
    /// The chunk's partial weight gradient, in the weight-gradient algorithm's own layout.
    pub(super) weight_grad_sum: Vec<f32>,
    /// The chunk's partial bias gradient.
    pub(super) bias_grad_sum: Vec<f32>,
}

/// Each algorithm's own buffers.
#[derive(Default)]
pub(super) struct AlgorithmScratch {
    pub(super) im2col: Im2colScratch,
    pub(super) direct: DirectScratch,
    pub(super) winograd: WinogradScratch,
}

/// The first `len` elements of `v`, growing it (with zeros) if it is shorter.
pub(super) fn grow(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// Consecutive images of a forward pass: their inputs and how the outputs are made.
#[derive(Clone, Copy)]
pub(super) struct ForwardImages<'a> {
    /// The convolution (its `batch` is the whole batch's).
    pub(super) g: &'a ConvGeometry,
    /// The images' inputs, `[images, cin, h, w]`.
    pub(super) x: &'a [f32],
    /// The weights in the algorithm's layout: packed for Winograd and the direct kernel,
    /// OIHW for im2col.
    pub(super) weights: &'a [f32],
    /// Bias and fused ReLU.
    pub(super) ep: Epilogue<'a>,
    /// Whether the products may split over threads (one chunk for the whole batch).
    pub(super) par: bool,
}

impl<'a> ForwardImages<'a> {
    pub(super) fn new(
        g: &'a ConvGeometry,
        x: &'a [f32],
        weights: &'a [f32],
        ep: Epilogue<'a>,
        par: bool,
    ) -> Self {
        ForwardImages {
            g,
            x,
            weights,
            ep,
            par,
        }
    }
}

/// Consecutive images of a backward pass: their inputs and output gradients.
#[derive(Clone, Copy)]
pub(super) struct BackwardImages<'a> {
    /// The convolution (its `batch` is the whole batch's).
    pub(super) g: &'a ConvGeometry,
    /// The images' inputs, `[images, cin, h, w]`.
    pub(super) x: &'a [f32],
    /// Their output gradients, `[images, cout, ho, wo]` (after the ReLU mask).
    pub(super) gy: &'a [f32],
    /// How many images.
    pub(super) images: usize,
    /// Whether the products may split over threads (one chunk for the whole batch).
    pub(super) par: bool,
}
