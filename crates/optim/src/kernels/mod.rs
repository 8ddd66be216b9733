//! Fused update kernels: one pass reads a parameter, its gradient and its optimizer state
//! and writes the new values, a vector at a time at the SIMD level chosen at run time
//! (`ember_tensor::simd`), split over rayon threads for large buffers.
//!
//! Each element's update is independent, so the chunking changes nothing: at the levels with
//! fused multiply-add the SIMD kernels agree bitwise with [`reference`] (the same operations
//! in the same order; `sqrt` and `/` are correctly rounded in both).

pub mod reference;

use ember_tensor::simd::{self, Level, Simd};
use ember_tensor::simd_dispatch;
use rayon::prelude::*;

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
    // One level for the whole buffer, whichever threads its chunks run on.
    let level = simd::level();
    if k.momentum == 0.0 {
        same_len("sgd", "momentum buffer (momentum 0)", buf.len(), 0);
        if p.len() > PAR_CHUNK {
            p.par_chunks_mut(PAR_CHUNK)
                .zip(g.par_chunks(PAR_CHUNK))
                .for_each(|(p, g)| sgd_chunk(level, p, g, &mut [], k));
        } else {
            sgd_chunk(level, p, g, &mut [], k);
        }
        return;
    }
    same_len("sgd", "momentum buffer", buf.len(), p.len());
    if p.len() > PAR_CHUNK {
        p.par_chunks_mut(PAR_CHUNK)
            .zip(g.par_chunks(PAR_CHUNK))
            .zip(buf.par_chunks_mut(PAR_CHUNK))
            .for_each(|((p, g), b)| sgd_chunk(level, p, g, b, k));
    } else {
        sgd_chunk(level, p, g, buf, k);
    }
}

fn sgd_chunk(level: Level, p: &mut [f32], g: &[f32], buf: &mut [f32], k: &SgdStep) {
    simd_dispatch!(level, s => sgd_vectors(s, p, g, buf, k))
}

#[inline(always)]
fn sgd_vectors<S: Simd>(s: S, p: &mut [f32], g: &[f32], buf: &mut [f32], k: &SgdStep) {
    let l = S::LANES;
    let body = p.len() / l * l;
    let wd = s.splat(k.weight_decay);
    let neg_lr = s.splat(-k.lr);
    if k.momentum == 0.0 {
        for (p8, g8) in p.chunks_exact_mut(l).zip(g.chunks_exact(l)) {
            let w = s.load(p8);
            let d = s.mul_add(w, wd, s.load(g8));
            s.store(p8, s.mul_add(d, neg_lr, w));
        }
        reference::sgd(
            |a, b, c| s.mul_add_lane(a, b, c),
            &mut p[body..],
            &g[body..],
            &mut [],
            k,
        );
        return;
    }
    let mu = s.splat(k.momentum);
    let keep = s.splat(1.0 - k.dampening);
    for ((p8, g8), b8) in p
        .chunks_exact_mut(l)
        .zip(g.chunks_exact(l))
        .zip(buf.chunks_exact_mut(l))
    {
        let w = s.load(p8);
        let d = s.mul_add(w, wd, s.load(g8));
        let b = if k.first {
            d
        } else {
            s.mul_add(s.load(b8), mu, s.mul(keep, d))
        };
        s.store(b8, b);
        let dir = if k.nesterov { s.mul_add(b, mu, d) } else { b };
        s.store(p8, s.mul_add(dir, neg_lr, w));
    }
    reference::sgd(
        |a, b, c| s.mul_add_lane(a, b, c),
        &mut p[body..],
        &g[body..],
        &mut buf[body..],
        k,
    );
}

/// Adam's running averages of one parameter buffer (or of a chunk of one): `m` and `v` as
/// long as the parameter, `vmax` likewise with AMSGrad and empty without.
#[derive(Debug)]
pub struct Moments<'a> {
    /// The gradient's running average (`exp_avg`).
    pub m: &'a mut [f32],
    /// The squared gradient's running average (`exp_avg_sq`).
    pub v: &'a mut [f32],
    /// AMSGrad's running maximum of `v` (`max_exp_avg_sq`); empty without AMSGrad.
    pub vmax: &'a mut [f32],
}

