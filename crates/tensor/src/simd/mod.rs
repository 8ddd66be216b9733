//! SIMD elementwise and reduction kernels over f32 slices, and the machinery every Ember
//! crate uses to run its kernels with the best instructions the CPU has.
//!
//! # Run-time dispatch
//! Kernels are written once, generic over the [`Simd`] trait, and compiled for every
//! [`Level`]: [`Portable`] (`wide`'s `f32x8` as this build compiles it: SSE2 on plain
//! x86-64, NEON on aarch64), [`Avx2`] (AVX2 + FMA) and [`Avx512`] (AVX-512F). The level is
//! detected once per process ([`level`]); `EMBER_SIMD=portable|avx2|avx512` forces one, and a
//! level the CPU lacks is refused with a message ([`init`]). No build flags are needed: a
//! crate that depends on `ember-tensor` gets the fast kernels without a
//! `.cargo/config.toml`. [`simd_dispatch!`](crate::simd_dispatch) is the one place a kernel
//! meets the level: it picks the token and runs the kernel inside
//! [`Simd::vectorize`], where the level's instructions are enabled.
//!
//! # Contract
//! Every kernel takes slices and sizes. Slices that must have the same length are checked,
//! and a mismatch panics with a message naming both lengths (a programming error, like
//! indexing out of bounds). Slices need no particular alignment. Sums are accumulated in a
//! different order from the scalar reference, so they agree within rounding, not bitwise;
//! the elementwise kernels agree bit for bit.
//!
//! ```
//! use ember_tensor::simd::{self, Level};
//! let x = [1.0f32, -2.0, 3.0, -4.0, 5.0];
//! let mut y = [0.0f32; 5];
//! simd::relu(&x, &mut y);
//! assert_eq!(y, [1.0, 0.0, 3.0, 0.0, 5.0]);
//! // The same kernel at every level this CPU has.
//! for level in Level::available() {
//!     assert_eq!(simd::with_level(level, || simd::sum(&x)), 3.0);
//! }
//! ```

mod kernels;
mod level;
pub mod reference;
mod vector;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use level::{Level, init, level, with_level};
pub use vector::{Portable, Simd};
#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

/// The token of a level, for [`simd_dispatch!`](crate::simd_dispatch).
#[derive(Clone, Copy, Debug)]
pub enum Token {
    /// [`Portable`]
    Portable(Portable),
    /// [`Avx2`]
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    /// [`Avx512`]
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
}

impl Token {
    /// The token of `level`, or of the best level below it that this CPU has.
    #[inline]
    pub fn of(level: Level) -> Token {
        #[cfg(target_arch = "x86_64")]
        {
            if level >= Level::Avx512
                && let Some(t) = Avx512::new()
            {
                return Token::Avx512(t);
            }
            if level >= Level::Avx2
                && let Some(t) = Avx2::new()
            {
                return Token::Avx2(t);
            }
        }
        let _ = level;
        Token::Portable(Portable)
    }
}

/// Runs `$body` with `$s` bound to the token of the active level (or of `$level`), compiled
/// for that level: `simd_dispatch!(s => my_kernel(s, x, y))`. `$body` is compiled once per
/// level; the kernels it calls should be `#[inline(always)]` and generic over [`Simd`].
#[macro_export]
macro_rules! simd_dispatch {
    ($s:ident => $body:expr) => {
        $crate::simd_dispatch!($crate::simd::level(), $s => $body)
    };
    ($level:expr, $s:ident => $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::simd::Simd as _;
        match $crate::simd::Token::of($level) {
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Token::Avx512($s) => $s.vectorize(#[inline(always)] || $body),
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Token::Avx2($s) => $s.vectorize(#[inline(always)] || $body),
            $crate::simd::Token::Portable($s) => $body,
        }
    }};
}

/// Defines a function whose body is compiled once per SIMD level and run at the active one:
/// the body becomes an `#[inline(always)]` inner function called in each arm of
/// [`simd_dispatch!`], so its loops vectorise for that level. With `[s]` after the name the
/// body also gets the level's token `s: impl Simd`.
///
/// ```
/// ember_tensor::simd_fn! {
///     /// `y[i] += 2 x[i]`.
///     pub fn add_twice(x: &[f32], y: &mut [f32]) {
///         for (y, x) in y.iter_mut().zip(x) {
///             *y += 2.0 * x;
///         }
///     }
/// }
/// let mut y = [1.0; 3];
/// add_twice(&[1.0, 2.0, 3.0], &mut y);
/// assert_eq!(y, [3.0, 5.0, 7.0]);
/// ```
#[macro_export]
macro_rules! simd_fn {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident[$s:ident]($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<S: $crate::simd::Simd>($s: S, $($arg: $ty),*) $(-> $ret)? $body
            $crate::simd_dispatch!($s => body($s, $($arg),*))
        }
    };
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            $crate::simd_dispatch!(_s => body($($arg),*))
        }
    };
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

