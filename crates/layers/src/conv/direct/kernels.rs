//! Direct 3x3 stride-1 convolution with register blocking, written once over [`Simd`].
//!
//! The input is copied into zero-padded planes of width `Wp = W + 2*pw`. Each output row
//! is cut into vectors of `L` columns (`L` = 8 or 16 lanes by level); the vector at output
//! `(oy, L*vx)` reads, for tap `(ky, kx)`, the `L` consecutive padded inputs starting at
//! `(oy+ky)*Wp + L*vx + kx`: one unaligned load, no gathers, no bounds checks in the loop.
//! When the output width is a multiple of `L` no lane is wasted; otherwise the last vector
//! of a row computes a few lanes that are not stored. A forward tile is [`BLOCK_CO`] output
//! channels by 2 vectors with 16 registers (8 accumulators: 2 loads and 4 weight broadcasts
//! per 8 FMAs), or by 6 with AVX-512's 32. A 4x3 tile would fill all 16 registers exactly,
//! and without a CPU-specific scheduling model the compiler spills two of them in the inner
//! loop: measured forced to AVX2 (1 thread, CPU time), forward 51-61 GFLOP/s for 4x3 against
//! 60-69 for 4x2. The same layout gives the weight gradient as dot products of contiguous
//! runs.

use ember_tensor::simd::Simd;
use ember_tensor::simd_dispatch;

use crate::Pair;
use crate::conv::ConvGeometry;
use crate::conv::chunk::ForwardImages;
use crate::conv::copy::copy_short;
use crate::conv::epilogue::Epilogue;

/// Output channels per register tile; packed weights are padded to a multiple of it.
pub const BLOCK_CO: usize = 4;
/// The widest vector of any level: scratch sizes allow for it.
const MAX_LANES: usize = 16;

/// Length of the packed weights for [`conv2d_direct_3x3`].
pub fn packed_3x3_len(out_channels: usize, in_channels: usize) -> usize {
    out_channels.div_ceil(BLOCK_CO) * in_channels * 9 * BLOCK_CO
}

/// Packs an OIHW `[out, in, 3, 3]` weight as `[out / BLOCK_CO][in][9][BLOCK_CO]` (missing
/// output channels zero), so that a tile's four weights of one tap are adjacent. With
/// `adjoint`, packs the weight of the adjoint convolution instead: the kernel flipped and
/// its channel axes swapped (`in` output channels from `out` input channels), so that
/// [`conv2d_direct_3x3`] with padding `2 - p` computes the gradient of a 3x3 stride-1
/// convolution with respect to its input. `packed` holds [`packed_3x3_len`] of the packed
/// channels.
pub fn pack_3x3_weights(
    weight: &[f32],
    out_channels: usize,
    in_channels: usize,
    adjoint: bool,
    packed: &mut [f32],
) {
    let at = |co: usize, ci: usize, tap: usize| weight[(co * in_channels + ci) * 9 + tap];
    if adjoint {
        pack_with(in_channels, out_channels, packed, |ci, co, tap| {
            at(co, ci, 8 - tap)
        });
    } else {
        pack_with(out_channels, in_channels, packed, at);
    }
}

fn pack_with(outs: usize, ins: usize, packed: &mut [f32], w: impl Fn(usize, usize, usize) -> f32) {
    let need = packed_3x3_len(outs, ins);
    assert!(
        packed.len() >= need,
        "pack_3x3_weights: packed has {} elements, needs {need}",
        packed.len()
    );
    for cb in 0..outs.div_ceil(BLOCK_CO) {
        for ci in 0..ins {
            for tap in 0..9 {
                for j in 0..BLOCK_CO {
                    let co = cb * BLOCK_CO + j;
                    packed[((cb * ins + ci) * 9 + tap) * BLOCK_CO + j] =
                        if co < outs { w(co, ci, tap) } else { 0.0 };
                }
            }
        }
    }
}

/// Sizes of the padded-input layout for vectors of `lanes`.
struct Layout {
    wp: usize,
    ho: usize,
    wo: usize,
    lanes: usize,
    /// Vectors per output row.
    vpr: usize,
    /// Output vectors `ho * vpr`.
    nv: usize,
    /// Elements per padded channel plane (covers every read of every vector).
    plane: usize,
}