impl Moments<'_> {
    /// The moments of elements `from..`.
    pub fn tail(&mut self, from: usize) -> Moments<'_> {
        let vmax = if self.vmax.is_empty() {
            &mut [][..]
        } else {
            &mut self.vmax[from..]
        };
        Moments {
            m: &mut self.m[from..],
            v: &mut self.v[from..],
            vmax,
        }
    }
}

/// Adam / AdamW update of one parameter buffer and its moments.
pub fn adam(p: &mut [f32], g: &[f32], st: Moments<'_>, k: &AdamStep) {
    let n = p.len();
    same_len("adam", "grad", g.len(), n);
    same_len("adam", "exp_avg", st.m.len(), n);
    same_len("adam", "exp_avg_sq", st.v.len(), n);
    if !st.vmax.is_empty() {
        same_len("adam", "max_exp_avg_sq", st.vmax.len(), n);
    }
    let level = simd::level();
    if n <= PAR_CHUNK {
        adam_chunk(level, p, g, st, k);
        return;
    }
    let Moments { m, v, vmax } = st;
    let chunks = p
        .par_chunks_mut(PAR_CHUNK)
        .zip(g.par_chunks(PAR_CHUNK))
        .zip(m.par_chunks_mut(PAR_CHUNK))
        .zip(v.par_chunks_mut(PAR_CHUNK));
    if vmax.is_empty() {
        chunks.for_each(|(((p, g), m), v)| {
            adam_chunk(
                level,
                p,
                g,
                Moments {
                    m,
                    v,
                    vmax: &mut [],
                },
                k,
            )
        });
    } else {
        chunks
            .zip(vmax.par_chunks_mut(PAR_CHUNK))
            .for_each(|((((p, g), m), v), vmax)| {
                adam_chunk(level, p, g, Moments { m, v, vmax }, k)
            });
    }
}

fn adam_chunk(level: Level, p: &mut [f32], g: &[f32], st: Moments<'_>, k: &AdamStep) {
    simd_dispatch!(level, s => adam_vectors(s, p, g, st, k))
}

#[inline(always)]
fn adam_vectors<S: Simd>(s: S, p: &mut [f32], g: &[f32], mut st: Moments<'_>, k: &AdamStep) {
    let l = S::LANES;
    let body = p.len() / l * l;
    let decay_factor = s.splat(k.decay_factor);
    let wd = s.splat(k.weight_decay);
    let one_minus_beta1 = s.splat(k.one_minus_beta1);
    let beta2 = s.splat(k.beta2);
    let one_minus_beta2 = s.splat(k.one_minus_beta2);
    let bc2_sqrt = s.splat(k.bias_correction2_sqrt);
    let eps = s.splat(k.eps);
    let neg_step = s.splat(-k.step_size);
    // One body for both variants: the AMSGrad branch is loop-invariant.
    let update =
        |p8: &mut [f32], g8: &[f32], m8: &mut [f32], v8: &mut [f32], x8: Option<&mut [f32]>| {
            let w = s.mul(s.load(p8), decay_factor);
            let d = s.mul_add(w, wd, s.load(g8));
            let m0 = s.load(m8);
            let mi = s.mul_add(s.sub(d, m0), one_minus_beta1, m0);
            let vi = s.mul_add(s.mul(one_minus_beta2, d), d, s.mul(s.load(v8), beta2));
            s.store(m8, mi);
            s.store(v8, vi);
            let vm = match x8 {
                Some(x8) => {
                    let x = s.max(s.load(x8), vi);
                    s.store(x8, x);
                    x
                }
                None => vi,
            };
            let denom = s.add(s.div(s.sqrt(vm), bc2_sqrt), eps);
            s.store(p8, s.mul_add(s.div(mi, denom), neg_step, w));
        };
    let chunks = p
        .chunks_exact_mut(l)
        .zip(g.chunks_exact(l))
        .zip(st.m.chunks_exact_mut(l))
        .zip(st.v.chunks_exact_mut(l));
    if st.vmax.is_empty() {
        for (((p8, g8), m8), v8) in chunks {
            update(p8, g8, m8, v8, None);
        }
    } else {
        for ((((p8, g8), m8), v8), x8) in chunks.zip(st.vmax.chunks_exact_mut(l)) {
            update(p8, g8, m8, v8, Some(x8));
        }
    }
    reference::adam(
        |a, b, c| s.mul_add_lane(a, b, c),
        &mut p[body..],
        &g[body..],
        st.tail(body),
        k,
    );
}

#[cfg(test)]
mod tests;
