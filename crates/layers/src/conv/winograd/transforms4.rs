//! The Winograd F(4x4, 3x3) transforms, the counterparts of [`super::transforms`] for 4x4
//! output tiles read from 6x6 input tiles (tiles overlap by two).
//!
//! With the points 0, ±1, ±2 and ∞ (Lavin & Gray), `B^T` is 6x6, `G` 6x3 and `A^T` 4x6
//! (below, one function per matrix and its transpose). The 36 positions need 36 products
//! over channels for 16 outputs, 2.25 multiplications per output where F(2x2, 3x3) needs 4;
//! the price is larger transforms and rounding that grows with the points (the weights are
//! scaled by up to 1/4 and the outputs by up to 8).
//!
//! Layouts are those of F(2x2, 3x3) with 36 planes: `V` `[36][cin][T]`, `M` `[36][cout][T]`,
//! `U` `[36]` packed `cout x cin` (or `cin x cout`), position `i * 6 + j` for row `i` and
//! column `j` of the transformed tile.

use crate::conv::copy::copy_short;
use crate::conv::epilogue::Epilogue;

use super::transforms::WinogradTiles;

/// `B^T x`: the input transform along one axis.
#[inline(always)]
fn bt6(x: [f32; 6]) -> [f32; 6] {
    let (a, b) = (x[4] - 4.0 * x[2], x[3] - 4.0 * x[1]);
    let (c, d) = (x[4] - x[2], 2.0 * (x[3] - x[1]));
    [
        4.0 * x[0] - 5.0 * x[2] + x[4],
        a + b,
        a - b,
        c + d,
        c - d,
        4.0 * x[1] - 5.0 * x[3] + x[5],
    ]
}

/// `B x`: the adjoint of [`bt6`].
#[inline(always)]
fn b6(x: [f32; 6]) -> [f32; 6] {
    [
        4.0 * x[0],
        -4.0 * x[1] + 4.0 * x[2] - 2.0 * x[3] + 2.0 * x[4] + 4.0 * x[5],
        -5.0 * x[0] - 4.0 * x[1] - 4.0 * x[2] - x[3] - x[4],
        x[1] - x[2] + 2.0 * x[3] - 2.0 * x[4] - 5.0 * x[5],
        x[0] + x[1] + x[2] + x[3] + x[4],
        x[5],
    ]
}

/// `A^T x`: the output transform along one axis.
#[inline(always)]
fn at6(x: [f32; 6]) -> [f32; 4] {
    let (p1, m1) = (x[1] + x[2], x[1] - x[2]);
    let (p2, m2) = (x[3] + x[4], x[3] - x[4]);
    [
        x[0] + p1 + p2,
        m1 + 2.0 * m2,
        p1 + 4.0 * p2,
        m1 + 8.0 * m2 + x[5],
    ]
}

/// `A x`: the adjoint of [`at6`].
#[inline(always)]
fn a6(x: [f32; 4]) -> [f32; 6] {
    let (e, o) = (x[0] + x[2], x[1] + x[3]);
    let (e2, o2) = (x[0] + 4.0 * x[2], 2.0 * x[1] + 8.0 * x[3]);
    [x[0], e + o, e - o, e2 + o2, e2 - o2, x[3]]
}

/// `G x`: the filter transform along one axis.
#[inline(always)]
pub(super) fn g6(x: [f32; 3]) -> [f32; 6] {
    let (s, t) = (x[0] + x[2], x[0] / 24.0 + x[2] / 6.0);
    [
        x[0] / 4.0,
        -(s + x[1]) / 6.0,
        -(s - x[1]) / 6.0,
        t + x[1] / 12.0,
        t - x[1] / 12.0,
        x[2],
    ]
}

/// `G^T x`: the adjoint of [`g6`].
#[inline(always)]
pub(super) fn gt6(x: [f32; 6]) -> [f32; 3] {
    let (p, m) = (x[1] + x[2], x[1] - x[2]);
    let (q, n) = (x[3] + x[4], x[3] - x[4]);
    [
        x[0] / 4.0 - p / 6.0 + q / 24.0,
        -m / 6.0 + n / 12.0,
        -p / 6.0 + q / 6.0 + x[5],
    ]
}