impl Layout {
    /// Offset in a padded plane of the first input read by output vector `v` (tap 0, 0).
    #[inline(always)]
    fn base(&self, v: usize) -> usize {
        (v / self.vpr) * self.wp + (v % self.vpr) * self.lanes
    }
}

fn layout(h: usize, w: usize, pad: Pair, lanes: usize) -> Layout {
    let (hp, wp) = (h + 2 * pad.0, w + 2 * pad.1);
    let (ho, wo) = (hp.saturating_sub(2), wp.saturating_sub(2));
    let vpr = wo.div_ceil(lanes);
    let nv = ho * vpr;
    // The last vector starts at (ho-1)*wp + (vpr-1)*lanes and reads `lanes` values past taps
    // up to 2*wp + 2; a row's last vector may run into the next row's first columns.
    let reach = if nv == 0 {
        0
    } else {
        (ho - 1) * wp + vpr * lanes + 2 * wp + 2
    };
    let plane = (hp * wp).max(reach).div_ceil(lanes) * lanes;
    Layout {
        wp,
        ho,
        wo,
        lanes,
        vpr,
        nv,
        plane,
    }
}

/// Scratch elements [`conv2d_direct_3x3`] needs for one image of `g` (at any level).
pub fn direct_3x3_scratch_len(g: &ConvGeometry) -> usize {
    g.in_channels * layout(g.height, g.width, g.padding, MAX_LANES).plane
}

#[inline(always)]
fn taps(wp: usize) -> [usize; 9] {
    [0, 1, 2, wp, wp + 1, wp + 2, 2 * wp, 2 * wp + 1, 2 * wp + 2]
}

/// One tile: `BLOCK_CO` channels x the `VECS` output vectors whose reads start at `bases`.
#[inline(always)]
fn tile<S: Simd, const VECS: usize>(
    s: S,
    xp: &[f32],
    plane: usize,
    wp: usize,
    bases: [usize; VECS],
    w: &[f32],
    cin: usize,
) -> [[S::V; VECS]; BLOCK_CO] {
    let mut acc = [[s.zero(); VECS]; BLOCK_CO];
    let taps = taps(wp);
    let top = bases.iter().max().copied().unwrap_or(0) + 2 * wp + 2 + S::LANES;
    assert!(
        cin == 0 || (cin - 1) * plane + top <= xp.len(),
        "direct 3x3: tile reads past the padded input"
    );
    assert!(
        w.len() >= cin * 9 * BLOCK_CO,
        "direct 3x3: packed weights too short"
    );
    for ci in 0..cin {
        // SAFETY: the asserts above bound every read: channel `ci` reads
        // `xp[ci*plane + base + off .. + LANES]` with `base + off + LANES <= top`, and the
        // weights `w[ci*36 .. ci*36 + 36]`.
        unsafe {
            let xc = xp.as_ptr().add(ci * plane);
            let wc = w.as_ptr().add(ci * 9 * BLOCK_CO);
            for (t, &off) in taps.iter().enumerate() {
                // Plain loops, not `map`: a closure call may stay out of line in here.
                let mut xv = [s.zero(); VECS];
                for (v, &b) in xv.iter_mut().zip(&bases) {
                    *v = s.load_ptr(xc.add(b + off));
                }
                for (j, row) in acc.iter_mut().enumerate() {
                    let wv = s.splat(*wc.add(t * BLOCK_CO + j));
                    for (a, x) in row.iter_mut().zip(xv) {
                        *a = s.mul_add(x, wv, *a);
                    }
                }
            }
        }
    }
    acc
}

