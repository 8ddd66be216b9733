//! Convolution as im2col + GEMM, for every configuration (strides, dilation, groups): unfold
//! an image into the column matrix a GEMM multiplies by the weights, and fold column
//! gradients back (col2im). Rows are ordered `(channel, ky, kx)` like an OIHW weight row.
//! Images with small outputs are unfolded side by side, so that one GEMM covers several
//! (measured on Zen 4, 1 thread, CPU time: 256 channels on 3x3 outputs forward 22 -> 61
//! GFLOP/s, forward + backward 33 -> 60; on 8x8 forward +6-15%, forward + backward +1-4%).
//! A single 1x1 stride-1 image is multiplied directly.

use ember_tensor::gemm::{MatMut, MatRef, gemm_maybe_parallel};

use super::ConvGeometry;
use super::chunk::{BackwardImages, ForwardImages, grow};
use crate::Pair;
use crate::window::valid_range;

/// The sizes of an unfolding by `g`: input `(h, w)`, output `(ho, wo)`, kernel `(kh, kw)`,
/// stride `(sh, sw)` and `p = ho * wo`, after asserting that an image of `x_len` elements
/// holds `channels` planes and `cols_len` elements their unfolding with rows `ld` apart
/// (`kernel` names the caller).
fn sizes(
    kernel: &str,
    channels: usize,
    g: &ConvGeometry,
    x_len: usize,
    cols_len: usize,
    ld: usize,
) -> [usize; 9] {
    let (h, w) = (g.height, g.width);
    let (ho, wo) = (g.out_h(), g.out_w());
    let (kh, kw) = (g.kernel.0, g.kernel.1);
    let p = ho * wo;
    let rows = channels * kh * kw;
    assert!(
        x_len >= channels * h * w,
        "{kernel}: input has {x_len} elements, needs {}",
        channels * h * w
    );
    let need = if rows == 0 { 0 } else { (rows - 1) * ld + p };
    assert!(
        ld >= p && cols_len >= need,
        "{kernel}: cols has {cols_len} elements with rows {ld} apart, needs {need} (rows of {p})"
    );
    [h, w, ho, wo, kh, kw, g.stride.0, g.stride.1, p]
}

/// Unfolds `channels` channels of one image `x` (`channels * height * width`, sizes from
/// `g`) into `cols`, a `[channels * kh * kw, out_h * out_w]` row-major matrix; padding
/// reads as zero. Panics if a slice is shorter than these sizes.
pub fn im2col(x: &[f32], channels: usize, g: &ConvGeometry, cols: &mut [f32]) {
    im2col_strided(x, channels, g, cols, g.out_h() * g.out_w());
}

/// [`im2col`] into rows `ld` apart (`ld >= out_h * out_w`): one image's block of the
/// columns of several.
fn im2col_strided(x: &[f32], channels: usize, g: &ConvGeometry, cols: &mut [f32], ld: usize) {
    let [h, w, ho, wo, kh, kw, sh, sw, p] = sizes("im2col", channels, g, x.len(), cols.len(), ld);
    for c in 0..channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut cols[((c * kh + ky) * kw + kx) * ld..][..p];
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
    col2im_strided(cols, channels, g, x, g.out_h() * g.out_w());
}

/// [`col2im`] from rows `ld` apart (`ld >= out_h * out_w`).
fn col2im_strided(cols: &[f32], channels: usize, g: &ConvGeometry, x: &mut [f32], ld: usize) {
    let [h, w, ho, wo, kh, kw, sh, sw, p] = sizes("col2im", channels, g, x.len(), cols.len(), ld);
    for c in 0..channels {
        let plane = &mut x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &cols[((c * kh + ky) * kw + kx) * ld..][..p];
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
    /// The unfolded images of a call, `[kernel_len][images * p]`.
    cols: Vec<f32>,
    /// Their gradient (input gradient).
    col_grad: Vec<f32>,
    /// `Y` or `dY` of a call's images as one `[out_per_group][images * p]` matrix.
    out: Vec<f32>,
}

fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kernel == Pair(1, 1) && g.stride == Pair(1, 1) && g.padding == Pair(0, 0)
}

/// Columns of `B` a GEMM call aims for: one image's outputs when an image has that many,
/// else several images' side by side (a 3x3 output alone gives a GEMM nine columns, too
/// narrow for its register tiles and packing to pay; 512 measured no better than 256).
const COLUMNS_PER_CALL: usize = 256;

/// Images per GEMM call: enough for [`COLUMNS_PER_CALL`] columns (at least one).
pub(super) fn images_per_call(g: &ConvGeometry) -> usize {
    (COLUMNS_PER_CALL / (g.out_h() * g.out_w()).max(1)).max(1)
}

/// The columns `B` of group `gi` of the `n` images of `xs`: `[kernel_len][n * p]`, image `i`
/// in columns `i * p..(i + 1) * p`. A single 1x1 stride-1 image is its own columns.
fn columns<'a>(
    g: &ConvGeometry,
    xs: &'a [f32],
    n: usize,
    gi: usize,
    cols: &'a mut Vec<f32>,
) -> MatRef<'a> {
    let (cig, plane, p, kl) = (
        g.in_per_group(),
        g.height * g.width,
        g.out_h() * g.out_w(),
        g.kernel_len(),
    );
    let group = |i: usize| &xs[i * g.in_item() + gi * cig * plane..][..cig * plane];
    if n == 1 && is_pointwise(g) {
        return MatRef::new(group(0), kl, p, p);
    }
    let c = grow(cols, kl * n * p);
    for i in 0..n {
        im2col_strided(group(i), cig, g, &mut c[i * p..], n * p);
    }
    MatRef::new(c, kl, n * p, n * p)
}

