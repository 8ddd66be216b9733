//! `C = A B` for the Winograd products, with `A` packed once into panels of [`PANEL_M`]
//! rows and `B` used as stored (its rows are the transforms' output, already contiguous).
//!
//! A general GEMM packs both operands on every call; for the 16 small products of a
//! Winograd pass that packing cost about a third of the multiply. Here the transformed
//! weights are written in panel order when they are made, and `B`'s rows are read
//! directly. The register tile depends on the level: 6 rows x 16 columns (two 8-lane
//! vectors, 12 accumulators: 2 loads and 6 broadcasts per 12 FMAs) for AVX2 and the portable
//! path; 12 rows (two panels) x 32 columns (two 16-lane vectors, 24 of the 32 registers) for
//! AVX-512. The packed layouts are the same at every level.

use ember_tensor::gemm::{MatMut, MatRef};
use ember_tensor::simd::Simd;
use ember_tensor::simd_dispatch;

/// Rows of `A` per panel.
pub const PANEL_M: usize = 6;
/// Columns per block of `B` (and rows per panel of a packed transpose); `B`'s row lengths
/// are multiples of it.
pub const PANEL_N: usize = 16;

/// Length of `A` packed for [`panel_gemm`]: `ceil(m / PANEL_M) * k * PANEL_M`.
pub fn panel_len(m: usize, k: usize) -> usize {
    m.div_ceil(PANEL_M) * k * PANEL_M
}

/// Index in the packed `A` of element `(row, col)` of an `m x k` matrix with `k` columns:
/// panels `[m / PANEL_M][k][PANEL_M]` (rows past `m` in the last panel are zero).
#[inline(always)]
pub fn panel_index(row: usize, col: usize, k: usize) -> usize {
    ((row / PANEL_M) * k + col) * PANEL_M + row % PANEL_M
}

/// `C = A B`: `a` the `m x k` matrix packed into panels (see [`panel_index`]; the padding
/// rows zero), `b` the `k x n'` matrix read in blocks of [`PANEL_N`] columns, `c` the `m x n`
/// result (overwritten; only its `n` columns are written). `n'` is `n` rounded up to a
/// multiple of [`PANEL_N`]: `b`'s columns past `n` may hold anything, they only reach columns
/// of `C` that are not stored. Panics if the sizes disagree or `b` is transposed.
pub fn panel_gemm(a: &[f32], b: MatRef<'_>, c: MatMut<'_>) {
    simd_dispatch!(s => panel_gemm_in(s, a, b, c));
}

/// [`panel_gemm`] with the instructions of `s` (inline it into a dispatched kernel).
#[inline(always)]
pub(super) fn panel_gemm_in<S: Simd>(s: S, a: &[f32], b: MatRef<'_>, mut c: MatMut<'_>) {
    let (m, n, k) = (c.rows(), c.cols(), b.rows());
    let np = n.div_ceil(PANEL_N) * PANEL_N;
    assert!(a.len() >= panel_len(m, k), "panel_gemm: a too short");
    assert!(
        b.cols() >= np && b.col_stride() == 1,
        "panel_gemm: b has {} columns, needs {np} as stored",
        b.cols()
    );
    let (bs, ldb) = (b.as_slice(), b.row_stride());
    let panels = m.div_ceil(PANEL_M);
    let panel = |p: usize| &a[(p * k * PANEL_M).min(a.len())..];
    // Row r of a tile is every PANEL_M-th element of its panel from offset r % PANEL_M.
    let rows = |p: usize, r: usize| {
        let pr = panel(p + r / PANEL_M);
        &pr[(r % PANEL_M).min(pr.len())..]
    };
    let wide = S::LANES == 16;
    let block = 2 * S::LANES;
    for j0 in (0..n).step_by(block) {
        let bcol = |v: usize| bs.get(j0 + v * S::LANES..).unwrap_or(&[]);
        let two = n - j0 > S::LANES;
        let mut p = 0;
        // The tile of R rows from panel p times the column blocks `$b`, stored into C.
        macro_rules! tile_into_c {
            ($r:literal, $nb:literal, $b:expr) => {{
                let tile_rows = std::array::from_fn(|r| rows(p, r));
                let acc = tile::<S, $r, $nb>(s, tile_rows, PANEL_M, $b, ldb, k);
                store(s, &acc, p * PANEL_M, j0, &mut c, false);
            }};
        }
        while p < panels {
            // Two panels per tile where the level has the registers for them.
            if wide && p + 1 < panels {
                if two {
                    tile_into_c!(12, 2, [bcol(0), bcol(1)]);
                } else {
                    tile_into_c!(12, 1, [bcol(0)]);
                }
                p += 2;
            } else {
                if two {
                    tile_into_c!(6, 2, [bcol(0), bcol(1)]);
                } else {
                    tile_into_c!(6, 1, [bcol(0)]);
                }
                p += 1;
            }
        }
    }
}

