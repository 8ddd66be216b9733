//! `C = A B` for the Winograd products, with `A` packed once into panels of [`PANEL_M`]
//! rows and `B` used as stored (its rows are the transforms' output, already contiguous).
//!
//! A general GEMM packs both operands on every call; for the 16 small products of a
//! Winograd pass that packing cost about a third of the multiply. Here the transformed
//! weights are written in panel order when they are made, and `B`'s rows are read
//! directly, 16 columns (two `f32x8`) at a time. The register tile is [`PANEL_M`] rows x
//! 16 columns: 12 accumulators, and each step of `k` does 2 loads and 6 broadcasts for
//! 12 FMAs.

use ember_tensor::gemm::{MatMut, MatRef};
use wide::f32x8;

use super::direct::copy_short;

/// Rows of `A` per panel (and of `C` per register tile).
pub const PANEL_M: usize = 6;
/// Columns of `C` per register tile; `B`'s and `C`'s row lengths are multiples of it.
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
pub fn panel_gemm(a: &[f32], b: MatRef<'_>, mut c: MatMut<'_>) {
    let (m, n, k) = (c.rows(), c.cols(), b.rows());
    let np = n.div_ceil(PANEL_N) * PANEL_N;
    assert!(a.len() >= panel_len(m, k), "panel_gemm: a too short");
    assert!(
        b.cols() >= np && b.col_stride() == 1,
        "panel_gemm: b has {} columns, needs {np} as stored",
        b.cols()
    );
    let (bs, ldb) = (b.as_slice(), b.row_stride());
    for j0 in (0..n).step_by(PANEL_N) {
        for p in 0..m.div_ceil(PANEL_M) {
            let panel = &a[p * k * PANEL_M..(p + 1) * k * PANEL_M];
            // Row r of the panel is every PANEL_M-th element from offset r.
            let rows = std::array::from_fn(|r| &panel[r.min(panel.len())..]);
            let acc = tile(rows, PANEL_M, bs.get(j0..).unwrap_or(&[]), ldb, k);
            store(&acc, p, j0, &mut c, false);
        }
    }
}

/// Length of `B` packed by [`pack_transposed`]: `ceil(n / PANEL_N) * k * PANEL_N`.
pub fn transposed_len(n: usize, k: usize) -> usize {
    n.div_ceil(PANEL_N) * k * PANEL_N
}