/// The `(offset in the images, offset in the matrix)` of each `p`-long row of group `gi` of
/// `n` images, between `[n][channels][p]` images and a `[cog][n * p]` matrix.
fn output_rows(g: &ConvGeometry, n: usize, gi: usize) -> impl Iterator<Item = (usize, usize)> {
    let (cog, p) = (g.out_per_group(), g.out_h() * g.out_w());
    let out_item = g.out_item();
    (0..n).flat_map(move |i| {
        (0..cog).map(move |co| (i * out_item + (gi * cog + co) * p, co * n * p + i * p))
    })
}

/// The `[cog][n * p]` product `m` of group `gi` into the images `ys`.
fn scatter_outputs(g: &ConvGeometry, n: usize, gi: usize, m: &[f32], ys: &mut [f32]) {
    let p = g.out_h() * g.out_w();
    for (y, r) in output_rows(g, n, gi) {
        ys[y..y + p].copy_from_slice(&m[r..r + p]);
    }
}

/// Group `gi` of the images `ys` as one `[cog][n * p]` matrix `m`.
fn gather_outputs(g: &ConvGeometry, n: usize, gi: usize, ys: &[f32], m: &mut [f32]) {
    let p = g.out_h() * g.out_w();
    for (y, r) in output_rows(g, n, gi) {
        m[r..r + p].copy_from_slice(&ys[y..y + p]);
    }
}

/// Forward of the images of `f` into `ys`: per call of [`images_per_call`] images and per
/// group `Y = W cols(X)`, then the epilogue. `f.weights` is the OIHW weight.
pub(super) fn forward(f: &ForwardImages<'_>, ys: &mut [f32], s: &mut Im2colScratch) {
    let (g, xs, w, ep, par) = (f.g, f.x, f.weights, f.ep, f.par);
    let (p, cog, kl) = (g.out_h() * g.out_w(), g.out_per_group(), g.kernel_len());
    let images = ys.len() / g.out_item();
    let step = images_per_call(g);
    for first in (0..images).step_by(step) {
        let n = step.min(images - first);
        let x = &xs[first * g.in_item()..][..n * g.in_item()];
        let y = &mut ys[first * g.out_item()..][..n * g.out_item()];
        for gi in 0..g.groups {
            let b = columns(g, x, n, gi, &mut s.cols);
            let wg = MatRef::new(&w[gi * cog * kl..], cog, kl, kl);
            if n == 1 {
                let yg = MatMut::new(&mut y[gi * cog * p..], cog, p, p);
                gemm_maybe_parallel(par, 1.0, wg, b, 0.0, yg);
            } else {
                let m = grow(&mut s.out, cog * n * p);
                gemm_maybe_parallel(par, 1.0, wg, b, 0.0, MatMut::new(m, cog, n * p, n * p));
                scatter_outputs(g, n, gi, m, y);
            }
        }
        for yi in y.chunks_exact_mut(g.out_item()) {
            ep.apply_rows(yi, p);
        }
    }
}

/// Backward of a group of images (at most [`images_per_call`] for one GEMM per group): adds
/// `dY cols(X)^T` to the OIHW `weight_sum` and/or writes the input gradient
/// `col2im(W^T dY)` to `gx`, per group.
pub(super) fn backward(
    b: &BackwardImages<'_>,
    w: &[f32],
    s: &mut Im2colScratch,
    mut gx: Option<&mut [f32]>,
    mut weight_sum: Option<&mut [f32]>,
) {
    let (g, n) = (b.g, b.images);
    let (p, cig, cog, kl) = (
        g.out_h() * g.out_w(),
        g.in_per_group(),
        g.out_per_group(),
        g.kernel_len(),
    );
    let (plane, np) = (g.height * g.width, n * p);
    for gi in 0..g.groups {
        // dY of this group as one [cog][n * p] matrix (as stored when n is 1).
        let gyg = if n == 1 {
            MatRef::new(&b.gy[gi * cog * p..], cog, p, p)
        } else {
            let m = grow(&mut s.out, cog * np);
            gather_outputs(g, n, gi, b.gy, m);
            MatRef::new(m, cog, np, np)
        };
        let wg = MatRef::new(&w[gi * cog * kl..], cog, kl, kl);
        if let Some(sum) = weight_sum.as_deref_mut() {
            let cols = columns(g, b.x, n, gi, &mut s.cols);
            let sum = MatMut::new(&mut sum[gi * cog * kl..], cog, kl, kl);
            gemm_maybe_parallel(b.par, 1.0, gyg, cols.t(), 1.0, sum);
        }
        if let Some(gx) = gx.as_deref_mut() {
            let image = |i: usize| {
                (i * g.in_channels + gi * cig) * plane..(i * g.in_channels + (gi + 1) * cig) * plane
            };
            if n == 1 && is_pointwise(g) {
                let out = MatMut::new(&mut gx[image(0)], cig, p, p);
                gemm_maybe_parallel(b.par, 1.0, wg.t(), gyg, 0.0, out);
            } else {
                let gc = grow(&mut s.col_grad, kl * np);
                gemm_maybe_parallel(b.par, 1.0, wg.t(), gyg, 0.0, MatMut::new(gc, kl, np, np));
                for i in 0..n {
                    let gxg = &mut gx[image(i)];
                    gxg.fill(0.0);
                    col2im_strided(&gc[i * p..], cig, g, gxg, np);
                }
            }
        }
    }
}
