//! Direct 3x3 stride-1 convolution with `wide::f32x8` and register blocking.
//!
//! The input is copied into a zero-padded buffer of width `Wp = W + 2*pw`. In that layout
//! the output at flat position `o = oy*Wp + ox` reads the input at `o + ky*Wp + kx`, so a
//! run of 8 consecutive outputs reads 8 consecutive inputs for every tap: one unaligned
//! load, no gathers, no bounds checks. Positions with `ox >= Wo` are computed and dropped
//! (`2*pw` of every `Wp` columns; that waste is why small images prefer im2col + GEMM).
//! A tile is [`BLOCK_CO`] output channels by 3 vectors (24 positions): 12 accumulators,
//! and each (channel, tap) step does 3 loads and 4 weight broadcasts for 12 FMAs.

use wide::f32x8;

use crate::Pair;

/// Output channels per register tile; packed weights are padded to a multiple of it.
pub const BLOCK_CO: usize = 4;
const VECS: usize = 3;
const TILE: usize = VECS * 8;

/// Length of the packed weights for [`conv2d_direct_3x3`].
pub fn packed_3x3_len(out_channels: usize, in_channels: usize) -> usize {
    out_channels.div_ceil(BLOCK_CO) * in_channels * 9 * BLOCK_CO
}

/// Packs an OIHW `[out, in, 3, 3]` weight as `[out / BLOCK_CO][in][9][BLOCK_CO]` (missing
/// output channels zero), so that a tile's four weights of one tap are adjacent.
pub fn pack_3x3_weights(
    weight: &[f32],
    out_channels: usize,
    in_channels: usize,
    packed: &mut [f32],
) {
    pack_with(out_channels, in_channels, packed, |co, ci, tap| {
        weight[(co * in_channels + ci) * 9 + tap]
    });
}