/// Packs the transpose of the `n x k` matrix `src` for [`gemm_nt_acc`]: panels of
/// [`PANEL_N`] of its rows, `dst[(p*k + kk)*PANEL_N + r] = src[p*PANEL_N + r][kk]`, zero past
/// row `n`. Eight-by-eight blocks go through registers ([`f32x8::transpose`]). Panics if
/// `dst` is too short or `src` is transposed.
pub fn pack_transposed(src: MatRef<'_>, dst: &mut [f32]) {
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
                let block = rows.map(|r| {
                    r.map_or(f32x8::ZERO, |r| {
                        f32x8::from(<[f32; 8]>::try_from(&r[kk..kk + 8]).expect("8"))
                    })
                });
                for (j, v) in f32x8::transpose(block).iter().enumerate() {
                    let at = (kk + j) * PANEL_N + half * 8;
                    panel[at..at + 8].copy_from_slice(&v.to_array());
                }
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
pub fn gemm_nt_acc(a: MatRef<'_>, bt: &[f32], mut c: MatMut<'_>) {
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
    if k == 0 {
        return;
    }
    for (jp, panel) in bt[..transposed_len(n, k)]
        .chunks_exact(k * PANEL_N)
        .enumerate()
    {
        for p in 0..m.div_ceil(PANEL_M) {
            // Rows past m repeat the last row; their sums are not stored.
            let rows = std::array::from_fn(|r| &a[(p * PANEL_M + r).min(m - 1) * lda..]);
            let acc = tile(rows, 1, panel, PANEL_N, k);
            store(&acc, p, jp * PANEL_N, &mut c, true);
        }
    }
}

/// Writes (or with `add`, adds) the valid rows and columns of the tile of row panel `p`
/// and columns `j0 ..` into `c`.
#[inline(always)]
fn store(acc: &[[f32x8; 2]; PANEL_M], p: usize, j0: usize, c: &mut MatMut<'_>, add: bool) {
    let (m, n) = (c.rows(), c.cols());
    let (rows, cols) = ((m - p * PANEL_M).min(PANEL_M), (n - j0).min(PANEL_N));
    for (r, row) in acc.iter().enumerate().take(rows) {
        let dst = &mut c.row_mut(p * PANEL_M + r)[j0..j0 + cols];
        let mut vals = [row[0].to_array(), row[1].to_array()];
        if add {
            for (v, d) in vals.as_flattened_mut().iter_mut().zip(dst.iter()) {
                *v += d;
            }
        }
        if let Ok(full) = <&mut [f32; PANEL_N]>::try_from(&mut *dst) {
            full[..8].copy_from_slice(&vals[0]);
            full[8..].copy_from_slice(&vals[1]);
        } else {
            copy_short(dst, &vals.as_flattened()[..cols]);
        }
    }
}

/// One register tile: `PANEL_M` rows of `A` times 16 columns of `b`. Element `kk` of row
/// `r` of `A` is `rows[r][kk * step]`.
#[inline(always)]
fn tile(
    rows: [&[f32]; PANEL_M],
    step: usize,
    b: &[f32],
    ldb: usize,
    k: usize,
) -> [[f32x8; 2]; PANEL_M] {
    let mut acc = [[f32x8::ZERO; 2]; PANEL_M];
    if k == 0 {
        return acc;
    }
    assert!(
        rows.iter().all(|r| r.len() > (k - 1) * step) && b.len() >= (k - 1) * ldb + PANEL_N,
        "panel kernels: tile reads past its operands"
    );
    let ap = rows.map(|r| r.as_ptr());
    let bp = b.as_ptr();
    for kk in 0..k {
        // SAFETY: the assert above bounds every read: `rows[r][kk * step]` with
        // `kk <= k - 1`, and `b[kk*ldb .. kk*ldb + 16]`. read_unaligned allows any alignment.
        unsafe {
            let bv = [
                bp.add(kk * ldb).cast::<f32x8>().read_unaligned(),
                bp.add(kk * ldb + 8).cast::<f32x8>().read_unaligned(),
            ];
            for (row, a) in acc.iter_mut().zip(ap) {
                let av = f32x8::splat(*a.add(kk * step));
                row[0] = av.mul_add(bv[0], row[0]);
                row[1] = av.mul_add(bv[1], row[1]);
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
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
        /// NaN in B's columns past n (must not reach the stored C).
        #[test]
        fn matches_reference(m in 1usize..=20, n in 1usize..=40, k in 0usize..=30,
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
            let mut c = vec![-7.0f32; m * ldc];
            panel_gemm(&packed, MatRef::new(&b, k, ldb, ldb), MatMut::new(&mut c, m, n, ldc));
            let want = reference(m, n, k, &a, &b, ldb);
            for i in 0..m {
                for j in 0..ldc {
                    let got = c[i * ldc + j];
                    if j < n {
                        let w = want[i * n + j];
                        prop_assert!((got as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()) * (k as f64).sqrt().max(1.0),
                                     "c[{i}][{j}] = {got}, want {w}");
                    } else {
                        prop_assert!(got == -7.0, "c[{i}][{j}] past n was written");
                    }
                }
            }
        }

        /// `C += A B^T` through `pack_transposed`: odd sizes (row, column and 8-block tails),
        /// row lengths longer than the rows, accumulation onto what C held, columns of C
        /// past n untouched.
        #[test]
        fn transposed_product_matches_reference(m in 1usize..=15, n in 1usize..=37, k in 0usize..=29,
                                                extra in 0usize..=3, seed in any::<u64>()) {
            let mut rng = ember_tensor::Rng::new(seed);
            let (lda, ldb, ldc) = (k + extra, k + 2 * extra, n + extra);
            let a: Vec<f32> = (0..m * lda).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..n * ldb).map(|_| rng.normal()).collect();
            let c0: Vec<f32> = (0..m * ldc).map(|_| rng.normal()).collect();
            let mut bt = vec![f32::NAN; transposed_len(n, k)];
            pack_transposed(MatRef::new(&b, n, k, ldb), &mut bt);
            let mut c = c0.clone();
            gemm_nt_acc(MatRef::new(&a, m, k, lda), &bt, MatMut::new(&mut c, m, n, ldc));
            for i in 0..m {
                for j in 0..ldc {
                    let got = c[i * ldc + j];
                    if j < n {
                        let w = c0[i * ldc + j] as f64
                            + (0..k).map(|l| a[i * lda + l] as f64 * b[j * ldb + l] as f64).sum::<f64>();
                        prop_assert!((got as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()) * (k as f64).sqrt().max(1.0),
                                     "c[{i}][{j}] = {got}, want {w}");
                    } else {
                        prop_assert!(got == c0[i * ldc + j], "c[{i}][{j}] past n was written");
                    }
                }
            }
        }
    }
}
