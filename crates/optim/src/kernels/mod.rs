//! Fused update kernels: one pass reads a parameter, its gradient and its optimizer state
//! and writes the new values, eight lanes at a time with `wide::f32x8` (AVX2 + FMA in
//! Ember's x86-64-v3 build), split over rayon threads for large buffers.
//!
//! Each element's update is independent, so the chunking changes nothing: on an FMA build
//! the SIMD kernels agree bitwise with [`reference`] (the same operations in the same
//! order; `sqrt` and `/` are correctly rounded in both).

pub mod reference;

use rayon::prelude::*;
use wide::f32x8;

const LANES: usize = 8;

/// Buffers longer than this are updated in parallel chunks of this many elements
/// (256 KiB per stream, large enough that thread hand-off costs nothing measurable).
pub const PAR_CHUNK: usize = 64 * 1024;

/// The per-step scalars of an SGD update.
#[derive(Clone, Copy, Debug)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 = plain SGD, no buffer).
    pub momentum: f32,
    /// Dampening of the gradient added to the momentum buffer.
    pub dampening: f32,
    /// Coupled (L2) weight decay added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// First step of this parameter: the buffer is set to the gradient.
    pub first: bool,
}

/// The per-step scalars of an Adam / AdamW update, precomputed in f64 and rounded once.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    /// `1 - lr * wd` for AdamW's decoupled decay; 1 for Adam.
    pub decay_factor: f32,
    /// Coupled (L2) weight decay added to the gradient (Adam); 0 for AdamW.
    pub weight_decay: f32,
    /// `1 - beta1`.
    pub one_minus_beta1: f32,
    /// `beta2`.
    pub beta2: f32,
    /// `1 - beta2`.
    pub one_minus_beta2: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bias_correction2_sqrt: f32,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// Added to the denominator.
    pub eps: f32,
}

#[inline(always)]
fn load(s: &[f32]) -> f32x8 {
    let lanes: [f32; LANES] = s[..LANES].try_into().expect("a full lane chunk");
    f32x8::new(lanes)
}

#[inline(always)]
fn store(v: f32x8, s: &mut [f32]) {
    s[..LANES].copy_from_slice(v.as_array());
}

#[track_caller]
fn same_len(kernel: &str, what: &str, len: usize, p: usize) {
    assert!(
        len == p,
        "optim kernel {kernel}: {what} has {len} elements but the parameter has {p}"
    );
}

/// SGD update of one parameter buffer; `buf` must be empty when `k.momentum == 0`, else
/// as long as `p`. Lengths are checked by the caller's state code; a mismatch here is a bug
/// and panics naming both lengths.
pub fn sgd(p: &mut [f32], g: &[f32], buf: &mut [f32], k: &SgdStep) {
    same_len("sgd", "grad", g.len(), p.len());
    if k.momentum == 0.0 {
        same_len("sgd", "momentum buffer (momentum 0)", buf.len(), 0);
        if p.len() > PAR_CHUNK {
            p.par_chunks_mut(PAR_CHUNK)
                .zip(g.par_chunks(PAR_CHUNK))
                .for_each(|(p, g)| sgd_chunk(p, g, &mut [], k));
        } else {
            sgd_chunk(p, g, &mut [], k);
        }
        return;
    }
    same_len("sgd", "momentum buffer", buf.len(), p.len());
    if p.len() > PAR_CHUNK {
        p.par_chunks_mut(PAR_CHUNK)
            .zip(g.par_chunks(PAR_CHUNK))
            .zip(buf.par_chunks_mut(PAR_CHUNK))
            .for_each(|((p, g), b)| sgd_chunk(p, g, b, k));
    } else {
        sgd_chunk(p, g, buf, k);
    }
}

