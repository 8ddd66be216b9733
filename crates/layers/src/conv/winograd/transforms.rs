//! The Winograd F(2x2, 3x3) transforms: weights, input, output, and their adjoints for the
//! backward pass; each hands a [`WinogradTile::F4`] tiling to its F(4x4, 3x3) counterpart in
//! `transforms4`.
//!
//! The output is cut into 2x2 tiles, each reading a 4x4 input tile (tiles overlap by two).
//! With the F(2, 3) matrices of Lavin & Gray, `B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0;
//! 0 1 0 -1]`, `G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]` and `A^T = [1 1 1 0; 0 1 -1 -1]`, a
//! tile's output is `A^T [(G g G^T) ⊙ (B^T d B)] A` for the 3x3 kernel `g` and the 4x4
//! input tile `d`. Summed over input channels the element-wise product
//! becomes, for each of the 16 tile positions, one matrix product over channels:
//! `M[pos] (cout x T) = U[pos] (cout x cin) · V[pos] (cin x T)` for `T` tiles. The
//! backward pass uses the same products transposed: `dV[pos] = U[pos]^T dM[pos]` and
//! `dU[pos] = dM[pos] V[pos]^T`, with `dM = A dY A^T` per tile.
//!
//! Layouts: `U` is `[16][cout][cin]` packed for [`panel_gemm`](crate::conv::panel_gemm()),
//! `V` / `dV` `[16][cin][T]`, `M` / `dM` `[16][cout][T]` with `T` = [`WinogradTiles::columns`],
//! the 16 planes [`winograd_plane`] apart (buffers of [`winograd_len`] elements),
//! tile `t = image * tiles_per_image + ty * tiles_w + tx`. Tiles that run past the output
//! (odd output sizes) compute values that are not stored, and their gradient is zero.

use ember_tensor::simd_fn;

use crate::Pair;
use crate::conv::copy::copy_short;
use crate::conv::epilogue::Epilogue;
use crate::conv::panel_gemm::{PANEL_N, panel_index, panel_len};

use super::transforms4;

/// Tile positions in the transformed domain of F(2x2, 3x3) (4 x 4).
pub const WINOGRAD_POSITIONS: usize = 16;

/// The output tile of a Winograd variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WinogradTile {
    /// F(2x2, 3x3): 2x2 outputs from 4x4 inputs, 16 positions.
    F2,
    /// F(4x4, 3x3): 4x4 outputs from 6x6 inputs, 36 positions.
    F4,
}

impl WinogradTile {
    /// Outputs along each side of a tile.
    pub fn size(self) -> usize {
        match self {
            WinogradTile::F2 => 2,
            WinogradTile::F4 => 4,
        }
    }

    /// Positions of the transformed domain: `(size + 2)^2`.
    pub fn positions(self) -> usize {
        (self.size() + 2) * (self.size() + 2)
    }

    /// Elements of a transformed buffer whose planes hold `len` elements each.
    pub fn buffer_len(self, len: usize) -> usize {
        self.positions() * winograd_plane(len)
    }
}

/// Distance between consecutive positions of a transformed buffer whose planes hold `len`
/// elements: `len` rounded up to 4 KiB plus one cache line, so that the 16 planes a tile
/// writes (or reads) do not all map to the same L1 set (measured: with planes a multiple
/// of 4 KiB apart the transforms took 4x as long).
pub fn winograd_plane(len: usize) -> usize {
    len.div_ceil(1024) * 1024 + 16
}

/// Elements of a transformed buffer of 16 planes of `len` elements each (F(2x2, 3x3); see
/// [`WinogradTile::buffer_len`]).
pub fn winograd_len(len: usize) -> usize {
    WinogradTile::F2.buffer_len(len)
}

/// The tiling of one image: sizes of the input, its output and the tile grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WinogradTiles {
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Zero padding `(ph, pw)`.
    pub pad: Pair,
    /// Output height `h + 2ph - 2`.
    pub ho: usize,
    /// Output width `w + 2pw - 2`.
    pub wo: usize,
    /// Tile rows `ceil(ho / size)`.
    pub th: usize,
    /// Tile columns `ceil(wo / size)`.
    pub tw: usize,
    /// The variant, whose tiles are `size x size` outputs.
    pub tile: WinogradTile,
}

