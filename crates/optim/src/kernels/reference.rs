//! Plain scalar update rules, one element at a time: the oracle the SIMD kernels are
//! tested against and what handles their tails. The operation order matches the SIMD
//! kernels exactly, and the multiply-add is a parameter, fused (`f32::mul_add`) or not, so
//! that each SIMD level agrees with them bitwise.

use super::{AdamStep, Moments, SgdStep};

/// SGD with optional momentum, dampening, Nesterov and (coupled) weight decay.
/// `buf` is empty when `k.momentum == 0`.
/// `mul_add(a, b, c)` stands for `a * b + c` (`f32::mul_add`, or two roundings).
pub fn sgd(
    mul_add: impl Fn(f32, f32, f32) -> f32,
    p: &mut [f32],
    g: &[f32],
    buf: &mut [f32],
    k: &SgdStep,
) {
    if k.momentum == 0.0 {
        for i in 0..p.len() {
            let d = mul_add(p[i], k.weight_decay, g[i]);
            p[i] = mul_add(d, -k.lr, p[i]);
        }
        return;
    }
    let keep = 1.0 - k.dampening;
    for i in 0..p.len() {
        let d = mul_add(p[i], k.weight_decay, g[i]);
        let b = if k.first {
            d
        } else {
            mul_add(buf[i], k.momentum, keep * d)
        };
        buf[i] = b;
        let dir = if k.nesterov {
            mul_add(b, k.momentum, d)
        } else {
            b
        };
        p[i] = mul_add(dir, -k.lr, p[i]);
    }
}

/// Adam / AdamW (AMSGrad when `st.vmax` is not empty). `mul_add` as in [`sgd`].
pub fn adam(
    mul_add: impl Fn(f32, f32, f32) -> f32,
    p: &mut [f32],
    g: &[f32],
    st: Moments<'_>,
    k: &AdamStep,
) {
    let Moments { m, v, vmax } = st;
    let amsgrad = !vmax.is_empty();
    for i in 0..p.len() {
        let w = p[i] * k.decay_factor;
        let d = mul_add(w, k.weight_decay, g[i]);
        let mi = mul_add(d - m[i], k.one_minus_beta1, m[i]);
        let vi = mul_add(k.one_minus_beta2 * d, d, v[i] * k.beta2);
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
        p[i] = mul_add(mi / denom, -k.step_size, w);
    }
}