/// `out[i] = a[i] + b[i]`
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    same_len("add", ("a", a.len()), ("out", out.len()));
    same_len("add", ("b", b.len()), ("out", out.len()));
    simd_dispatch!(s => kernels::binary(s, a, b, out, |x, y| s.add(x, y), reference::add));
}

/// `out[i] = a[i] - b[i]`
pub fn sub(a: &[f32], b: &[f32], out: &mut [f32]) {
    same_len("sub", ("a", a.len()), ("out", out.len()));
    same_len("sub", ("b", b.len()), ("out", out.len()));
    simd_dispatch!(s => kernels::binary(s, a, b, out, |x, y| s.sub(x, y), reference::sub));
}

/// `out[i] = a[i] * b[i]`
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    same_len("mul", ("a", a.len()), ("out", out.len()));
    same_len("mul", ("b", b.len()), ("out", out.len()));
    simd_dispatch!(s => kernels::binary(s, a, b, out, |x, y| s.mul(x, y), reference::mul));
}

/// `y[i] += x[i]`
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    same_len("add_assign", ("x", x.len()), ("y", y.len()));
    simd_dispatch!(s => kernels::update(s, y, x, |y, x| s.add(y, x), reference::add_assign));
}

/// `x[i] *= alpha`
pub fn scale(x: &mut [f32], alpha: f32) {
    simd_dispatch!(s => kernels::scale(s, x, alpha));
}

/// `y[i] += alpha * x[i]` (BLAS axpy), one fused multiply-add per element.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    same_len("axpy", ("x", x.len()), ("y", y.len()));
    simd_dispatch!(s => {
        let a = s.splat(alpha);
        kernels::update(s, y, x, |y, x| s.mul_add(x, a, y), |y, x| {
            for (y, x) in y.iter_mut().zip(x) {
                *y = s.mul_add_lane(*x, alpha, *y);
            }
        })
    });
}

/// `out[i] = a[i] * b[i] + c[i]`, fused.
pub fn mul_add(a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    same_len("mul_add", ("a", a.len()), ("out", out.len()));
    same_len("mul_add", ("b", b.len()), ("out", out.len()));
    same_len("mul_add", ("c", c.len()), ("out", out.len()));
    simd_dispatch!(s => kernels::mul_add(s, a, b, c, out));
}

/// `out[i] = max(x[i], 0)`
pub fn relu(x: &[f32], out: &mut [f32]) {
    same_len("relu", ("x", x.len()), ("out", out.len()));
    simd_dispatch!(s => kernels::relu(s, x, out));
}

/// ReLU's backward mask: `out[i] = grad[i]` where `x[i] > 0`, else 0. `x` may be the
/// ReLU's input or its output (both are positive at the same places).
pub fn relu_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    same_len("relu_backward", ("x", x.len()), ("out", out.len()));
    same_len("relu_backward", ("grad", grad.len()), ("out", out.len()));
    simd_dispatch!(s => kernels::binary(
        s, x, grad, out, |x, g| s.where_positive(x, g), reference::relu_backward
    ));
}

/// The sum of the elements.
pub fn sum(x: &[f32]) -> f32 {
    simd_dispatch!(s => kernels::sum(s, x))
}

/// `sum(a[i] * b[i])`
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    same_len("dot", ("a", a.len()), ("b", b.len()));
    simd_dispatch!(s => kernels::dot(s, a, b))
}

/// `sum(x[i]^2)`
pub fn sq_norm(x: &[f32]) -> f32 {
    dot(x, x)
}

/// The largest element; `-inf` for an empty slice. NaNs are not ordered (do not pass them).
pub fn max(x: &[f32]) -> f32 {
    simd_dispatch!(s => kernels::max(s, x))
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
/// (subtracts each row's maximum before exponentiating). Rows are class scores, a few
/// dozen values: the exponentials are scalar.
pub fn log_softmax_rows(x: &[f32], cols: usize, out: &mut [f32]) {
    same_len("log_softmax_rows", ("x", x.len()), ("out", out.len()));
    if cols == 0 {
        return;
    }
    for (row, orow) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = max(row);
        let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
        for (o, &v) in orow.iter_mut().zip(row) {
            *o = v - lse;
        }
    }
}