impl WinogradTiles {
    /// The F(2x2, 3x3) tiling of an `h x w` input padded by `pad` (the output must be at
    /// least 1x1: `h + 2ph >= 3` and `w + 2pw >= 3`, else `None`).
    pub fn new(h: usize, w: usize, pad: Pair) -> Option<Self> {
        Self::with_tile(WinogradTile::F2, h, w, pad)
    }

    /// The tiling of an `h x w` input padded by `pad` into `tile`'s tiles (`None` as for
    /// [`WinogradTiles::new`]).
    pub fn with_tile(tile: WinogradTile, h: usize, w: usize, pad: Pair) -> Option<Self> {
        let ho = (h + 2 * pad.0).checked_sub(2).filter(|&v| v > 0)?;
        let wo = (w + 2 * pad.1).checked_sub(2).filter(|&v| v > 0)?;
        let m = tile.size();
        Some(WinogradTiles {
            h,
            w,
            pad,
            ho,
            wo,
            th: ho.div_ceil(m),
            tw: wo.div_ceil(m),
            tile,
        })
    }

    /// Tiles per image.
    pub fn per_image(&self) -> usize {
        self.th * self.tw
    }

    /// Row length `T` of the transformed buffers for `images` images: their tiles rounded
    /// up to an odd multiple of 16 (the product kernel reads blocks of 16 columns from
    /// consecutive rows; rows an even multiple of 64 bytes apart share L1 sets and evicted
    /// each other: measured 30-40% slower). The extra columns are unused.
    pub fn columns(&self, images: usize) -> usize {
        let blocks = (images * self.per_image()).div_ceil(PANEL_N);
        (blocks | 1) * PANEL_N
    }

    /// The row length `T` and plane distance of a transformed buffer of `rows` rows for
    /// `images` images, checking that `len` holds it (panics naming `what` otherwise).
    pub(super) fn planes(
        &self,
        images: usize,
        rows: usize,
        len: usize,
        what: &str,
    ) -> (usize, usize) {
        let stride = self.columns(images);
        assert!(
            len >= self.tile.buffer_len(rows * stride),
            "{what} too short"
        );
        (stride, winograd_plane(rows * stride))
    }

    /// Elements of a transformed buffer of `rows` rows for `images` images.
    pub fn buffer_len(&self, rows: usize, images: usize) -> usize {
        self.tile.buffer_len(rows * self.columns(images))
    }

    /// Width of a padded input row covering every tile: `size * tw + 2`.
    pub(super) fn row_len(&self) -> usize {
        self.tile.size() * self.tw + 2
    }

    /// Scratch elements each transform needs (the largest of them) for `images` images.
    pub fn scratch_len(&self, images: usize) -> usize {
        let (m, per) = (self.tile.size(), self.per_image());
        // The input transform's row and its planes of row-transformed tiles, the output
        // transforms' planes: per image for F(2x2, 3x3) (by row parity), over all images
        // for F(4x4, 3x3) (by tile row).
        let (input, output) = match self.tile {
            WinogradTile::F2 => (8 * (self.th + 1) * self.tw, 12 * per),
            WinogradTile::F4 => (36 * images * per, 40 * images * per),
        };
        let input_grad = (m * self.th + 2) * self.row_len();
        (self.row_len() + input).max(input_grad).max(output)
    }
}

/// `G x` for a 3-vector: the filter transform along one axis.
#[inline(always)]
fn g3(x: [f32; 3]) -> [f32; 4] {
    let s = 0.5 * (x[0] + x[2]);
    [x[0], s + 0.5 * x[1], s - 0.5 * x[1], x[2]]
}

/// `G^T x` for a 4-vector: the adjoint of [`g3`].
#[inline(always)]
fn gt4(x: [f32; 4]) -> [f32; 3] {
    let s = 0.5 * (x[1] + x[2]);
    [x[0] + s, 0.5 * (x[1] - x[2]), s + x[3]]
}

/// `B^T x`: the input transform along one axis.
#[inline(always)]
fn bt4(x: [f32; 4]) -> [f32; 4] {
    [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[1] - x[3]]
}

/// `B x`: the adjoint of [`bt4`].
#[inline(always)]
fn b4(x: [f32; 4]) -> [f32; 4] {
    [x[0], x[1] - x[2] + x[3], x[1] + x[2] - x[0], -x[3]]
}