/// 3x3, stride 1, dilation 1 convolution of one image of `g` (one group; `g.batch` is not
/// used): `y[co][oy][ox] = sum over ci, ky, kx of w[co][ci][ky][kx] *
/// x[ci][oy+ky-ph][ox+kx-pw]`, then the epilogue. `x` is `[in_channels, h, w]`, `packed` from
/// [`pack_3x3_weights`], `y` is `[out_channels, h + 2ph - 2, w + 2pw - 2]` (overwritten),
/// `scratch` at least [`direct_3x3_scratch_len`]. Panics if a slice is too short.
pub fn conv2d_direct_3x3(
    g: &ConvGeometry,
    x: &[f32],
    packed: &[f32],
    ep: Epilogue<'_>,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    let image = ForwardImages::new(g, x, packed, ep, false);
    simd_dispatch!(s => forward_image(s, &image, scratch, y))
}

/// [`conv2d_direct_3x3`] of the one image `f.x` with the instructions of `s`: tiles of 2
/// vectors, or 6 where the level has 32 registers.
#[inline(always)]
pub(super) fn forward_image<S: Simd>(
    s: S,
    f: &ForwardImages<'_>,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    if S::LANES == 16 {
        forward_tiles::<S, 6>(s, f, scratch, y)
    } else {
        forward_tiles::<S, 2>(s, f, scratch, y)
    }
}

#[inline(always)]
fn forward_tiles<S: Simd, const VECS: usize>(
    s: S,
    f: &ForwardImages<'_>,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    let (g, x, packed, ep) = (f.g, f.x, f.weights, f.ep);
    let (cin, h, w, pad, out_channels) =
        (g.in_channels, g.height, g.width, g.padding, g.out_channels);
    let l = layout(h, w, pad, S::LANES);
    assert!(
        x.len() >= cin * h * w,
        "conv2d_direct_3x3: x has {} elements, needs {}",
        x.len(),
        cin * h * w
    );
    assert!(
        packed.len() >= packed_3x3_len(out_channels, cin),
        "conv2d_direct_3x3: packed weights too short"
    );
    let ylen = out_channels * l.ho * l.wo;
    assert!(
        y.len() >= ylen,
        "conv2d_direct_3x3: y has {} elements, needs {ylen}",
        y.len()
    );
    let xp = &mut scratch[..cin * l.plane];
    pad_planes(x, cin, h, w, pad, &l, xp);
    let xp = &*xp;
    for cb in 0..out_channels.div_ceil(BLOCK_CO) {
        let wb = &packed[cb * cin * 9 * BLOCK_CO..(cb + 1) * cin * 9 * BLOCK_CO];
        // Output positions (oy, vx) advance incrementally: no division in the loop.
        let next = |(oy, vx): (usize, usize)| {
            if vx + 1 == l.vpr {
                (oy + 1, 0)
            } else {
                (oy, vx + 1)
            }
        };
        let mut first = (0, 0);
        for v0 in (0..l.nv).step_by(VECS) {
            // A short last tile repeats its last vector; the repeats are not stored.
            let mut pos = [first; VECS];
            for k in 1..VECS {
                pos[k] = if v0 + k < l.nv {
                    next(pos[k - 1])
                } else {
                    pos[k - 1]
                };
            }
            first = next(pos[VECS - 1]);
            let bases = pos.map(|(oy, vx)| oy * l.wp + vx * S::LANES);
            let acc = tile::<S, VECS>(s, xp, l.plane, l.wp, bases, wb, cin);
            for (j, row) in acc.iter().enumerate() {
                let co = cb * BLOCK_CO + j;
                if co >= out_channels {
                    break;
                }
                let e = ep.channel(co);
                for (a, &(oy, vx)) in row.iter().zip(&pos).take(l.nv - v0) {
                    let ox = vx * S::LANES;
                    let n = (l.wo - ox).min(S::LANES);
                    let dst = &mut y[(co * l.ho + oy) * l.wo + ox..][..n];
                    let out = e.apply_vec(s, *a);
                    if n == S::LANES {
                        s.store(dst, out);
                    } else {
                        s.store_partial(dst, out);
                    }
                }
            }
        }
    }
}

/// Scratch elements [`conv2d_direct_3x3_weight_grad`] needs for the `g.batch` images of `g`
/// (at any level).
pub fn direct_3x3_weight_grad_scratch_len(g: &ConvGeometry) -> usize {
    let l = layout(g.height, g.width, g.padding, MAX_LANES);
    let per_image =
        g.in_channels * l.plane + g.out_channels.div_ceil(BLOCK_CO) * BLOCK_CO * l.nv * l.lanes;
    g.batch * per_image
}