fn sgd_chunk(p: &mut [f32], g: &[f32], buf: &mut [f32], k: &SgdStep) {
    let body = p.len() / LANES * LANES;
    let wd = f32x8::splat(k.weight_decay);
    let neg_lr = f32x8::splat(-k.lr);
    if k.momentum == 0.0 {
        for (p8, g8) in p.chunks_exact_mut(LANES).zip(g.chunks_exact(LANES)) {
            let w = load(p8);
            let d = w.mul_add(wd, load(g8));
            store(d.mul_add(neg_lr, w), p8);
        }
        reference::sgd(&mut p[body..], &g[body..], &mut [], k);
        return;
    }
    let mu = f32x8::splat(k.momentum);
    let keep = f32x8::splat(1.0 - k.dampening);
    for ((p8, g8), b8) in p
        .chunks_exact_mut(LANES)
        .zip(g.chunks_exact(LANES))
        .zip(buf.chunks_exact_mut(LANES))
    {
        let w = load(p8);
        let d = w.mul_add(wd, load(g8));
        let b = if k.first {
            d
        } else {
            load(b8).mul_add(mu, keep * d)
        };
        store(b, b8);
        let dir = if k.nesterov { b.mul_add(mu, d) } else { b };
        store(dir.mul_add(neg_lr, w), p8);
    }
    reference::sgd(&mut p[body..], &g[body..], &mut buf[body..], k);
}

/// Adam / AdamW update of one parameter buffer. `m` and `v` are as long as `p`; `vmax`
/// likewise with AMSGrad and empty without.
pub fn adam(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    k: &AdamStep,
) {
    let n = p.len();
    same_len("adam", "grad", g.len(), n);
    same_len("adam", "exp_avg", m.len(), n);
    same_len("adam", "exp_avg_sq", v.len(), n);
    if !vmax.is_empty() {
        same_len("adam", "max_exp_avg_sq", vmax.len(), n);
    }
    if n <= PAR_CHUNK {
        adam_chunk(p, g, m, v, vmax, k);
        return;
    }
    let moments = p
        .par_chunks_mut(PAR_CHUNK)
        .zip(g.par_chunks(PAR_CHUNK))
        .zip(m.par_chunks_mut(PAR_CHUNK))
        .zip(v.par_chunks_mut(PAR_CHUNK));
    if vmax.is_empty() {
        moments.for_each(|(((p, g), m), v)| adam_chunk(p, g, m, v, &mut [], k));
    } else {
        moments
            .zip(vmax.par_chunks_mut(PAR_CHUNK))
            .for_each(|((((p, g), m), v), x)| adam_chunk(p, g, m, v, x, k));
    }
}

fn adam_chunk(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    k: &AdamStep,
) {
    let body = p.len() / LANES * LANES;
    let decay_factor = f32x8::splat(k.decay_factor);
    let wd = f32x8::splat(k.weight_decay);
    let one_minus_beta1 = f32x8::splat(k.one_minus_beta1);
    let beta2 = f32x8::splat(k.beta2);
    let one_minus_beta2 = f32x8::splat(k.one_minus_beta2);
    let bc2_sqrt = f32x8::splat(k.bias_correction2_sqrt);
    let eps = f32x8::splat(k.eps);
    let neg_step = f32x8::splat(-k.step_size);
    // One body for both variants: the AMSGrad branch is loop-invariant.
    let update =
        |p8: &mut [f32], g8: &[f32], m8: &mut [f32], v8: &mut [f32], x8: Option<&mut [f32]>| {
            let w = load(p8) * decay_factor;
            let d = w.mul_add(wd, load(g8));
            let m0 = load(m8);
            let mi = (d - m0).mul_add(one_minus_beta1, m0);
            let vi = (one_minus_beta2 * d).mul_add(d, load(v8) * beta2);
            store(mi, m8);
            store(vi, v8);
            let vm = match x8 {
                Some(x8) => {
                    let x = load(x8).max(vi);
                    store(x, x8);
                    x
                }
                None => vi,
            };
            let denom = vm.sqrt() / bc2_sqrt + eps;
            store((mi / denom).mul_add(neg_step, w), p8);
        };
    let chunks = p
        .chunks_exact_mut(LANES)
        .zip(g.chunks_exact(LANES))
        .zip(m.chunks_exact_mut(LANES))
        .zip(v.chunks_exact_mut(LANES));
    if vmax.is_empty() {
        for (((p8, g8), m8), v8) in chunks {
            update(p8, g8, m8, v8, None);
        }
        reference::adam(
            &mut p[body..],
            &g[body..],
            &mut m[body..],
            &mut v[body..],
            &mut [],
            k,
        );
    } else {
        for ((((p8, g8), m8), v8), x8) in chunks.zip(vmax.chunks_exact_mut(LANES)) {
            update(p8, g8, m8, v8, Some(x8));
        }
        reference::adam(
            &mut p[body..],
            &g[body..],
            &mut m[body..],
            &mut v[body..],
            &mut vmax[body..],
            k,
        );
    }
}

#[cfg(test)]
mod tests;