/// Length of the transformed weights [`winograd_weights`] writes.
pub fn winograd_weights_len(tile: WinogradTile, cout: usize, cin: usize, adjoint: bool) -> usize {
    if adjoint {
        tile.buffer_len(panel_len(cin, cout))
    } else {
        tile.buffer_len(panel_len(cout, cin))
    }
}

/// Transforms an OIHW `[cout, cin, 3, 3]` weight into `U = G g G^T` for `tile`, each
/// position's matrix packed for [`panel_gemm`](crate::conv::panel_gemm()): `cout x cin` for
/// the forward pass, or with `adjoint` its transpose `cin x cout` for the input gradient.
/// Planes [`winograd_plane`] of the packed length apart. Panics if a slice is too short.
pub fn winograd_weights(
    tile: WinogradTile,
    weight: &[f32],
    cout: usize,
    cin: usize,
    adjoint: bool,
    u: &mut [f32],
) {
    let len = cout * cin;
    assert!(
        weight.len() >= len * 9,
        "winograd_weights: weight too short"
    );
    let u_len = winograd_weights_len(tile, cout, cin, adjoint);
    assert!(u.len() >= u_len, "winograd_weights: u too short");
    let (weight, u) = (&weight[..len * 9], &mut u[..u_len]);
    match tile {
        WinogradTile::F2 => weights_with(g3, weight, cout, cin, adjoint, u),
        WinogradTile::F4 => weights_with(transforms4::g6, weight, cout, cin, adjoint, u),
    }
}

/// Adds the weight gradient `G^T dU G` of `du` (`tile`'s positions of `cout x cin`) to the
/// OIHW `gw`. Panics if a slice is too short.
pub fn winograd_weight_grad(
    tile: WinogradTile,
    du: &[f32],
    cout: usize,
    cin: usize,
    gw: &mut [f32],
) {
    let len = cout * cin;
    assert!(
        du.len() >= tile.buffer_len(len),
        "winograd_weight_grad: du too short"
    );
    assert!(gw.len() >= len * 9, "winograd_weight_grad: gw too short");
    let plane = winograd_plane(len);
    match tile {
        WinogradTile::F2 => weight_grad_with(gt4, du, plane, &mut gw[..len * 9]),
        WinogradTile::F4 => weight_grad_with(transforms4::gt6, du, plane, &mut gw[..len * 9]),
    }
}

/// `U = G g G^T` of every kernel of `weight` into `u` (zeroed first: the last panel's
/// padding rows must be zero), laid out as [`winograd_weights`] says, `g_axis` being `G`
/// along one axis (`N` points).
fn weights_with<const N: usize>(
    g_axis: impl Fn([f32; 3]) -> [f32; N],
    weight: &[f32],
    cout: usize,
    cin: usize,
    adjoint: bool,
    u: &mut [f32],
) {
    let (rows, cols) = if adjoint { (cin, cout) } else { (cout, cin) };
    let plane = winograd_plane(panel_len(rows, cols));
    u.fill(0.0);
    for (k, g) in weight.chunks_exact(9).enumerate() {
        let (co, ci) = (k / cin, k % cin);
        let at = if adjoint {
            panel_index(ci, co, cols)
        } else {
            panel_index(co, ci, cols)
        };
        // Columns of G g (N x 3), then rows: (G (G g)^T)^T = G g G^T.
        let gc = [0, 1, 2].map(|c| g_axis([g[c], g[3 + c], g[6 + c]]));
        for i in 0..N {
            let row = g_axis([gc[0][i], gc[1][i], gc[2][i]]);
            for (j, &r) in row.iter().enumerate() {
                u[(i * N + j) * plane + at] = r;
            }
        }
    }
}

/// Adds `G^T dU G` of `du` (`N x N` planes of `plane` elements, one entry per kernel) to
/// the kernels of `gw`, `gt_axis` being `G^T` along one axis.
fn weight_grad_with<const N: usize>(
    gt_axis: impl Fn([f32; N]) -> [f32; 3],
    du: &[f32],
    plane: usize,
    gw: &mut [f32],
) {
    for (k, g) in gw.chunks_exact_mut(9).enumerate() {
        let mut rows = [[0.0f32; 3]; N];
        for (i, row) in rows.iter_mut().enumerate() {
            let mut d = [0.0f32; N];
            for (j, v) in d.iter_mut().enumerate() {
                *v = du[(i * N + j) * plane + k];
            }
            *row = gt_axis(d);
        }
        for c in 0..3 {
            let mut col = [0.0f32; N];
            for (v, row) in col.iter_mut().zip(&rows) {
                *v = row[c];
            }
            for (r, &v) in gt_axis(col).iter().enumerate() {
                g[r * 3 + c] += v;
            }
        }
    }
}

