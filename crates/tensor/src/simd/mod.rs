//! SIMD elementwise and reduction kernels over f32 slices, written with `wide::f32x8`.
//!
//! # How Ember gets AVX2 + FMA
//! `wide` chooses its instructions when the crate is compiled (`cfg(target_feature)`), and
//! runtime detection cannot reach inside it. The workspace therefore builds for
//! `x86-64-v3` (AVX2, FMA, BMI2) through `.cargo/config.toml`: `f32x8` becomes one 256-bit
//! register and `mul_add` one `vfmadd`. Built for plain `x86-64`, the same code falls back
//! to pairs of SSE2 registers (and to NEON on aarch64); it stays correct everywhere, and the
//! scalar versions in [`reference`](mod@reference) are always there. matrixmultiply, used by [`crate::gemm`],
//! detects AVX/FMA at run time on its own, so GEMM is fast in either build.
//!
//! The binaries call [`check_cpu`] first: a binary built for x86-64-v3 on a CPU without
//! AVX2/FMA exits with a clear message instead of dying of an illegal instruction.
//! [`active_isa`] names the instruction set these kernels were compiled for.
//!
//! Measured effect (criterion, same sitting, `docs/BENCHMARKS.md`): built for plain x86-64,
//! axpy falls from 9.5 to 4.7 Gelem/s (no fused multiply-add) and the conv layers' forward +
//! backward from 94-157 to 15-29 GFLOP/s; GEMM is unchanged (runtime dispatch inside
//! matrixmultiply). Runtime dispatch through `std::arch` for every kernel would cost a
//! second copy of each kernel and a dispatch layer for a CPU class (pre-2013 x86) that this
//! project does not target, so the build-time choice it is.
//!
//! # Contract
//! Every kernel takes slices and sizes. Slices that must have the same length are checked,
//! and a mismatch panics with a message naming both lengths (a programming error, like
//! indexing out of bounds). Slices need no particular alignment. Sums are accumulated in a
//! different order from the scalar reference, so they agree within rounding, not bitwise.
//!
//! ```
//! use ember_tensor::simd;
//! let x = [1.0f32, -2.0, 3.0, -4.0, 5.0];
//! let mut y = [0.0f32; 5];
//! simd::relu(&x, &mut y);
//! assert_eq!(y, [1.0, 0.0, 3.0, 0.0, 5.0]);
//! assert_eq!(simd::sum(&x), 3.0);
//! ```

pub mod reference;

use wide::f32x8;

const LANES: usize = 8;

/// The instruction set the SIMD kernels were compiled for: `"avx2+fma"`, `"avx"`,
/// `"sse2"`, `"neon"` or `"scalar"`.
pub fn active_isa() -> &'static str {
    if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        "avx2+fma"
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx")) {
        "avx"
    } else if cfg!(target_arch = "x86_64") {
        "sse2"
    } else if cfg!(target_arch = "aarch64") {
        "neon"
    } else {
        "scalar"
    }
}

/// Checks that this CPU has the instructions the build assumes. Returns a message to
/// print (and exit on) when it does not. Call it first thing in `main`.
pub fn check_cpu() -> Result<(), String> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        let missing: Vec<&str> = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
        ]
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "this build of Ember needs an x86-64-v3 CPU (AVX2 + FMA), but this CPU lacks {}; \
                 rebuild without `-C target-cpu=x86-64-v3` (remove it from .cargo/config.toml)",
                missing.join(" and ")
            ));
        }
    }
    Ok(())
}

#[track_caller]
fn same_len(kernel: &str, a: (&str, usize), b: (&str, usize)) {
    assert!(
        a.1 == b.1,
        "simd::{kernel}: {} has {} elements but {} has {}",
        a.0,
        a.1,
        b.0,
        b.1
    );
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

macro_rules! binary_kernel {
    ($(#[$doc:meta])* $name:ident, $op:tt) => {
        $(#[$doc])*
        pub fn $name(a: &[f32], b: &[f32], out: &mut [f32]) {
            same_len(stringify!($name), ("a", a.len()), ("out", out.len()));
            same_len(stringify!($name), ("b", b.len()), ("out", out.len()));
            let body = out.len() / LANES * LANES;
            for ((a8, b8), o8) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)).zip(out.chunks_exact_mut(LANES)) {
                store(load(a8) $op load(b8), o8);
            }
            reference::$name(&a[body..], &b[body..], &mut out[body..]);
        }
    };
}

binary_kernel!(
    /// `out[i] = a[i] + b[i]`
    add, +);
binary_kernel!(
    /// `out[i] = a[i] - b[i]`
    sub, -);
binary_kernel!(
    /// `out[i] = a[i] * b[i]`
    mul, *);

/// `y[i] += x[i]`
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    same_len("add_assign", ("x", x.len()), ("y", y.len()));
    let body = y.len() / LANES * LANES;
    for (y8, x8) in y.chunks_exact_mut(LANES).zip(x.chunks_exact(LANES)) {
        let v = load(y8) + load(x8);
        store(v, y8);
    }
    reference::add_assign(&mut y[body..], &x[body..]);
}

/// `x[i] *= alpha`
pub fn scale(x: &mut [f32], alpha: f32) {
    let a = f32x8::splat(alpha);
    let body = x.len() / LANES * LANES;
    for x8 in x.chunks_exact_mut(LANES) {
        let v = load(x8) * a;
        store(v, x8);
    }
    reference::scale(&mut x[body..], alpha);
}