/// Length of `B` packed by [`pack_transposed`]: `ceil(n / PANEL_N) * k * PANEL_N`.
pub fn transposed_len(n: usize, k: usize) -> usize {
    n.div_ceil(PANEL_N) * k * PANEL_N
}

/// Packs the transpose of the `n x k` matrix `src` for [`gemm_nt_acc`]: panels of
/// [`PANEL_N`] of its rows, `dst[(p*k + kk)*PANEL_N + r] = src[p*PANEL_N + r][kk]`, zero past
/// row `n`. Eight-by-eight blocks go through registers. Panics if `dst` is too short or
/// `src` is transposed.
pub fn pack_transposed(src: MatRef<'_>, dst: &mut [f32]) {
    simd_dispatch!(s => pack_transposed_in(s, src, dst));
}

/// [`pack_transposed`] with the instructions of `s`.
#[inline(always)]
pub(super) fn pack_transposed_in<S: Simd>(s: S, src: MatRef<'_>, dst: &mut [f32]) {
    const ZEROS: [f32; 8] = [0.0; 8];
    let (n, k, lds) = (src.rows(), src.cols(), src.row_stride());
    assert!(
        src.col_stride() == 1,
        "pack_transposed: src must be stored by rows"
    );
    let src = src.as_slice();
    let dst = &mut dst[..transposed_len(n, k)];
    if k == 0 {
        return;
    }
    let k8 = k / 8 * 8;
    for (p, panel) in dst.chunks_exact_mut(k * PANEL_N).enumerate() {
        for half in 0..PANEL_N / 8 {
            let r0 = p * PANEL_N + half * 8;
            let row = |r: usize| (r0 + r < n).then(|| &src[(r0 + r) * lds..][..k]);
            let rows: [Option<&[f32]>; 8] = std::array::from_fn(row);
            for kk in (0..k8).step_by(8) {
                let block = rows.map(|r| r.map_or(&ZEROS[..], |r| &r[kk..kk + 8]));
                s.transpose_8x8(block, &mut panel[kk * PANEL_N + half * 8..], PANEL_N);
            }
            for kk in k8..k {
                for (r, row) in rows.iter().enumerate() {
                    panel[kk * PANEL_N + half * 8 + r] = row.map_or(0.0, |row| row[kk]);
                }
            }
        }
    }
}

/// `C += A B^T`: `a` the `m x k` matrix, `bt` the transpose of the `n x k` matrix `B`
/// packed by [`pack_transposed`], `c` the `m x n` result (only its `n` columns are touched).
/// Panics if the sizes disagree.
pub fn gemm_nt_acc(a: MatRef<'_>, bt: &[f32], c: MatMut<'_>) {
    simd_dispatch!(s => gemm_nt_acc_in(s, a, bt, c));
}

