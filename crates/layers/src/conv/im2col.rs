//! im2col and col2im: unfold one image into the column matrix a GEMM multiplies, and fold
//! column gradients back. Rows are ordered `(channel, ky, kx)` like an OIHW weight row.

use super::ConvGeometry;

/// The range of output columns `ox` whose input column `ox*s + k*d - p` lies in `0..w`.
fn valid_range(w: usize, out: usize, s: usize, kd: usize, p: usize) -> (usize, usize) {
    // ox*s + kd >= p  and  ox*s + kd < w + p
    let lo = if kd >= p { 0 } else { (p - kd).div_ceil(s) };
    let hi = if w + p > kd {
        (w + p - kd).div_ceil(s)
    } else {
        0
    };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// Unfolds `channels` channels of one image `x` (`channels * height * width`, sizes from
/// `g`) into `cols`, a `[channels * kh * kw, out_h * out_w]` row-major matrix; padding
/// reads as zero. Panics if a slice is shorter than these sizes.
pub fn im2col(x: &[f32], channels: usize, g: &ConvGeometry, cols: &mut [f32]) {
    let (h, w) = (g.height, g.width);
    let (ho, wo) = (g.out_h(), g.out_w());
    let (kh, kw) = (g.kernel.0, g.kernel.1);
    let (sh, sw) = (g.stride.0, g.stride.1);
    let p = ho * wo;
    assert!(
        x.len() >= channels * h * w,
        "im2col: input has {} elements, needs {}",
        x.len(),
        channels * h * w
    );
    assert!(
        cols.len() >= channels * kh * kw * p,
        "im2col: cols has {} elements, needs {}",
        cols.len(),
        channels * kh * kw * p
    );
    for c in 0..channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut cols[((c * kh + ky) * kw + kx) * p..][..p];
                let (lo, hi) = valid_range(w, wo, sw, kx * g.dilation.1, g.padding.1);
                for oy in 0..ho {
                    let out = &mut row[oy * wo..(oy + 1) * wo];
                    let iy = (oy * sh + ky * g.dilation.0) as isize - g.padding.0 as isize;
                    if iy < 0 || iy >= h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    let x0 = (lo * sw + kx * g.dilation.1) as isize - g.padding.1 as isize;
                    if hi > lo {
                        let x0 = x0 as usize;
                        if sw == 1 {
                            out[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                        } else {
                            for (j, o) in out[lo..hi].iter_mut().enumerate() {
                                *o = src[x0 + j * sw];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `cols` (`[channels * kh * kw, out_h *
/// out_w]`) into the input position it was read from in `x` (`channels * height * width`).
/// Entries that came from padding are dropped. `x` is accumulated into, not overwritten.
pub fn col2im(cols: &[f32], channels: usize, g: &ConvGeometry, x: &mut [f32]) {
    let (h, w) = (g.height, g.width);
    let (ho, wo) = (g.out_h(), g.out_w());
    let (kh, kw) = (g.kernel.0, g.kernel.1);
    let (sh, sw) = (g.stride.0, g.stride.1);
    let p = ho * wo;
    assert!(
        x.len() >= channels * h * w,
        "col2im: input has {} elements, needs {}",
        x.len(),
        channels * h * w
    );
    assert!(
        cols.len() >= channels * kh * kw * p,
        "col2im: cols has {} elements, needs {}",
        cols.len(),
        channels * kh * kw * p
    );
    for c in 0..channels {
        let plane = &mut x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &cols[((c * kh + ky) * kw + kx) * p..][..p];
                let (lo, hi) = valid_range(w, wo, sw, kx * g.dilation.1, g.padding.1);
                if hi <= lo {
                    continue;
                }
                let x0 = ((lo * sw + kx * g.dilation.1) as isize - g.padding.1 as isize) as usize;
                for oy in 0..ho {
                    let iy = (oy * sh + ky * g.dilation.0) as isize - g.padding.0 as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let src = &row[oy * wo + lo..oy * wo + hi];
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    if sw == 1 {
                        ember_tensor::simd::add_assign(&mut dst[x0..x0 + hi - lo], src);
                    } else {
                        for (j, v) in src.iter().enumerate() {
                            dst[x0 + j * sw] += v;
                        }
                    }
                }
            }
        }
    }
}