/// Packs the weight of the adjoint convolution: the kernel flipped and its channel axes
/// swapped, so that [`conv2d_direct_3x3`] with padding `2 - p` computes the gradient of a
/// 3x3 stride-1 convolution with respect to its input. `weight` is OIHW `[out, in, 3, 3]`;
/// the result packs `in` output channels from `out` input channels.
pub fn pack_3x3_weights_adjoint(
    weight: &[f32],
    out_channels: usize,
    in_channels: usize,
    packed: &mut [f32],
) {
    pack_with(in_channels, out_channels, packed, |ci, co, tap| {
        weight[(co * in_channels + ci) * 9 + (8 - tap)]
    });
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

/// Sizes of the padded-input layout.
struct Layout {
    wp: usize,
    ho: usize,
    wo: usize,
    /// Flat outputs `ho * wp` rounded up to a whole tile.
    len: usize,
    /// Elements per padded channel plane (covers every read of every tile).
    plane: usize,
}

fn layout(h: usize, w: usize, pad: Pair) -> Layout {
    let (hp, wp) = (h + 2 * pad.0, w + 2 * pad.1);
    let (ho, wo) = (hp.saturating_sub(2), wp.saturating_sub(2));
    let len = (ho * wp).div_ceil(TILE) * TILE;
    let plane = (hp * wp).max(len + 2 * wp + 2).div_ceil(8) * 8;
    Layout {
        wp,
        ho,
        wo,
        len,
        plane,
    }
}

/// Scratch elements [`conv2d_direct_3x3`] needs for one image.
pub fn direct_3x3_scratch_len(in_channels: usize, h: usize, w: usize, pad: Pair) -> usize {
    in_channels * layout(h, w, pad).plane
}

/// One tile: `BLOCK_CO` channels x 24 flat positions starting at `o0`.
#[inline(always)]
fn tile(
    xp: &[f32],
    plane: usize,
    wp: usize,
    o0: usize,
    w: &[f32],
    cin: usize,
) -> [[f32x8; VECS]; BLOCK_CO] {
    let mut acc = [[f32x8::ZERO; VECS]; BLOCK_CO];
    let taps: [usize; 9] = [0, 1, 2, wp, wp + 1, wp + 2, 2 * wp, 2 * wp + 1, 2 * wp + 2];
    let reach = 2 * wp + 2 + TILE;
    assert!(
        cin == 0 || (cin - 1) * plane + o0 + reach <= xp.len(),
        "direct 3x3: tile reads past the padded input"
    );
    assert!(
        w.len() >= cin * 9 * BLOCK_CO,
        "direct 3x3: packed weights too short"
    );
    for ci in 0..cin {
        // SAFETY: the asserts above bound every read: channel `ci` reads
        // `xp[ci*plane + o0 + off .. + 24]` with `off <= 2*wp + 2`, and weights
        // `w[ci*36 .. ci*36 + 36]`. Unaligned loads of f32x8 are allowed by read_unaligned.
        unsafe {
            let xc = xp.as_ptr().add(ci * plane + o0);
            let wc = w.as_ptr().add(ci * 9 * BLOCK_CO);
            for (t, &off) in taps.iter().enumerate() {
                let p = xc.add(off);
                let xv = [
                    p.cast::<f32x8>().read_unaligned(),
                    p.add(8).cast::<f32x8>().read_unaligned(),
                    p.add(16).cast::<f32x8>().read_unaligned(),
                ];
                for (j, row) in acc.iter_mut().enumerate() {
                    let wv = f32x8::splat(*wc.add(t * BLOCK_CO + j));
                    for (a, x) in row.iter_mut().zip(xv) {
                        *a = x.mul_add(wv, *a);
                    }
                }
            }
        }
    }
    acc
}

/// 3x3, stride 1, dilation 1 convolution of one image: `y[co][oy][ox] = bias[co] +
/// sum over ci, ky, kx of w[co][ci][ky][kx] * x[ci][oy+ky-ph][ox+kx-pw]`, then ReLU if
/// `relu`. `x` is `[in_channels, h, w]`, `packed` from [`pack_3x3_weights`], `y` is
/// `[out_channels, h + 2ph - 2, w + 2pw - 2]` (overwritten), `scratch` at least
/// [`direct_3x3_scratch_len`]. Panics if a slice is too short.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_direct_3x3(
    x: &[f32],
    in_channels: usize,
    h: usize,
    w: usize,
    pad: Pair,
    packed: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    relu: bool,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    let l = layout(h, w, pad);
    let cin = in_channels;
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
    assert!(
        y.len() >= out_channels * l.ho * l.wo,
        "conv2d_direct_3x3: y has {} elements, needs {}",
        y.len(),
        out_channels * l.ho * l.wo
    );
    let xp = &mut scratch[..cin * l.plane];
    pad_planes(x, cin, h, w, pad, &l, xp);
    let xp = &*xp;
    let flat = l.ho * l.wp;
    let mut buf = [[0.0f32; TILE]; BLOCK_CO];
    for cb in 0..out_channels.div_ceil(BLOCK_CO) {
        let wb = &packed[cb * cin * 9 * BLOCK_CO..(cb + 1) * cin * 9 * BLOCK_CO];
        for o0 in (0..l.len).step_by(TILE) {
            let acc = tile(xp, l.plane, l.wp, o0, wb, cin);
            for (b, row) in buf.iter_mut().zip(acc) {
                for (v, a) in row.iter().enumerate() {
                    b[v * 8..v * 8 + 8].copy_from_slice(a.as_array());
                }
            }
            // Scatter the tile's valid positions row by row.
            let end = (o0 + TILE).min(flat);
            let mut o = o0;
            while o < end {
                let (oy, ox) = (o / l.wp, o % l.wp);
                let row_end = (oy * l.wp + l.wo).min(end);
                if ox < l.wo {
                    for (j, b) in buf.iter().enumerate() {
                        let co = cb * BLOCK_CO + j;
                        if co >= out_channels {
                            break;
                        }
                        let add = bias.map_or(0.0, |b| b[co]);
                        let dst = &mut y[(co * l.ho + oy) * l.wo + ox..][..row_end - o];
                        for (d, &s) in dst.iter_mut().zip(&b[o - o0..row_end - o0]) {
                            let v = s + add;
                            *d = if relu && v < 0.0 { 0.0 } else { v };
                        }
                    }
                }
                o = (oy + 1) * l.wp;
            }
        }
    }
}

/// Scratch elements [`conv2d_direct_3x3_weight_grad`] needs for one image.
pub fn direct_3x3_weight_grad_scratch_len(
    in_channels: usize,
    out_channels: usize,
    h: usize,
    w: usize,
    pad: Pair,
) -> usize {
    let l = layout(h, w, pad);
    in_channels * l.plane + out_channels.div_ceil(BLOCK_CO) * BLOCK_CO * l.len
}