/// [`gemm_nt_acc`] with the instructions of `s`.
#[inline(always)]
pub(super) fn gemm_nt_acc_in<S: Simd>(s: S, a: MatRef<'_>, bt: &[f32], mut c: MatMut<'_>) {
    let (m, n, k) = (c.rows(), c.cols(), a.cols());
    assert!(
        a.rows() == m && a.col_stride() == 1,
        "gemm_nt_acc: a must be {m} rows stored by rows"
    );
    assert!(
        bt.len() >= transposed_len(n, k),
        "gemm_nt_acc: bt too short"
    );
    let (a, lda) = (a.as_slice(), a.row_stride());
    if k == 0 || m == 0 {
        return;
    }
    let bt = &bt[..transposed_len(n, k)];
    let panel_len = k * PANEL_N;
    // Vector v of a tile's columns: within one panel of 16 (8 lanes), or one panel each (16).
    let bcol = |j0: usize, v: usize| {
        let col = j0 + v * S::LANES;
        &bt[(col / PANEL_N * panel_len + col % PANEL_N).min(bt.len())..]
    };
    // Rows past m repeat the last row; their sums are not stored.
    let rows = |i0: usize, r: usize| &a[(i0 + r).min(m - 1) * lda..];
    let rows_per_tile = if S::LANES == 16 { 12 } else { PANEL_M };
    for j0 in (0..n).step_by(2 * S::LANES) {
        let two = n - j0 > S::LANES;
        for i0 in (0..m).step_by(rows_per_tile) {
            // The tile of R rows from row i0 times the column blocks `$b`, added to C.
            macro_rules! tile_into_c {
                ($r:literal, $nb:literal, $b:expr) => {{
                    let tile_rows = std::array::from_fn(|r| rows(i0, r));
                    let acc = tile::<S, $r, $nb>(s, tile_rows, 1, $b, PANEL_N, k);
                    store(s, &acc, i0, j0, &mut c, true);
                }};
            }
            if S::LANES == 16 {
                if two {
                    tile_into_c!(12, 2, [bcol(j0, 0), bcol(j0, 1)]);
                } else {
                    tile_into_c!(12, 1, [bcol(j0, 0)]);
                }
            } else if two {
                tile_into_c!(6, 2, [bcol(j0, 0), bcol(j0, 1)]);
            } else {
                tile_into_c!(6, 1, [bcol(j0, 0)]);
            }
        }
    }
}

/// Writes (or with `add`, adds) the rows and columns of the tile at `(i0, j0)` that lie in
/// `c`.
#[inline(always)]
fn store<S: Simd, const M: usize, const NV: usize>(
    s: S,
    acc: &[[S::V; NV]; M],
    i0: usize,
    j0: usize,
    c: &mut MatMut<'_>,
    add: bool,
) {
    let (m, n) = (c.rows(), c.cols());
    let rows = m.saturating_sub(i0).min(M);
    for (r, row) in acc.iter().enumerate().take(rows) {
        let dst = c.row_mut(i0 + r);
        for (v, &val) in row.iter().enumerate() {
            let col = j0 + v * S::LANES;
            if col >= n {
                break;
            }
            let d = &mut dst[col..n.min(col + S::LANES)];
            if d.len() == S::LANES {
                let out = if add { s.add(val, s.load(d)) } else { val };
                s.store(d, out);
            } else {
                let out = if add {
                    s.add(val, s.load_partial(d))
                } else {
                    val
                };
                s.store_partial(d, out);
            }
        }
    }
}

