//! Gradient clipping over flat slices: by global norm (two passes over all gradients:
//! sum the squares, then scale) and by value.

/// Partial sums run in f32 over blocks this long and are added in f64, so the norm of
/// millions of elements keeps its precision.
const BLOCK: usize = 4096;

/// `sum(g[i]^2)` of one gradient, accumulated in f64 over f32 SIMD blocks. Add these up
/// over all parameters, then pass the total to [`clip_coefficient`].
pub fn grad_norm_sq(grad: &[f32]) -> f64 {
    grad.chunks(BLOCK)
        .map(|b| f64::from(ember_tensor::simd::sq_norm(b)))
        .sum()
}

/// The factor to multiply every gradient by so that the global norm is at most
/// `max_norm`: `min(1, max_norm / (norm + 1e-6))` as PyTorch's `clip_grad_norm_`.
/// A NaN norm gives a NaN factor and an infinite one 0, as in PyTorch (check the norm
/// first if that can happen).
pub fn clip_coefficient(total_norm_sq: f64, max_norm: f32) -> f32 {
    let c = f64::from(max_norm) / (total_norm_sq.sqrt() + 1e-6);
    // Written out because f64::min would turn a NaN coefficient into 1.
    if c.is_nan() || c < 1.0 { c as f32 } else { 1.0 }
}

/// Multiplies a gradient by `factor` (the second pass of global-norm clipping).
pub fn scale_grad(grad: &mut [f32], factor: f32) {
    if factor != 1.0 {
        ember_tensor::simd::scale(grad, factor);
    }
}

/// Clamps every gradient element into `[-max_abs, max_abs]` (PyTorch
/// `clip_grad_value_`); NaNs stay NaN.
pub fn clip_by_value(grad: &mut [f32], max_abs: f32) {
    let m = max_abs.abs();
    for g in grad {
        *g = g.clamp(-m, m);
    }
}
