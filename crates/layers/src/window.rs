//! Index arithmetic of sliding windows, shared by convolution (im2col) and pooling.

/// The range `[lo, hi)` of output columns `ox` whose input column `ox*s + k - p` (tap
/// offset `k`, dilation included) lies in `0..w`, clamped to `0..out`.
#[inline]
pub(crate) fn valid_range(w: usize, out: usize, s: usize, k: usize, p: usize) -> (usize, usize) {
    // ox*s + k >= p  and  ox*s + k < w + p
    let lo = if k >= p { 0 } else { (p - k).div_ceil(s) };
    let hi = if w + p > k {
        (w + p - k).div_ceil(s)
    } else {
        0
    };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}