/// One register tile: `M` rows of `A` times `NV` vectors of columns of `B`, over `k`.
/// Element `kk` of row `r` of `A` is `rows[r][kk * a_step]`; vector `v` of row `kk` of `B`
/// starts at `bcols[v][kk * ldb]`.
#[inline(always)]
fn tile<S: Simd, const M: usize, const NV: usize>(
    s: S,
    rows: [&[f32]; M],
    a_step: usize,
    bcols: [&[f32]; NV],
    ldb: usize,
    k: usize,
) -> [[S::V; NV]; M] {
    let mut acc = [[s.zero(); NV]; M];
    if k == 0 {
        return acc;
    }
    assert!(
        rows.iter().all(|r| r.len() > (k - 1) * a_step)
            && bcols.iter().all(|b| b.len() >= (k - 1) * ldb + S::LANES),
        "panel kernels: tile reads past its operands"
    );
    let ap = rows.map(|r| r.as_ptr());
    let bp = bcols.map(|b| b.as_ptr());
    for kk in 0..k {
        // SAFETY: the assert above bounds every read: `rows[r][kk * a_step]` with
        // `kk <= k - 1`, and `bcols[v][kk*ldb .. kk*ldb + LANES]`.
        unsafe {
            // Plain loops, not `map`: a closure call may stay out of line in here.
            let mut bv = [s.zero(); NV];
            for (v, &b) in bv.iter_mut().zip(&bp) {
                *v = s.load_ptr(b.add(kk * ldb));
            }
            for (row, a) in acc.iter_mut().zip(ap) {
                let av = s.splat(*a.add(kk * a_step));
                for (c, b) in row.iter_mut().zip(bv) {
                    *c = s.mul_add(av, b, *c);
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_tensor::simd::{Level, with_level};
    use proptest::prelude::*;

    /// Plain loops: the reference the kernel is checked against.
    fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], ldb: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|l| a[i * k + l] as f64 * b[l * ldb + j] as f64)
                    .sum();
            }
        }
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Odd sizes in every dimension (row and column tails), extra row length in B and C,
        /// NaN in B's columns past n (must not reach the stored C), at every level.
        #[test]
        fn matches_reference(m in 1usize..=30, n in 1usize..=72, k in 0usize..=30,
                             extra_b in 0usize..=2, extra_c in 0usize..=3, seed in any::<u64>()) {
            let mut rng = ember_tensor::Rng::new(seed);
            let ldb = n.div_ceil(PANEL_N) * PANEL_N + extra_b * PANEL_N;
            let ldc = n + extra_c;
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let mut b: Vec<f32> = (0..k * ldb).map(|_| rng.normal()).collect();
            for l in 0..k {
                b[l * ldb + n..(l + 1) * ldb].fill(f32::NAN);
            }
            let mut packed = vec![f32::NAN; panel_len(m, k)];
            for p in 0..m.div_ceil(PANEL_M) {
                for l in 0..k {
                    for r in 0..PANEL_M {
                        let row = p * PANEL_M + r;
                        packed[panel_index(row, l, k)] = if row < m { a[row * k + l] } else { 0.0 };
                    }
                }
            }
            let want = reference(m, n, k, &a, &b, ldb);
            for level in Level::available() {
                let mut c = vec![-7.0f32; m * ldc];
                with_level(level, || panel_gemm(&packed, MatRef::new(&b, k, ldb, ldb), MatMut::new(&mut c, m, n, ldc)));
                for i in 0..m {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        if j < n {
                            let w = want[i * n + j];
                            prop_assert!((got as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()) * (k as f64).sqrt().max(1.0),
                                         "{level}: c[{i}][{j}] = {got}, want {w}");
                        } else {
                            prop_assert!(got == -7.0, "{level}: c[{i}][{j}] past n was written");
                        }
                    }
                }
            }
        }

        /// `C += A B^T` through `pack_transposed`: odd sizes (row, column and 8-block tails),
        /// row lengths longer than the rows, accumulation onto what C held, columns of C
        /// past n untouched, at every level.
        #[test]
        fn transposed_product_matches_reference(m in 1usize..=27, n in 1usize..=70, k in 0usize..=29,
                                                extra in 0usize..=3, seed in any::<u64>()) {
            let mut rng = ember_tensor::Rng::new(seed);
            let (lda, ldb, ldc) = (k + extra, k + 2 * extra, n + extra);
            let a: Vec<f32> = (0..m * lda).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..n * ldb).map(|_| rng.normal()).collect();
            let c0: Vec<f32> = (0..m * ldc).map(|_| rng.normal()).collect();
            for level in Level::available() {
                let mut bt = vec![f32::NAN; transposed_len(n, k)];
                let mut c = c0.clone();
                with_level(level, || {
                    pack_transposed(MatRef::new(&b, n, k, ldb), &mut bt);
                    gemm_nt_acc(MatRef::new(&a, m, k, lda), &bt, MatMut::new(&mut c, m, n, ldc));
                });
                for i in 0..m {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        if j < n {
                            let w = c0[i * ldc + j] as f64
                                + (0..k).map(|l| a[i * lda + l] as f64 * b[j * ldb + l] as f64).sum::<f64>();
                            prop_assert!((got as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()) * (k as f64).sqrt().max(1.0),
                                         "{level}: c[{i}][{j}] = {got}, want {w}");
                        } else {
                            prop_assert!(got == c0[i * ldc + j], "{level}: c[{i}][{j}] past n was written");
                        }
                    }
                }
            }
        }
    }
}