/// How many images [`conv2d_direct_3x3_weight_grad`] should take per call: as many as
/// share its horizontal sums (at most 4) while the data one `(channel block, input
/// channel)` step reads from all of them, one padded input plane and `BLOCK_CO` gradient
/// planes per image, stays within 24 KB of L1. Measured (1 thread, batch 128, 8 lanes): 4
/// images cut the 14x14 and 16x16 weight gradients by 5%; on 28x28 and 32x32 (one image
/// fits) 4 images were 10% slower.
pub(super) fn weight_grad_images(h: usize, w: usize, pad: Pair) -> usize {
    let l = layout(h, w, pad, 8);
    let per_image = (BLOCK_CO * l.nv * 8 + l.plane) * std::mem::size_of::<f32>();
    (24 * 1024 / per_image.max(1)).clamp(1, 4)
}

/// Accumulates the weight gradient of a 3x3 stride-1 convolution over the `g.batch` images
/// of `g`: `gw[co][ci][ky][kx] += sum over n, oy, ox of gy[n][co][oy][ox] *
/// x[n][ci][oy+ky-ph][ox+kx-pw]`. `x` is `[images, in_channels, h, w]`, `gy` is `[images,
/// out_channels, h+2ph-2, w+2pw-2]`, `gw` OIHW, `scratch` at least
/// [`direct_3x3_weight_grad_scratch_len`]. Several images per call share each weight's final
/// horizontal sum. Panics if a slice is too short.
pub fn conv2d_direct_3x3_weight_grad(
    g: &ConvGeometry,
    x: &[f32],
    gy: &[f32],
    scratch: &mut [f32],
    gw: &mut [f32],
) {
    simd_dispatch!(s => weight_grad_images_in(s, g, x, gy, scratch, gw))
}