/// `out[f] = op(a[f], b[f])`: the transforms' element-wise steps, over a whole image's
/// tiles at once (contiguous slices, so the compiler vectorises them).
#[inline(always)]
fn zip2(out: &mut [f32], a: &[f32], b: &[f32], op: impl Fn(f32, f32) -> f32) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = op(x, y);
    }
}

/// `out[f] = op(a[f], b[f], c[f])`.
#[inline(always)]
fn zip3(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32], op: impl Fn(f32, f32, f32) -> f32) {
    for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = op(x, y, z);
    }
}

simd_fn! {
    /// Transforms `images` NCHW images `x = [images][cin][h][w]` into `v = [16][cin][T]`,
    /// `T` = [`WinogradTiles::columns`], `B^T d B` per tile. `scratch` holds
    /// [`WinogradTiles::scratch_len`] of `images`. Panics if a slice is too short.
    ///
    /// `B^T` runs along each padded row first (per tile, scalar), into planes split by row
    /// parity; down the columns it is then four element-wise steps over all of an image's
    /// tiles, since a tile's rows `2ty .. 2ty + 3` are rows `ty` and `ty + 1` of the even and
    /// odd planes.
    pub fn winograd_input(
        x: &[f32],
        images: usize,
        cin: usize,
        tiles: &WinogradTiles,
        v: &mut [f32],
        scratch: &mut [f32],
    ) {
        let (h, w, th, tw) = (tiles.h, tiles.w, tiles.th, tiles.tw);
        let per = tiles.per_image();
        assert!(
            x.len() >= images * cin * h * w,
            "winograd_input: x too short"
        );
        assert!(scratch.len() >= tiles.scratch_len(images), "winograd_input: scratch too short");
        if tiles.tile == WinogradTile::F4 {
            return transforms4::input(x, images, cin, tiles, v, scratch);
        }
        let (stride, ps) = tiles.planes(images, cin, v.len(), "winograd_input: v");
        let rl = tiles.row_len();
        let hlen = (th + 1) * tw;
        let (row, hs) = scratch[..rl + 8 * hlen].split_at_mut(rl);
        row.fill(0.0);
        for n in 0..images {
            for ci in 0..cin {
                let xc = &x[(n * cin + ci) * h * w..][..h * w];
                for r in 0..2 * th + 2 {
                    // The row's padding columns stay zero from the fill above.
                    let inner = &mut row[tiles.pad.1..tiles.pad.1 + w];
                    match r.checked_sub(tiles.pad.0).filter(|&y| y < h) {
                        Some(y) => copy_short(inner, &xc[y * w..(y + 1) * w]),
                        None => inner.iter_mut().for_each(|v| *v = 0.0),
                    }
                    let at = (r % 2) * hlen + (r / 2) * tw;
                    for tx in 0..tw {
                        let c = 2 * tx;
                        let t = bt4([row[c], row[c + 1], row[c + 2], row[c + 3]]);
                        for (j, &val) in t.iter().enumerate() {
                            hs[j * 2 * hlen + at + tx] = val;
                        }
                    }
                }
                let base = ci * stride + n * per;
                for j in 0..4 {
                    let (even, odd) = hs[j * 2 * hlen..(j + 1) * 2 * hlen].split_at(hlen);
                    let (e0, e1, o0, o1) = (&even[..per], &even[tw..], &odd[..per], &odd[tw..]);
                    let at = |i: usize| (i * 4 + j) * ps + base;
                    zip2(&mut v[at(0)..][..per], e0, e1, |a, b| a - b);
                    zip2(&mut v[at(1)..][..per], o0, e1, |a, b| a + b);
                    zip2(&mut v[at(2)..][..per], e1, o0, |a, b| a - b);
                    zip2(&mut v[at(3)..][..per], o0, o1, |a, b| a - b);
                }
            }
        }
    }
}

