//! Plain scalar update rules, one element at a time: the oracle the SIMD kernels are
//! tested against and what handles their tails. The operation order (including which
//! products are fused) matches the SIMD kernels exactly, so on an FMA build the two agree
//! bitwise.

use super::{AdamStep, SgdStep};

/// SGD with optional momentum, dampening, Nesterov and (coupled) weight decay.
/// `buf` is empty when `k.momentum == 0`.
pub fn sgd(p: &mut [f32], g: &[f32], buf: &mut [f32], k: &SgdStep) {
    if k.momentum == 0.0 {
        for i in 0..p.len() {
            let d = p[i].mul_add(k.weight_decay, g[i]);
            p[i] = d.mul_add(-k.lr, p[i]);
        }
        return;
    }
    let keep = 1.0 - k.dampening;
    for i in 0..p.len() {
        let d = p[i].mul_add(k.weight_decay, g[i]);
        let b = if k.first {
            d
        } else {
            buf[i].mul_add(k.momentum, keep * d)
        };
        buf[i] = b;
        let dir = if k.nesterov {
            b.mul_add(k.momentum, d)
        } else {
            b
        };
        p[i] = dir.mul_add(-k.lr, p[i]);
    }
}

/// Adam / AdamW (AMSGrad when `vmax` is not empty).
pub fn adam(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    k: &AdamStep,
) {
    let amsgrad = !vmax.is_empty();
    for i in 0..p.len() {
        let w = p[i] * k.decay_factor;
        let d = w.mul_add(k.weight_decay, g[i]);
        let mi = (d - m[i]).mul_add(k.one_minus_beta1, m[i]);
        let vi = (k.one_minus_beta2 * d).mul_add(d, v[i] * k.beta2);
        m[i] = mi;
        v[i] = vi;
        let vm = if amsgrad {
            let x = vmax[i].max(vi);
            vmax[i] = x;
            x
        } else {
            vi
        };
        let denom = vm.sqrt() / k.bias_correction2_sqrt + k.eps;
        p[i] = (mi / denom).mul_add(-k.step_size, w);
    }
}