/// [`conv2d_direct_3x3_weight_grad`] with the instructions of `s`.
#[inline(always)]
fn weight_grad_images_in<S: Simd>(
    s: S,
    g: &ConvGeometry,
    x: &[f32],
    gy: &[f32],
    scratch: &mut [f32],
    gw: &mut [f32],
) {
    let (images, cin, h, w, pad, cout) = (
        g.batch,
        g.in_channels,
        g.height,
        g.width,
        g.padding,
        g.out_channels,
    );
    let l = layout(h, w, pad, S::LANES);
    let lanes = S::LANES;
    let (in_item, out_item) = (cin * h * w, cout * l.ho * l.wo);
    assert!(
        x.len() >= images * in_item,
        "conv2d_direct_3x3_weight_grad: x too short"
    );
    assert!(
        gy.len() >= images * out_item,
        "conv2d_direct_3x3_weight_grad: gy too short"
    );
    assert!(
        gw.len() >= cout * cin * 9,
        "conv2d_direct_3x3_weight_grad: gw too short"
    );
    let cpad = cout.div_ceil(BLOCK_CO) * BLOCK_CO;
    let glen = l.nv * lanes;
    let (xps, gyvs) =
        scratch[..images * (cin * l.plane + cpad * glen)].split_at_mut(images * cin * l.plane);
    // gy cut into the output vectors; lanes past the row end and the rows of missing
    // output channels (up to a multiple of BLOCK_CO) are zero, so they add nothing.
    gyvs.fill(0.0);
    for n in 0..images {
        let xp = &mut xps[n * cin * l.plane..(n + 1) * cin * l.plane];
        pad_planes(&x[n * in_item..], cin, h, w, pad, &l, xp);
        let gyv = &mut gyvs[n * cpad * glen..(n + 1) * cpad * glen];
        let gy = &gy[n * out_item..];
        for co in 0..cout {
            for oy in 0..l.ho {
                let src = &gy[(co * l.ho + oy) * l.wo..][..l.wo];
                copy_short(&mut gyv[co * glen + oy * l.vpr * lanes..][..l.wo], src);
            }
        }
    }
    // Tile: BLOCK_CO output channels x the 3 taps of one kernel row = 12 accumulators;
    // each step loads 3 input and 4 gradient vectors for 12 FMAs.
    let top = if l.nv == 0 {
        0
    } else {
        l.base(l.nv - 1) + 2 * l.wp + 2 + lanes
    };
    for cb in 0..cpad / BLOCK_CO {
        for ci in 0..cin {
            for ky in 0..3 {
                let mut acc = [[s.zero(); 3]; BLOCK_CO];
                for n in 0..images {
                    let g = &gyvs[(n * cpad + cb * BLOCK_CO) * glen..][..BLOCK_CO * glen];
                    let xc = &xps[(n * cin + ci) * l.plane..][..l.plane];
                    assert!(
                        top <= xc.len(),
                        "direct 3x3 weight grad: reads past the padded input"
                    );
                    for (v, b) in (0..l.ho)
                        .flat_map(|oy| (0..l.vpr).map(move |vx| oy * l.wp + vx * lanes))
                        .enumerate()
                    {
                        // SAFETY: gradient reads `g[j*glen + v*lanes ..][..lanes]` stay in `g`
                        // (BLOCK_CO rows of glen = nv*lanes); input reads start at `base(v) = b`
                        // plus `ky*wp + kx` with ky, kx <= 2 and end by `top <= xc.len()`
                        // (base grows with v).
                        unsafe {
                            let xs = xc.as_ptr().add(b + ky * l.wp);
                            let xv = [s.load_ptr(xs), s.load_ptr(xs.add(1)), s.load_ptr(xs.add(2))];
                            for (j, row) in acc.iter_mut().enumerate() {
                                let gv = s.load_ptr(g.as_ptr().add(j * glen + v * lanes));
                                for (a, xk) in row.iter_mut().zip(xv) {
                                    *a = s.mul_add(xk, gv, *a);
                                }
                            }
                        }
                    }
                }
                for (j, row) in acc.iter().enumerate() {
                    let co = cb * BLOCK_CO + j;
                    if co < cout {
                        let out = &mut gw[(co * cin + ci) * 9 + ky * 3..][..3];
                        for (o, a) in out.iter_mut().zip(row) {
                            *o += s.reduce_add(*a);
                        }
                    }
                }
            }
        }
    }
}

/// Copies `[channels, h, w]` into zero-padded planes of the padded-width layout.
fn pad_planes(
    x: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    pad: Pair,
    l: &Layout,
    xp: &mut [f32],
) {
    for ci in 0..channels {
        let plane = &mut xp[ci * l.plane..(ci + 1) * l.plane];
        if h == 0 || w == 0 {
            plane.fill(0.0);
            continue;
        }
        // Only the padding is zeroed: the top rows, then after each row the gap up to the
        // next row's first column, and after the last row everything to the plane's end.
        plane[..pad.0 * l.wp + pad.1].fill(0.0);
        for r in 0..h {
            let dst = (r + pad.0) * l.wp + pad.1;
            copy_short(
                &mut plane[dst..dst + w],
                &x[(ci * h + r) * w..(ci * h + r + 1) * w],
            );
            let end = if r + 1 < h { dst + l.wp } else { l.plane };
            zero_short(&mut plane[dst + w..end]);
        }
    }
}

/// Zeroes a short run (a row's padding) with plain stores, falling back to `fill`.
#[inline(always)]
fn zero_short(dst: &mut [f32]) {
    const ZEROS: [f32; 32] = [0.0; 32];
    if dst.len() <= ZEROS.len() {
        copy_short(dst, &ZEROS[..dst.len()]);
    } else {
        dst.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several images per weight-gradient call for the small planes, one for the large.
    #[test]
    fn weight_grad_images_by_plane_size() {
        let p = Pair(1, 1);
        assert_eq!(weight_grad_images(14, 14, p), 4);
        assert_eq!(weight_grad_images(16, 16, p), 4);
        assert_eq!(weight_grad_images(28, 28, p), 1);
        assert_eq!(weight_grad_images(32, 32, p), 1);
        assert_eq!(weight_grad_images(1, 1, Pair(0, 0)), 4);
    }
}