/// Accumulates the weight gradient of a 3x3 stride-1 convolution for one image:
/// `gw[co][ci][ky][kx] += sum over oy, ox of gy[co][oy][ox] * x[ci][oy+ky-ph][ox+kx-pw]`.
/// `x` is `[in_channels, h, w]`, `gy` is `[out_channels, h+2ph-2, w+2pw-2]`, `gw` OIHW,
/// `scratch` at least [`direct_3x3_weight_grad_scratch_len`]. In the padded-width layout
/// every weight is one dot product of two contiguous runs.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_direct_3x3_weight_grad(
    x: &[f32],
    in_channels: usize,
    h: usize,
    w: usize,
    pad: Pair,
    gy: &[f32],
    out_channels: usize,
    scratch: &mut [f32],
    gw: &mut [f32],
) {
    let l = layout(h, w, pad);
    let (cin, cout) = (in_channels, out_channels);
    assert!(
        x.len() >= cin * h * w,
        "conv2d_direct_3x3_weight_grad: x too short"
    );
    assert!(
        gy.len() >= cout * l.ho * l.wo,
        "conv2d_direct_3x3_weight_grad: gy too short"
    );
    assert!(
        gw.len() >= cout * cin * 9,
        "conv2d_direct_3x3_weight_grad: gw too short"
    );
    let cpad = cout.div_ceil(BLOCK_CO) * BLOCK_CO;
    let (xp, gyp) = scratch[..cin * l.plane + cpad * l.len].split_at_mut(cin * l.plane);
    pad_planes(x, cin, h, w, pad, &l, xp);
    // gy spread to the padded width; dropped columns, the tile tail and the rows of missing
    // output channels (up to a multiple of BLOCK_CO) read as zero.
    gyp.fill(0.0);
    for co in 0..cout {
        let dst = &mut gyp[co * l.len..(co + 1) * l.len];
        for oy in 0..l.ho {
            dst[oy * l.wp..oy * l.wp + l.wo]
                .copy_from_slice(&gy[(co * l.ho + oy) * l.wo..][..l.wo]);
        }
    }
    let steps = l.len / 8;
    // Tile: BLOCK_CO output channels x the 3 taps of one kernel row = 12 accumulators;
    // each step loads 3 input and 4 gradient vectors for 12 FMAs.
    for cb in 0..cpad / BLOCK_CO {
        let g = &gyp[cb * BLOCK_CO * l.len..(cb + 1) * BLOCK_CO * l.len];
        for ci in 0..cin {
            let xc = &xp[ci * l.plane..(ci + 1) * l.plane];
            // Reads reach `len - 8 + 2*wp + 2 + 8 <= plane` (see `layout`).
            assert!(l.len + 2 * l.wp + 2 <= xc.len() && g.len() >= BLOCK_CO * steps * 8);
            for ky in 0..3 {
                let mut acc = [[f32x8::ZERO; 3]; BLOCK_CO];
                for s in 0..steps {
                    // SAFETY: `s*8 + 8 <= len`, so each gradient row read stays in `g`
                    // (BLOCK_CO rows of `len`), and `s*8 + ky*wp + kx + 8 <= len + 2*wp + 2
                    // <= xc.len()` for ky, kx <= 2, both checked above.
                    unsafe {
                        let xs = xc.as_ptr().add(s * 8 + ky * l.wp);
                        let xv = [
                            xs.cast::<f32x8>().read_unaligned(),
                            xs.add(1).cast::<f32x8>().read_unaligned(),
                            xs.add(2).cast::<f32x8>().read_unaligned(),
                        ];
                        for (j, row) in acc.iter_mut().enumerate() {
                            let gv = g
                                .as_ptr()
                                .add(j * l.len + s * 8)
                                .cast::<f32x8>()
                                .read_unaligned();
                            for (a, xk) in row.iter_mut().zip(xv) {
                                *a = xk.mul_add(gv, *a);
                            }
                        }
                    }
                }
                for (j, row) in acc.iter().enumerate() {
                    let co = cb * BLOCK_CO + j;
                    if co < cout {
                        let out = &mut gw[(co * cin + ci) * 9 + ky * 3..][..3];
                        for (o, a) in out.iter_mut().zip(row) {
                            *o += a.reduce_add();
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
        plane.fill(0.0);
        for r in 0..h {
            let dst = (r + pad.0) * l.wp + pad.1;
            plane[dst..dst + w].copy_from_slice(&x[(ci * h + r) * w..(ci * h + r + 1) * w]);
        }
    }
}