simd_fn! {
    /// Inverse output transform: `y = [images][cout][ho][wo]` from `m = [16][cout][T]`,
    /// `A^T M A` per tile, then the epilogue. `scratch` holds [`WinogradTiles::scratch_len`]
    /// of `images`. Panics if a slice is too short.
    pub fn winograd_output(
        m: &[f32],
        images: usize,
        cout: usize,
        tiles: &WinogradTiles,
        ep: Epilogue<'_>,
        scratch: &mut [f32],
        y: &mut [f32],
    ) {
        let (ho, wo, tw, per) = (tiles.ho, tiles.wo, tiles.tw, tiles.per_image());
        let (stride, ps) = tiles.planes(images, cout, m.len(), "winograd_output: m");
        assert!(
            y.len() >= images * cout * ho * wo,
            "winograd_output: y too short"
        );
        assert!(scratch.len() >= tiles.scratch_len(images), "winograd_output: scratch too short");
        if tiles.tile == WinogradTile::F4 {
            return transforms4::output(m, images, cout, tiles, ep, scratch, y);
        }
        // s[a][j]: A^T down column j (a = 0, 1); then out[a][b] along the rows.
        let (s, out) = scratch[..12 * per].split_at_mut(8 * per);
        for n in 0..images {
            for co in 0..cout {
                let base = co * stride + n * per;
                let e = |p: usize| &m[p * ps + base..][..per];
                for j in 0..4 {
                    let (s0, s1) = s[j * 2 * per..(j + 1) * 2 * per].split_at_mut(per);
                    zip3(s0, e(j), e(4 + j), e(8 + j), |a, b, c| a + b + c);
                    zip3(s1, e(4 + j), e(8 + j), e(12 + j), |a, b, c| a - b - c);
                }
                let sp = |a: usize, j: usize| &s[(j * 2 + a) * per..][..per];
                for a in 0..2 {
                    let (o0, o1) = out[a * 2 * per..(a + 1) * 2 * per].split_at_mut(per);
                    zip3(o0, sp(a, 0), sp(a, 1), sp(a, 2), |p, q, r| p + q + r);
                    zip3(o1, sp(a, 1), sp(a, 2), sp(a, 3), |p, q, r| p - q - r);
                }
                let e = ep.channel(co);
                let yc = &mut y[(n * cout + co) * ho * wo..][..ho * wo];
                let finish = |v: f32| e.apply(v);
                for (oy, yrow) in yc.chunks_exact_mut(wo).enumerate() {
                    // out(a, 0) to the even columns, out(a, 1) to the odd ones.
                    let at = (oy % 2) * 2 * per + (oy / 2) * tw;
                    let (s0, s1) = (&out[at..at + tw], &out[at + per..at + per + tw]);
                    let mut pairs = yrow.chunks_exact_mut(2);
                    for ((pair, &e), &o) in (&mut pairs).zip(s0).zip(s1) {
                        (pair[0], pair[1]) = (finish(e), finish(o));
                    }
                    if let [last] = pairs.into_remainder() {
                        *last = finish(s0[tw - 1]);
                    }
                }
            }
        }
    }
}

