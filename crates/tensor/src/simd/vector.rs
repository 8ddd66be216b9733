//! One vector interface over the instruction-set levels, so that a kernel is written once,
//! generic over [`Simd`], and compiled once per level (see [`simd_dispatch!`](crate::simd_dispatch)).

use wide::f32x8;

use super::Level;

/// A SIMD instruction set as a zero-sized token: holding one proves the CPU can run it.
///
/// Kernels are `#[inline(always)]` functions generic over `S: Simd`; [`Simd::vectorize`]
/// compiles the closure it runs with the level's instructions enabled, so everything inlined
/// into it (the kernel, these methods, and loops the compiler vectorises on its own) uses
/// them. Methods on slices check lengths; the pointer forms are for loops whose bounds
/// were checked once outside.
pub trait Simd: Copy + Send + Sync + 'static {
    /// f32 lanes per vector.
    const LANES: usize;
    /// The level this token stands for.
    const LEVEL: Level;
    /// Whether [`mul_add`](Simd::mul_add) rounds once (a fused multiply-add) at this level.
    const FUSED: bool;
    /// The vector type.
    type V: Copy;

    /// Runs `f` compiled with this level's instructions (`f` must inline its kernel to
    /// benefit: mark the kernel `#[inline(always)]`).
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R;

    /// All lanes zero.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// Loads `LANES` values from `p` (any alignment).
    ///
    /// # Safety
    /// `p .. p + LANES` must be readable.
    unsafe fn load_ptr(self, p: *const f32) -> Self::V;
    /// Stores `LANES` values to `p` (any alignment).
    ///
    /// # Safety
    /// `p .. p + LANES` must be writable.
    unsafe fn store_ptr(self, p: *mut f32, v: Self::V);
    /// `a + b`
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise square root (correctly rounded).
    fn sqrt(self, a: Self::V) -> Self::V;
    /// `a * b + c`, rounded once.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise maximum (for NaN-free inputs).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `|a|`
    fn abs(self, a: Self::V) -> Self::V;
    /// `|magnitude|` with the sign of `sign`, lane by lane.
    fn copysign(self, magnitude: Self::V, sign: Self::V) -> Self::V;
    /// `a` rounded to the nearest whole number (ties to even).
    fn round(self, a: Self::V) -> Self::V;
    /// `a · 2^n` for whole numbers `n` in [-126, 127].
    fn mul_pow2(self, a: Self::V, n: Self::V) -> Self::V;

    /// `e^a`, within 2 ulps on [-87, 88.5] (inputs are clamped to that range): `a = n ln2 + r`
    /// with `n = round(a / ln2)` and `|r| <= ln2/2` (ln2 split in two so that `r` is exact),
    /// `e^r` by its Taylor polynomial to degree 7 (remainder below 6e-9 relative), scaled
    /// by `2^n`.
    #[inline(always)]
    fn exp(self, a: Self::V) -> Self::V {
        let s = self;
        let x = s.max(a, s.splat(-87.0));
        let x = s.sub(s.splat(0.0), s.max(s.sub(s.splat(0.0), x), s.splat(-88.5)));
        let n = s.round(s.mul(x, s.splat(std::f32::consts::LOG2_E)));
        let r = s.mul_add(n, s.splat(-0.693_359_4), x);
        let r = s.mul_add(n, s.splat(2.121_944_4e-4), r);
        let mut p = s.splat(1.0 / 5040.0);
        for c in [
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ] {
            p = s.mul_add(p, r, s.splat(c));
        }
        s.mul_pow2(p, n)
    }
    /// `g` where `x > 0`, else 0, lane by lane (ReLU's backward mask).
    fn where_positive(self, x: Self::V, g: Self::V) -> Self::V;
    /// The sum of the lanes.
    fn reduce_add(self, v: Self::V) -> f32;
    /// The largest lane (for NaN-free inputs).
    fn reduce_max(self, v: Self::V) -> f32;

    /// One lane of [`mul_add`](Simd::mul_add): `a * b + c`, fused exactly when the vector
    /// form is, so scalar tails round like the vectors.
    #[inline(always)]
    fn mul_add_lane(self, a: f32, b: f32, c: f32) -> f32 {
        if Self::FUSED {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    /// Loads the first `LANES` values of `s`. Panics if `s` is shorter.
    #[inline(always)]
    fn load(self, s: &[f32]) -> Self::V {
        assert!(
            s.len() >= Self::LANES,
            "simd load: slice shorter than a vector"
        );
        // SAFETY: checked just above.
        unsafe { self.load_ptr(s.as_ptr()) }
    }

    /// Stores `v` into the first `LANES` values of `s`. Panics if `s` is shorter.
    #[inline(always)]
    fn store(self, s: &mut [f32], v: Self::V) {
        assert!(
            s.len() >= Self::LANES,
            "simd store: slice shorter than a vector"
        );
        // SAFETY: checked just above.
        unsafe { self.store_ptr(s.as_mut_ptr(), v) }
    }

    /// Writes the transpose of the 8x8 block whose rows are the first 8 values of each of
    /// `rows` into `dst`, row `j` of the result at `dst[j * ldd ..][..8]`. Panics if a row is
    /// shorter than 8 or `dst` too short.
    #[inline(always)]
    fn transpose_8x8(self, rows: [&[f32]; 8], dst: &mut [f32], ldd: usize) {
        let block = rows.map(|r| f32x8::new(r[..8].try_into().expect("a row of 8")));
        for (j, v) in f32x8::transpose(block).iter().enumerate() {
            dst[j * ldd..j * ldd + 8].copy_from_slice(v.as_array());
        }
    }

    /// Loads `s` (at most `LANES` values), the lanes past its end zero.
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> Self::V {
        let mut buf = [0.0f32; 16];
        let n = s.len().min(Self::LANES);
        buf[..n].copy_from_slice(&s[..n]);
        // SAFETY: LANES <= 16, the buffer's length.
        unsafe { self.load_ptr(buf.as_ptr()) }
    }

    /// Stores the first `s.len()` lanes of `v` (at most `LANES`) into `s`.
    #[inline(always)]
    fn store_partial(self, s: &mut [f32], v: Self::V) {
        let mut buf = [0.0f32; 16];
        // SAFETY: LANES <= 16, the buffer's length.
        unsafe { self.store_ptr(buf.as_mut_ptr(), v) };
        let n = s.len().min(Self::LANES);
        s[..n].copy_from_slice(&buf[..n]);
    }
}

/// `wide`'s `f32x8`, with whatever instructions this build was compiled for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

impl Simd for Portable {
    const LANES: usize = 8;
    const LEVEL: Level = Level::Portable;
    // `wide` fuses where the build targets FMA (x86 with `fma`, and NEON on aarch64).
    const FUSED: bool = cfg!(any(target_feature = "fma", target_arch = "aarch64"));
    type V = f32x8;

    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        f()
    }
    #[inline(always)]
    fn zero(self) -> f32x8 {
        f32x8::ZERO
    }
    #[inline(always)]
    fn splat(self, x: f32) -> f32x8 {
        f32x8::splat(x)
    }
    #[inline(always)]
    unsafe fn load_ptr(self, p: *const f32) -> f32x8 {
        // SAFETY: the caller guarantees 8 readable values; read_unaligned allows any alignment.
        unsafe { p.cast::<f32x8>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32, v: f32x8) {
        // SAFETY: the caller guarantees 8 writable values.
        unsafe { p.cast::<f32x8>().write_unaligned(v) }
    }
    #[inline(always)]
    fn add(self, a: f32x8, b: f32x8) -> f32x8 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32x8, b: f32x8) -> f32x8 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32x8, b: f32x8) -> f32x8 {
        a * b
    }
    #[inline(always)]
    fn div(self, a: f32x8, b: f32x8) -> f32x8 {
        a / b
    }
    #[inline(always)]
    fn sqrt(self, a: f32x8) -> f32x8 {
        a.sqrt()
    }
    #[inline(always)]
    fn mul_add(self, a: f32x8, b: f32x8, c: f32x8) -> f32x8 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn max(self, a: f32x8, b: f32x8) -> f32x8 {
        a.fast_max(b)
    }
    #[inline(always)]
    fn abs(self, a: f32x8) -> f32x8 {
        a.abs()
    }
    #[inline(always)]
    fn copysign(self, magnitude: f32x8, sign: f32x8) -> f32x8 {
        let bit = f32x8::splat(-0.0);
        (sign & bit) | (magnitude & !bit)
    }
    #[inline(always)]
    fn round(self, a: f32x8) -> f32x8 {
        a.round()
    }
    #[inline(always)]
    fn mul_pow2(self, a: f32x8, n: f32x8) -> f32x8 {
        let pow2 = n
            .to_array()
            .map(|n| f32::from_bits(((n as i32 + 127) as u32) << 23));
        a * f32x8::new(pow2)
    }
    #[inline(always)]
    fn where_positive(self, x: f32x8, g: f32x8) -> f32x8 {
        x.simd_gt(f32x8::ZERO).select(g, f32x8::ZERO)
    }
    #[inline(always)]
    fn reduce_add(self, v: f32x8) -> f32 {
        v.reduce_add()
    }
    #[inline(always)]
    fn reduce_max(self, v: f32x8) -> f32 {
        let a = v.to_array();
        a.into_iter().fold(f32::NEG_INFINITY, f32::max)
    }
}