/// Lanes of a block of [`planes`]: one AVX-512 vector.
const LANES: usize = 16;

/// `outs[i][f] = op(ins[..][f])[i]` over `len` elements: a transform applied element-wise
/// across whole planes of tiles, a block of [`LANES`] at a time through fixed-size arrays
/// (which the compiler vectorises; indexing the slices element by element kept it scalar).
#[inline(always)]
fn planes<const I: usize, const O: usize>(
    ins: [&[f32]; I],
    mut outs: [&mut [f32]; O],
    len: usize,
    op: impl Fn([f32; I]) -> [f32; O],
) {
    let mut f = 0;
    while f < len {
        let n = LANES.min(len - f);
        let mut x = [[0.0f32; LANES]; I];
        for (xk, ik) in x.iter_mut().zip(&ins) {
            copy_short(&mut xk[..n], &ik[f..f + n]);
        }
        let mut y = [[0.0f32; LANES]; O];
        for l in 0..LANES {
            let r = op(std::array::from_fn(|k| x[k][l]));
            for (yo, v) in y.iter_mut().zip(r) {
                yo[l] = v;
            }
        }
        for (ok, yk) in outs.iter_mut().zip(&y) {
            copy_short(&mut ok[f..f + n], &yk[..n]);
        }
        f += n;
    }
}

/// `N` disjoint slices of `len` elements from `buf`, slice `k` at `at(k)` (the offsets must
/// be increasing and at least `len` apart).
fn disjoint<const N: usize>(
    buf: &mut [f32],
    len: usize,
    at: impl Fn(usize) -> usize,
) -> [&mut [f32]; N] {
    let mut rest = buf;
    let mut pos = 0;
    let mut out: [Option<&mut [f32]>; N] = std::array::from_fn(|_| None);
    for (k, slot) in out.iter_mut().enumerate() {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(at(k) - pos);
        let (head, tail) = tail.split_at_mut(len);
        *slot = Some(head);
        rest = tail;
        pos = at(k) + len;
    }
    out.map(|s| s.expect("filled above"))
}

/// See [`winograd_input`](super::winograd_input): `B^T` along each padded row per tile
/// (scalar) into a plane per tile column `j` and tile row `k` (input row `4 ty + k` of tile
/// row `ty`), then down the columns element-wise over the tiles of all `images` at once, so
/// that small images (four tiles on 7x7) still fill the vectors.
#[inline(always)]
pub(super) fn input(
    x: &[f32],
    images: usize,
    cin: usize,
    tiles: &WinogradTiles,
    v: &mut [f32],
    scratch: &mut [f32],
) {
    let (h, w, th, tw) = (tiles.h, tiles.w, tiles.th, tiles.tw);
    let per = tiles.per_image();
    let (stride, ps) = tiles.planes(images, cin, v.len(), "winograd_input: v");
    let cols = images * per;
    let rl = tiles.row_len();
    let (row, hs) = scratch[..rl + 36 * cols].split_at_mut(rl);
    row.fill(0.0);
    for ci in 0..cin {
        for n in 0..images {
            let xc = &x[(n * cin + ci) * h * w..][..h * w];
            for r in 0..4 * th + 2 {
                let inner = &mut row[tiles.pad.1..tiles.pad.1 + w];
                match r.checked_sub(tiles.pad.0).filter(|&y| y < h) {
                    Some(y) => copy_short(inner, &xc[y * w..(y + 1) * w]),
                    None => inner.iter_mut().for_each(|v| *v = 0.0),
                }
                // Row r is row k = r % 4 of tile row r / 4 and, for k < 2, row k + 4 of
                // the tile row above.
                let below = (r / 4 < th).then_some((r % 4, r / 4));
                let above = (r % 4 < 2 && r >= 4).then(|| (r % 4 + 4, r / 4 - 1));
                for tx in 0..tw {
                    let t = bt6(std::array::from_fn(|i| row[4 * tx + i]));
                    for (k, ty) in [below, above].into_iter().flatten() {
                        let at = k * cols + n * per + ty * tw + tx;
                        for (j, &val) in t.iter().enumerate() {
                            hs[j * 6 * cols + at] = val;
                        }
                    }
                }
            }
        }
        for j in 0..6 {
            let hj = &hs[j * 6 * cols..(j + 1) * 6 * cols];
            let src: [&[f32]; 6] = std::array::from_fn(|k| &hj[k * cols..]);
            let dst = disjoint::<6>(&mut v[ci * stride + j * ps..], cols, |i| i * 6 * ps);
            planes(src, dst, cols, bt6);
        }
    }
}