simd_fn! {
    /// Transforms the output gradient `gy = [images][cout][ho][wo]` into `dm = [16][cout][T]`,
    /// `A dY A^T` per tile; positions past the output count as zero. `scratch` holds
    /// [`WinogradTiles::scratch_len`] of `images`. Panics if a slice is too short.
    pub fn winograd_grad_output(
        gy: &[f32],
        images: usize,
        cout: usize,
        tiles: &WinogradTiles,
        scratch: &mut [f32],
        dm: &mut [f32],
    ) {
        let (ho, wo, tw, per) = (tiles.ho, tiles.wo, tiles.tw, tiles.per_image());
        assert!(
            gy.len() >= images * cout * ho * wo,
            "winograd_grad_output: gy too short"
        );
        assert!(scratch.len() >= tiles.scratch_len(images), "winograd_grad_output: scratch too short");
        if tiles.tile == WinogradTile::F4 {
            return transforms4::grad_output(gy, images, cout, tiles, scratch, dm);
        }
        let (stride, ps) = tiles.planes(images, cout, dm.len(), "winograd_grad_output: dm");
        // d[a][b]: the tiles' 2x2 gradients by position; q[i][b]: A down the columns.
        let (d, q) = scratch[..12 * per].split_at_mut(4 * per);
        if ho % 2 == 1 || wo % 2 == 1 {
            d.fill(0.0);
        }
        for n in 0..images {
            for co in 0..cout {
                let gc = &gy[(n * cout + co) * ho * wo..][..ho * wo];
                for (oy, grow) in gc.chunks_exact(wo).enumerate() {
                    // Even columns to d(a, 0), odd ones to d(a, 1), a pair per tile.
                    let at = (oy % 2) * 2 * per + (oy / 2) * tw;
                    let (d0, d1) = d[at..].split_at_mut(per);
                    let (d0, d1) = (&mut d0[..tw], &mut d1[..tw]);
                    let pairs = grow.chunks_exact(2);
                    if let [last] = pairs.remainder() {
                        d0[tw - 1] = *last;
                    }
                    for ((e, o), pair) in d0.iter_mut().zip(d1.iter_mut()).zip(pairs) {
                        (*e, *o) = (pair[0], pair[1]);
                    }
                }
                let dp = |a: usize, b: usize| &d[(a * 2 + b) * per..][..per];
                for b in 0..2 {
                    let (q1, rest) = q[b * 3 * per..(b + 1) * 3 * per].split_at_mut(per);
                    let (q2, q3) = rest.split_at_mut(per);
                    zip2(q1, dp(0, b), dp(1, b), |x, y| x + y);
                    zip2(q2, dp(0, b), dp(1, b), |x, y| x - y);
                    zip2(q3, dp(1, b), dp(1, b), |_, y| -y);
                }
                // q(i, b) for i = 1..3; row i = 0 is d(0, b) itself.
                let base = co * stride + n * per;
                for i in 0..4 {
                    let qp = |b: usize| -> &[f32] {
                        if i == 0 {
                            dp(0, b)
                        } else {
                            &q[(b * 3 + i - 1) * per..][..per]
                        }
                    };
                    let (x0, x1) = (qp(0), qp(1));
                    let at = |j: usize| (i * 4 + j) * ps + base;
                    copy_short(&mut dm[at(0)..][..per], x0);
                    zip2(&mut dm[at(1)..][..per], x0, x1, |a, b| a + b);
                    zip2(&mut dm[at(2)..][..per], x0, x1, |a, b| a - b);
                    zip2(&mut dm[at(3)..][..per], x1, x1, |_, b| -b);
                }
            }
        }
    }
}

simd_fn! {
    /// Inverse input transform for the input gradient: `gx = [images][cin][h][w]` (overwritten)
    /// from `dv = [16][cin][T]`, summing `B dV B^T` over the overlapping tiles. `scratch` holds
    /// [`WinogradTiles::scratch_len`] of `images`. Panics if a slice is too short.
    pub fn winograd_input_grad(
        dv: &[f32],
        images: usize,
        cin: usize,
        tiles: &WinogradTiles,
        scratch: &mut [f32],
        gx: &mut [f32],
    ) {
        let (h, w, per) = (tiles.h, tiles.w, tiles.per_image());
        let (stride, ps) = tiles.planes(images, cin, dv.len(), "winograd_input_grad: dv");
        assert!(
            gx.len() >= images * cin * h * w,
            "winograd_input_grad: gx too short"
        );
        assert!(scratch.len() >= tiles.scratch_len(images), "winograd_input_grad: scratch too short");
        if tiles.tile == WinogradTile::F4 {
            return transforms4::input_grad(dv, images, cin, tiles, scratch, gx);
        }
        let rl = tiles.row_len();
        let plane = &mut scratch[..tiles.scratch_len(images)];
        for n in 0..images {
            for ci in 0..cin {
                plane.fill(0.0);
                let tbase = ci * stride + n * per;
                for ty in 0..tiles.th {
                    for tx in 0..tiles.tw {
                        let t = tbase + ty * tiles.tw + tx;
                        let e = |p: usize| dv[p * ps + t];
                        // Not `array::from_fn`: its closure calls were not inlined here.
                        let col = |j: usize| b4([e(j), e(4 + j), e(8 + j), e(12 + j)]);
                        let cols = [col(0), col(1), col(2), col(3)];
                        for a in 0..4 {
                            let out = b4([cols[0][a], cols[1][a], cols[2][a], cols[3][a]]);
                            let dst = &mut plane[(2 * ty + a) * rl + 2 * tx..][..4];
                            for (d, o) in dst.iter_mut().zip(out) {
                                *d += o;
                            }
                        }
                    }
                }
                let gc = &mut gx[(n * cin + ci) * h * w..][..h * w];
                for (y, row) in gc.chunks_exact_mut(w).enumerate() {
                    copy_short(row, &plane[(y + tiles.pad.0) * rl + tiles.pad.1..][..w]);
                }
            }
        }
    }
}
