//! Convolution as im2col + GEMM, for every configuration (strides, dilation, groups): unfold
//! an image into the column matrix a GEMM multiplies by the weights, and fold column
//! gradients back (col2im). Rows are ordered `(channel, ky, kx)` like an OIHW weight row.
//! 1x1 stride-1 convolutions multiply the input directly.

use ember_tensor::gemm::{MatMut, MatRef, gemm_maybe_parallel};

use super::ConvGeometry;
use super::chunk::{BackwardImages, ForwardImages, grow};
use crate::Pair;
use crate::window::valid_range;

/// The sizes of an unfolding by `g`: input `(h, w)`, output `(ho, wo)`, kernel `(kh, kw)`,
/// stride `(sh, sw)` and `p = ho * wo`, after asserting that an image of `x_len` elements
/// holds `channels` planes and `cols_len` elements their unfolding (`kernel` names the
/// caller).
fn sizes(
    kernel: &str,
    channels: usize,
    g: &ConvGeometry,
    x_len: usize,
    cols_len: usize,
) -> [usize; 9] {
    let (h, w) = (g.height, g.width);
    let (ho, wo) = (g.out_h(), g.out_w());
    let (kh, kw) = (g.kernel.0, g.kernel.1);
    let p = ho * wo;
    assert!(
        x_len >= channels * h * w,
        "{kernel}: input has {x_len} elements, needs {}",
        channels * h * w
    );
    assert!(
        cols_len >= channels * kh * kw * p,
        "{kernel}: cols has {cols_len} elements, needs {}",
        channels * kh * kw * p
    );
    [h, w, ho, wo, kh, kw, g.stride.0, g.stride.1, p]
}

/// Unfolds `channels` channels of one image `x` (`channels * height * width`, sizes from
/// `g`) into `cols`, a `[channels * kh * kw, out_h * out_w]` row-major matrix; padding
/// reads as zero. Panics if a slice is shorter than these sizes.
pub fn im2col(x: &[f32], channels: usize, g: &ConvGeometry, cols: &mut [f32]) {
    let [h, w, ho, wo, kh, kw, sh, sw, p] = sizes("im2col", channels, g, x.len(), cols.len());
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
    let [h, w, ho, wo, kh, kw, sh, sw, p] = sizes("col2im", channels, g, x.len(), cols.len());
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

/// The im2col workspace of a batch chunk.
#[derive(Default)]
pub(super) struct Im2colScratch {
    /// The column matrix of one image and group, `[cin/g * kh * kw, ho * wo]`.
    cols: Vec<f32>,
    /// The gradient of that column matrix.
    col_grad: Vec<f32>,
}

fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kernel == Pair(1, 1) && g.stride == Pair(1, 1) && g.padding == Pair(0, 0)
}

/// Group `gi`'s input columns of image `x`: the input itself for 1x1 stride-1
/// convolutions, else its im2col unfolding in `cols`.
fn columns<'a>(g: &ConvGeometry, x: &'a [f32], gi: usize, cols: &'a mut Vec<f32>) -> &'a [f32] {
    let (cig, plane) = (g.in_per_group(), g.height * g.width);
    let xg = &x[gi * cig * plane..(gi + 1) * cig * plane];
    if is_pointwise(g) {
        return xg;
    }
    let c = grow(cols, g.kernel_len() * g.out_h() * g.out_w());
    im2col(xg, cig, g, c);
    c
}

/// Forward of the images of `f` into `ys`: per image and group `Y = W cols(X)`, then the
/// epilogue. `f.weights` is the OIHW weight.
pub(super) fn forward(f: &ForwardImages<'_>, ys: &mut [f32], s: &mut Im2colScratch) {
    let (g, xs, w, ep, par) = (f.g, f.x, f.weights, f.ep, f.par);
    let (p, cog, kl) = (g.out_h() * g.out_w(), g.out_per_group(), g.kernel_len());
    for (x, y) in xs
        .chunks_exact(g.in_item())
        .zip(ys.chunks_exact_mut(g.out_item()))
    {
        for gi in 0..g.groups {
            let b = MatRef::new(columns(g, x, gi, &mut s.cols), kl, p, p);
            let wg = MatRef::new(&w[gi * cog * kl..], cog, kl, kl);
            let yg = MatMut::new(&mut y[gi * cog * p..], cog, p, p);
            gemm_maybe_parallel(par, 1.0, wg, b, 0.0, yg);
        }
        ep.apply_rows(y, p);
    }
}

/// Backward of a group of images: adds `dY cols(X)^T` to the OIHW `weight_sum` and/or writes
/// the input gradient `col2im(W^T dY)` to `gx`, per image and group.
pub(super) fn backward(
    b: &BackwardImages<'_>,
    w: &[f32],
    s: &mut Im2colScratch,
    mut gx: Option<&mut [f32]>,
    mut weight_sum: Option<&mut [f32]>,
) {
    let g = b.g;
    let (p, cig, cog, kl) = (
        g.out_h() * g.out_w(),
        g.in_per_group(),
        g.out_per_group(),
        g.kernel_len(),
    );
    let plane = g.height * g.width;
    for i in 0..b.images {
        let x = &b.x[i * g.in_item()..][..g.in_item()];
        let gy = &b.gy[i * g.out_item()..][..g.out_item()];
        for gi in 0..g.groups {
            let gyg = MatRef::new(&gy[gi * cog * p..], cog, p, p);
            let wg = MatRef::new(&w[gi * cog * kl..], cog, kl, kl);
            if let Some(sum) = weight_sum.as_deref_mut() {
                let cols = MatRef::new(columns(g, x, gi, &mut s.cols), kl, p, p);
                let sum = MatMut::new(&mut sum[gi * cog * kl..], cog, kl, kl);
                gemm_maybe_parallel(b.par, 1.0, gyg, cols.t(), 1.0, sum);
            }
            if let Some(gx) = gx.as_deref_mut() {
                let gxg = &mut gx[(i * g.in_channels + gi * cig) * plane..][..cig * plane];
                if is_pointwise(g) {
                    let out = MatMut::new(gxg, cig, p, p);
                    gemm_maybe_parallel(b.par, 1.0, wg.t(), gyg, 0.0, out);
                } else {
                    let gc = grow(&mut s.col_grad, kl * p);
                    gemm_maybe_parallel(b.par, 1.0, wg.t(), gyg, 0.0, MatMut::new(gc, kl, p, p));
                    gxg.fill(0.0);
                    col2im(gc, cig, g, gxg);
                }
            }
        }
    }
}