/// See [`winograd_output`](super::winograd_output): `A^T` down the columns, then along the
/// rows, element-wise over the tiles of all `images`, then each tile's 4x4 outputs to their
/// rows.
#[inline(always)]
pub(super) fn output(
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
    let cols = images * per;
    // s[j][a]: A^T down column j; out[a][b]: then along row a.
    let (s, out) = scratch[..40 * cols].split_at_mut(24 * cols);
    for co in 0..cout {
        let base = co * stride;
        for j in 0..6 {
            let src: [&[f32]; 6] = std::array::from_fn(|i| &m[(i * 6 + j) * ps + base..]);
            let dst = disjoint::<4>(&mut s[j * 4 * cols..], cols, |a| a * cols);
            planes(src, dst, cols, at6);
        }
        for a in 0..4 {
            let src: [&[f32]; 6] = std::array::from_fn(|j| &s[(j * 4 + a) * cols..]);
            let dst = disjoint::<4>(&mut out[a * 4 * cols..], cols, |b| b * cols);
            planes(src, dst, cols, at6);
        }
        let e = ep.channel(co);
        for n in 0..images {
            let yc = &mut y[(n * cout + co) * ho * wo..][..ho * wo];
            for (oy, yrow) in yc.chunks_exact_mut(wo).enumerate() {
                let at = (oy % 4) * 4 * cols + n * per + (oy / 4) * tw;
                let o: [&[f32]; 4] = std::array::from_fn(|b| &out[at + b * cols..][..tw]);
                let mut quads = yrow.chunks_exact_mut(4);
                for (tx, quad) in (&mut quads).enumerate() {
                    for (b, q) in quad.iter_mut().enumerate() {
                        *q = e.apply(o[b][tx]);
                    }
                }
                let tx = wo / 4;
                for (b, q) in quads.into_remainder().iter_mut().enumerate() {
                    *q = e.apply(o[b][tx]);
                }
            }
        }
    }
}

