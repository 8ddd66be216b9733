//! Convolution by Winograd F(2x2, 3x3) or F(4x4, 3x3), for 3x3 stride-1 layers: forward,
//! input gradient and weight gradient as 16 (or 36) matrix products over channels per pass,
//! between the transforms of [`transforms`] (and [`transforms4`]).
//!
//! A pass covers a few images' tiles ([`images_per_pass`]), so its transformed buffers stay
//! in L2. The weight gradient is summed in the transformed domain over a chunk's passes and
//! transformed back once per step ([`finish_weight_grad`]).

#[cfg(test)]
mod tests;
mod transforms;
mod transforms4;

pub use transforms::{
    WINOGRAD_POSITIONS, WinogradTile, WinogradTiles, winograd_grad_output, winograd_input,
    winograd_input_grad, winograd_len, winograd_output, winograd_plane, winograd_weight_grad,
    winograd_weights, winograd_weights_len,
};

use ember_tensor::gemm::{MatMut, MatRef, gemm_serial};
use rayon::prelude::*;

use super::ConvGeometry;
use super::chunk::{BackwardImages, ForwardImages, grow};
use super::panel_gemm::{gemm_nt_acc, pack_transposed, panel_gemm, panel_len, transposed_len};

/// Tiles per pass: the transformed input and output of this many tiles stay within L2 for
/// the channel counts the rule picks Winograd for.
const TILES_PER_PASS: usize = 32;

/// Tiles per pass of F(4x4, 3x3): its 36 planes of weights (or weight-gradient sums) are
/// streamed once per pass, so a pass takes more tiles to amortise them (measured on Zen 5,
/// 1 thread: 64 tiles as fast as 128 or faster on the convbench shapes, 32 and 256 slower).
const TILES_PER_PASS_F4: usize = 64;

/// Largest `cout * cin` for which the weight gradient uses the panel kernel; above it each
/// pass's read-modify-write of the 16 `cout x cin` sums costs more than a general GEMM's
/// packing. Measured with AVX2 (1 thread, CPU time, weight gradient alone): panel 107-148
/// GFLOP/s against 74-134 up to 128 x 128 channels, 121 against 132-139 at 256 x 256
/// (and 81 against 134 at 256 x 256 on 8x8 images). AVX-512's panel tile (12 x 32) keeps
/// ahead at 256 x 256: 106 against 100 on 7x7 images, 137 against 127 on 8x8.
fn wgrad_panel_max() -> usize {
    match ember_tensor::simd::level() {
        ember_tensor::simd::Level::Avx512 => usize::MAX,
        _ => 128 * 128,
    }
}

/// The Winograd workspace of a batch chunk.
#[derive(Default)]
pub(super) struct WinogradScratch {
    /// The transformed input `V` (forward, weight gradient), then `dV` (input gradient).
    input: Vec<f32>,
    /// The transformed output `M` (forward) or output gradient `dM` (backward).
    output: Vec<f32>,
    /// The transforms' own scratch.
    transform: Vec<f32>,
    /// `V` transposed into panels for the weight gradient's products.
    input_t: Vec<f32>,
}

fn tiles(tile: WinogradTile, g: &ConvGeometry) -> WinogradTiles {
    WinogradTiles::with_tile(tile, g.height, g.width, g.padding)
        .expect("the rule checked that Winograd applies")
}

/// Images per pass (at least one).
pub(super) fn images_per_pass(tile: WinogradTile, g: &ConvGeometry) -> usize {
    let per_pass = match tile {
        WinogradTile::F2 => TILES_PER_PASS,
        WinogradTile::F4 => TILES_PER_PASS_F4,
    };
    (per_pass / tiles(tile, g).per_image().max(1)).max(1)
}

/// Transforms `w` (OIHW) for the forward pass into `packed`.
pub(super) fn pack_forward(tile: WinogradTile, g: &ConvGeometry, w: &[f32], packed: &mut Vec<f32>) {
    pack(tile, g, w, false, packed);
}

/// Transforms `w` (OIHW) for the input gradient into `packed`.
pub(super) fn pack_input_grad(
    tile: WinogradTile,
    g: &ConvGeometry,
    w: &[f32],
    packed: &mut Vec<f32>,
) {
    pack(tile, g, w, true, packed);
}

/// [`winograd_weights`] of `w` into `packed`, for the input gradient when `adjoint`.
fn pack(tile: WinogradTile, g: &ConvGeometry, w: &[f32], adjoint: bool, packed: &mut Vec<f32>) {
    let (cout, cin) = (g.out_channels, g.in_channels);
    let len = winograd_weights_len(tile, cout, cin, adjoint);
    winograd_weights(tile, w, cout, cin, adjoint, grow(packed, len));
}

/// Length of a chunk's weight-gradient sums: `dU`, a plane of `cout x cin` per position.
pub(super) fn weight_sum_len(tile: WinogradTile, g: &ConvGeometry) -> usize {
    tile.buffer_len(g.out_channels * g.in_channels)
}

/// Adds the weight gradient `G^T dU G` of the summed `du` to the OIHW `gw`.
pub(super) fn finish_weight_grad(tile: WinogradTile, g: &ConvGeometry, du: &[f32], gw: &mut [f32]) {
    winograd_weight_grad(tile, du, g.out_channels, g.in_channels, gw);
}