/// `y[i] += alpha * x[i]` (BLAS axpy), one fused multiply-add per element.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    same_len("axpy", ("x", x.len()), ("y", y.len()));
    let a = f32x8::splat(alpha);
    let body = y.len() / LANES * LANES;
    for (y8, x8) in y.chunks_exact_mut(LANES).zip(x.chunks_exact(LANES)) {
        let v = load(x8).mul_add(a, load(y8));
        store(v, y8);
    }
    for i in body..y.len() {
        y[i] = x[i].mul_add(alpha, y[i]);
    }
}

/// `out[i] = a[i] * b[i] + c[i]`, fused.
pub fn mul_add(a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    same_len("mul_add", ("a", a.len()), ("out", out.len()));
    same_len("mul_add", ("b", b.len()), ("out", out.len()));
    same_len("mul_add", ("c", c.len()), ("out", out.len()));
    let body = out.len() / LANES * LANES;
    for (((a8, b8), c8), o8) in a
        .chunks_exact(LANES)
        .zip(b.chunks_exact(LANES))
        .zip(c.chunks_exact(LANES))
        .zip(out.chunks_exact_mut(LANES))
    {
        store(load(a8).mul_add(load(b8), load(c8)), o8);
    }
    for i in body..out.len() {
        out[i] = a[i].mul_add(b[i], c[i]);
    }
}

/// `out[i] = max(x[i], 0)`
pub fn relu(x: &[f32], out: &mut [f32]) {
    same_len("relu", ("x", x.len()), ("out", out.len()));
    let zero = f32x8::ZERO;
    let body = out.len() / LANES * LANES;
    for (x8, o8) in x.chunks_exact(LANES).zip(out.chunks_exact_mut(LANES)) {
        let v = load(x8);
        store(v.simd_gt(zero).select(v, zero), o8);
    }
    reference::relu(&x[body..], &mut out[body..]);
}

/// ReLU's backward mask: `out[i] = grad[i]` where `x[i] > 0`, else 0. `x` may be the
/// ReLU's input or its output (both are positive at the same places).
pub fn relu_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    same_len("relu_backward", ("x", x.len()), ("out", out.len()));
    same_len("relu_backward", ("grad", grad.len()), ("out", out.len()));
    let zero = f32x8::ZERO;
    let body = out.len() / LANES * LANES;
    for ((x8, g8), o8) in x
        .chunks_exact(LANES)
        .zip(grad.chunks_exact(LANES))
        .zip(out.chunks_exact_mut(LANES))
    {
        store(load(x8).simd_gt(zero).select(load(g8), zero), o8);
    }
    reference::relu_backward(&x[body..], &grad[body..], &mut out[body..]);
}

/// Four independent accumulators hide the FMA latency in reductions.
const UNROLL: usize = 4 * LANES;

/// The sum of the elements.
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [f32x8::ZERO; 4];
    let body = x.len() / UNROLL * UNROLL;
    for c in x.chunks_exact(UNROLL) {
        for (k, a) in acc.iter_mut().enumerate() {
            *a += load(&c[k * LANES..]);
        }
    }
    let mut tail = 0.0;
    for &v in &x[body..] {
        tail += v;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add() + tail
}

/// `sum(a[i] * b[i])`
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    same_len("dot", ("a", a.len()), ("b", b.len()));
    let mut acc = [f32x8::ZERO; 4];
    let body = a.len() / UNROLL * UNROLL;
    for (ca, cb) in a.chunks_exact(UNROLL).zip(b.chunks_exact(UNROLL)) {
        for (k, s) in acc.iter_mut().enumerate() {
            *s = load(&ca[k * LANES..]).mul_add(load(&cb[k * LANES..]), *s);
        }
    }
    let mut tail = 0.0;
    for i in body..a.len() {
        tail += a[i] * b[i];
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add() + tail
}

/// `sum(x[i]^2)`
pub fn sq_norm(x: &[f32]) -> f32 {
    dot(x, x)
}

/// The largest element; `-inf` for an empty slice. NaNs are not ordered (do not pass them).
pub fn max(x: &[f32]) -> f32 {
    let mut acc = f32x8::splat(f32::NEG_INFINITY);
    let body = x.len() / LANES * LANES;
    for c in x.chunks_exact(LANES) {
        acc = acc.fast_max(load(c));
    }
    let mut m = reference::max(&x[body..]);
    for &v in acc.as_array() {
        if v > m {
            m = v;
        }
    }
    m
}

/// For each row of a row-major `rows x cols` matrix (`rows = out.len()`), the index of its
/// first largest element.
pub fn argmax_rows(x: &[f32], cols: usize, out: &mut [usize]) {
    same_len(
        "argmax_rows",
        ("x", x.len()),
        ("rows * cols", out.len() * cols),
    );
    if cols == 0 {
        out.fill(0);
        return;
    }
    for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
        let m = max(row);
        *o = row.iter().position(|&v| v == m).unwrap_or(0);
    }
}

/// Row-wise log-softmax of a row-major matrix with `cols` columns, numerically stable
/// (subtracts each row's maximum before exponentiating).
pub fn log_softmax_rows(x: &[f32], cols: usize, out: &mut [f32]) {
    same_len("log_softmax_rows", ("x", x.len()), ("out", out.len()));
    if cols == 0 {
        return;
    }
    for (row, orow) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = max(row);
        let mv = f32x8::splat(m);
        let body = cols / LANES * LANES;
        let mut acc = f32x8::ZERO;
        for c in row.chunks_exact(LANES) {
            acc += (load(c) - mv).exp();
        }
        let mut s = acc.reduce_add();
        for &v in &row[body..] {
            s += (v - m).exp();
        }
        let lse = m + s.ln();
        let lv = f32x8::splat(lse);
        for (c, o) in row.chunks_exact(LANES).zip(orow.chunks_exact_mut(LANES)) {
            store(load(c) - lv, o);
        }
        for j in body..cols {
            orow[j] = row[j] - lse;
        }
    }
}