/// See [`winograd_grad_output`](super::winograd_grad_output): each tile's 4x4 gradients to
/// planes by position, then `A` down the columns and along the rows element-wise over the
/// tiles of all `images`.
#[inline(always)]
pub(super) fn grad_output(
    gy: &[f32],
    images: usize,
    cout: usize,
    tiles: &WinogradTiles,
    scratch: &mut [f32],
    dm: &mut [f32],
) {
    let (ho, wo, tw, per) = (tiles.ho, tiles.wo, tiles.tw, tiles.per_image());
    let (stride, ps) = tiles.planes(images, cout, dm.len(), "winograd_grad_output: dm");
    let cols = images * per;
    // d[a][b]: the tiles' gradients by position; q[b][i]: A down column b.
    let (d, q) = scratch[..40 * cols].split_at_mut(16 * cols);
    if ho % 4 != 0 || wo % 4 != 0 {
        d.fill(0.0);
    }
    for co in 0..cout {
        for n in 0..images {
            let gc = &gy[(n * cout + co) * ho * wo..][..ho * wo];
            for (oy, grow) in gc.chunks_exact(wo).enumerate() {
                let at = (oy % 4) * 4 * cols + n * per + (oy / 4) * tw;
                let (d0, rest) = d[at..].split_at_mut(cols);
                let (d1, rest) = rest.split_at_mut(cols);
                let (d2, d3) = rest.split_at_mut(cols);
                let mut dst = [&mut d0[..tw], &mut d1[..tw], &mut d2[..tw], &mut d3[..tw]];
                let mut quads = grow.chunks_exact(4);
                for (tx, quad) in (&mut quads).enumerate() {
                    for (db, &g) in dst.iter_mut().zip(quad) {
                        db[tx] = g;
                    }
                }
                for (db, &g) in dst.iter_mut().zip(quads.remainder()) {
                    db[wo / 4] = g;
                }
            }
        }
        for b in 0..4 {
            let src: [&[f32]; 4] = std::array::from_fn(|a| &d[(a * 4 + b) * cols..]);
            let dst = disjoint::<6>(&mut q[b * 6 * cols..], cols, |i| i * cols);
            planes(src, dst, cols, a6);
        }
        let base = co * stride;
        for i in 0..6 {
            let src: [&[f32]; 4] = std::array::from_fn(|b| &q[(b * 6 + i) * cols..]);
            let dst = disjoint::<6>(&mut dm[base + i * 6 * ps..], cols, |j| j * ps);
            planes(src, dst, cols, a6);
        }
    }
}

/// See [`winograd_input_grad`](super::winograd_input_grad): `B dV B^T` per tile, summed
/// into a padded plane over the overlapping tiles.
#[inline(always)]
pub(super) fn input_grad(
    dv: &[f32],
    images: usize,
    cin: usize,
    tiles: &WinogradTiles,
    scratch: &mut [f32],
    gx: &mut [f32],
) {
    let (h, w, per) = (tiles.h, tiles.w, tiles.per_image());
    let (stride, ps) = tiles.planes(images, cin, dv.len(), "winograd_input_grad: dv");
    let rl = tiles.row_len();
    let plane = &mut scratch[..(4 * tiles.th + 2) * rl];
    for n in 0..images {
        for ci in 0..cin {
            plane.fill(0.0);
            let tbase = ci * stride + n * per;
            for ty in 0..tiles.th {
                for tx in 0..tiles.tw {
                    let t = tbase + ty * tiles.tw + tx;
                    let e = |p: usize| dv[p * ps + t];
                    let cols: [[f32; 6]; 6] =
                        std::array::from_fn(|j| b6(std::array::from_fn(|i| e(i * 6 + j))));
                    for a in 0..6 {
                        let out = b6(std::array::from_fn(|j| cols[j][a]));
                        let dst = &mut plane[(4 * ty + a) * rl + 4 * tx..][..6];
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1-D transforms reproduce the Lavin & Gray matrices: `A^T [(G g) ⊙ (B^T d)]` is the
    /// valid correlation of `d` (6) with `g` (3), and each pair is adjoint.
    #[test]
    fn one_dimensional_f4_is_correlation() {
        let d = [0.3f32, -1.2, 2.5, 0.7, -0.4, 1.9];
        let g = [0.5f32, -1.5, 2.0];
        let (u, v) = (g6(g), bt6(d));
        let y = at6(std::array::from_fn(|k| u[k] * v[k]));
        for (o, &yo) in y.iter().enumerate() {
            let want: f32 = (0..3).map(|k| d[o + k] * g[k]).sum();
            assert!((yo - want).abs() < 1e-5, "output {o}: {yo} against {want}");
        }
        let dot = |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
        let x6 = [1.1f32, -0.2, 0.9, -2.3, 0.4, 1.7];
        let x4 = [0.8f32, -1.1, 0.3, 2.2];
        assert!((dot(&bt6(d), &x6) - dot(&d, &b6(x6))).abs() < 1e-4);
        assert!((dot(&at6(x6), &x4) - dot(&x6, &a6(x4))).abs() < 1e-4);
        assert!((dot(&g6(g), &x6) - dot(&g, &gt6(x6))).abs() < 1e-4);
    }
}
