//! The elementwise and reduction kernels, written once over [`Simd`]; `mod.rs` dispatches
//! each to the active level. Tails shorter than a vector run the scalar reference, so the
//! elementwise kernels agree with it bit for bit.

use super::{Simd, reference};

/// `out[i] = op(a[i], b[i])` over whole vectors, then `tail` on the rest.
#[inline(always)]
pub(super) fn binary<S: Simd>(
    s: S,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    op: impl Fn(S::V, S::V) -> S::V,
    tail: fn(&[f32], &[f32], &mut [f32]),
) {
    let l = S::LANES;
    let body = out.len() / l * l;
    for ((a, b), o) in a
        .chunks_exact(l)
        .zip(b.chunks_exact(l))
        .zip(out.chunks_exact_mut(l))
    {
        s.store(o, op(s.load(a), s.load(b)));
    }
    tail(&a[body..], &b[body..], &mut out[body..]);
}

/// `y[i] = op(y[i], x[i])` over whole vectors, then `tail` on the rest.
#[inline(always)]
pub(super) fn update<S: Simd>(
    s: S,
    y: &mut [f32],
    x: &[f32],
    op: impl Fn(S::V, S::V) -> S::V,
    tail: impl Fn(&mut [f32], &[f32]),
) {
    let l = S::LANES;
    let body = y.len() / l * l;
    for (y, x) in y.chunks_exact_mut(l).zip(x.chunks_exact(l)) {
        s.store(y, op(s.load(y), s.load(x)));
    }
    tail(&mut y[body..], &x[body..]);
}

#[inline(always)]
pub(super) fn mul_add<S: Simd>(s: S, a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    let l = S::LANES;
    let body = out.len() / l * l;
    for (((a, b), c), o) in a
        .chunks_exact(l)
        .zip(b.chunks_exact(l))
        .zip(c.chunks_exact(l))
        .zip(out.chunks_exact_mut(l))
    {
        s.store(o, s.mul_add(s.load(a), s.load(b), s.load(c)));
    }
    for i in body..out.len() {
        out[i] = s.mul_add_lane(a[i], b[i], c[i]);
    }
}

#[inline(always)]
pub(super) fn scale<S: Simd>(s: S, x: &mut [f32], alpha: f32) {
    let (l, a) = (S::LANES, s.splat(alpha));
    let body = x.len() / l * l;
    for x in x.chunks_exact_mut(l) {
        s.store(x, s.mul(s.load(x), a));
    }
    reference::scale(&mut x[body..], alpha);
}

#[inline(always)]
pub(super) fn relu<S: Simd>(s: S, x: &[f32], out: &mut [f32]) {
    let l = S::LANES;
    let body = out.len() / l * l;
    for (x, o) in x.chunks_exact(l).zip(out.chunks_exact_mut(l)) {
        let v = s.load(x);
        s.store(o, s.where_positive(v, v));
    }
    reference::relu(&x[body..], &mut out[body..]);
}

/// Four accumulators hide the add latency; `term` makes one vector's contribution.
#[inline(always)]
fn reduce4<S: Simd>(s: S, n: usize, term: impl Fn(usize, S::V) -> S::V) -> S::V {
    let step = 4 * S::LANES;
    let mut acc = [s.zero(); 4];
    for c in (0..n / step * step).step_by(step) {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = term(c + k * S::LANES, *a);
        }
    }
    s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3]))
}

#[inline(always)]
pub(super) fn sum<S: Simd>(s: S, x: &[f32]) -> f32 {
    let body = x.len() / (4 * S::LANES) * (4 * S::LANES);
    let v = reduce4(s, x.len(), |i, a| s.add(a, s.load(&x[i..])));
    s.reduce_add(v) + reference::sum(&x[body..])
}

#[inline(always)]
pub(super) fn dot<S: Simd>(s: S, a: &[f32], b: &[f32]) -> f32 {
    let body = a.len() / (4 * S::LANES) * (4 * S::LANES);
    let v = reduce4(s, a.len(), |i, acc| {
        s.mul_add(s.load(&a[i..]), s.load(&b[i..]), acc)
    });
    s.reduce_add(v) + reference::dot(&a[body..], &b[body..])
}

#[inline(always)]
pub(super) fn max<S: Simd>(s: S, x: &[f32]) -> f32 {
    let l = S::LANES;
    let body = x.len() / l * l;
    let mut acc = s.splat(f32::NEG_INFINITY);
    for c in x.chunks_exact(l) {
        acc = s.max(acc, s.load(c));
    }
    s.reduce_max(acc).max(reference::max(&x[body..]))
}