/// Runs `f(pos, c_pos)` for the positions of a product, `c_pos` the plane (`plane`
/// elements) of position `pos` in `c`; over threads when `par`.
fn for_positions(
    tile: WinogradTile,
    par: bool,
    c: &mut [f32],
    plane: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let c = &mut c[..tile.positions() * plane];
    if par {
        c.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, cp)| f(p, cp));
    } else {
        c.chunks_mut(plane).enumerate().for_each(|(p, cp)| f(p, cp));
    }
}

/// Forward of the images of `f` into `ys`, `f.weights` from [`pack_forward`].
pub(super) fn forward(
    tile: WinogradTile,
    f: &ForwardImages<'_>,
    ys: &mut [f32],
    s: &mut WinogradScratch,
) {
    let (g, xs, u, ep, par) = (f.g, f.x, f.weights, f.ep, f.par);
    let tiles = tiles(tile, g);
    let (cin, cout) = (g.in_channels, g.out_channels);
    let (in_item, out_item) = (g.in_item(), g.out_item());
    let images = ys.len() / out_item;
    let step = images_per_pass(tile, g);
    for first in (0..images).step_by(step) {
        let n = step.min(images - first);
        let t = tiles.columns(n);
        let v = grow(&mut s.input, tiles.buffer_len(cin, n));
        let scratch = grow(&mut s.transform, tiles.scratch_len(n));
        winograd_input(&xs[first * in_item..], n, cin, &tiles, v, scratch);
        let m = grow(&mut s.output, tiles.buffer_len(cout, n));
        let (pu, pv) = (
            winograd_plane(panel_len(cout, cin)),
            winograd_plane(cin * t),
        );
        let cols = n * tiles.per_image();
        for_positions(tile, par, m, winograd_plane(cout * t), |p, mp| {
            let b = MatRef::new(&v[p * pv..], cin, t, t);
            panel_gemm(&u[p * pu..], b, MatMut::new(mp, cout, cols, t));
        });
        winograd_output(m, n, cout, &tiles, ep, scratch, &mut ys[first * out_item..]);
    }
}

/// Backward of a group of images (at most [`images_per_pass`]): adds their `dU = dM V^T` to
/// `weight_sum` (see [`weight_sum_len`]) and/or writes their input gradient to `gx`, from
/// one transform of the output gradient. `u` is from [`pack_input_grad`] when `gx` is wanted.
pub(super) fn backward(
    tile: WinogradTile,
    b: &BackwardImages<'_>,
    u: &[f32],
    s: &mut WinogradScratch,
    gx: Option<&mut [f32]>,
    weight_sum: Option<&mut [f32]>,
) {
    let (g, n) = (b.g, b.images);
    let tiles = tiles(tile, g);
    let (cin, cout) = (g.in_channels, g.out_channels);
    let (t, cols) = (tiles.columns(n), n * tiles.per_image());
    let dm = grow(&mut s.output, tiles.buffer_len(cout, n));
    let scratch = grow(&mut s.transform, tiles.scratch_len(n));
    winograd_grad_output(b.gy, n, cout, &tiles, scratch, dm);
    let v = grow(&mut s.input, tiles.buffer_len(cin, n));
    let (pm, pv) = (winograd_plane(cout * t), winograd_plane(cin * t));
    if let Some(du) = weight_sum {
        winograd_input(b.x, n, cin, &tiles, v, scratch);
        // dU[pos] += dM[pos] V[pos]^T, summed over this group's tiles.
        let du_plane = winograd_plane(cout * cin);
        if cout * cin > wgrad_panel_max() {
            for_positions(tile, b.par, du, du_plane, |p, du| {
                let dmp = MatRef::new(&dm[p * pm..], cout, cols, t);
                let vp = MatRef::new(&v[p * pv..], cin, cols, t);
                gemm_serial(1.0, dmp, vp.t(), 1.0, MatMut::new(du, cout, cin, cin));
            });
        } else {
            let btl = transposed_len(cin, cols);
            let bt = grow(&mut s.input_t, tile.positions() * btl);
            for (p, btp) in bt.chunks_exact_mut(btl).enumerate() {
                pack_transposed(MatRef::new(&v[p * pv..], cin, cols, t), btp);
            }
            for_positions(tile, b.par, du, du_plane, |p, du| {
                let dmp = MatRef::new(&dm[p * pm..], cout, cols, t);
                gemm_nt_acc(dmp, &bt[p * btl..], MatMut::new(du, cout, cin, cin));
            });
        }
    }
    if let Some(gx) = gx {
        // dV[pos] = U[pos]^T dM[pos] (into V: the weight gradient is done with it).
        let pu = winograd_plane(panel_len(cin, cout));
        for_positions(tile, b.par, v, pv, |p, dvp| {
            let dmp = MatRef::new(&dm[p * pm..], cout, t, t);
            panel_gemm(&u[p * pu..], dmp, MatMut::new(dvp, cin, cols, t));
        });
        winograd_input_grad(v, n, cin, &tiles, scratch, gx);
    }
}
