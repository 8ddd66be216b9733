//! `C = A B` for the Winograd products, with `A` packed once into panels of [`PANEL_M`]
//! rows and `B` used as stored (its rows are the transforms' output, already contiguous).
//!
//! A general GEMM packs both operands on every call; for the 16 small products of a
//! Winograd pass that packing cost about a third of the multiply. Here the transformed
//! weights are written in panel order when they are made, and `B`'s rows are read
//! directly, 16 columns (two `f32x8`) at a time. The register tile is [`PANEL_M`] rows x
//! 16 columns: 12 accumulators, and each step of `k` does 2 loads and 6 broadcasts for
//! 12 FMAs.

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

/// `C[m x n] = A[m x k] B[k x n]`: `a` packed (see [`panel_index`]; the padding rows zero),
/// `b` row-major with row length `ldb`, `c` row-major with row length `ldc`; only the first
/// `n` columns of each row of `C` are written. `B` is read in blocks of [`PANEL_N`]
/// columns, so `ldb >= n` rounded up to a multiple of [`PANEL_N`] (the columns past `n`
/// may hold anything; they only reach columns of `C` that are not stored). Panics if a
/// slice is too short.
#[allow(clippy::too_many_arguments)]
pub fn panel_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let np = n.div_ceil(PANEL_N) * PANEL_N;
    assert!(a.len() >= panel_len(m, k), "panel_gemm: a too short");
    assert!(
        ldb >= np && b.len() >= k * ldb,
        "panel_gemm: b too short for {k} rows of {np}"
    );
    assert!(
        ldc >= n && (m == 0 || c.len() >= (m - 1) * ldc + n),
        "panel_gemm: c too short"
    );
    if k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|row| row[..n].fill(0.0));
        return;
    }
    for j0 in (0..n).step_by(PANEL_N) {
        let cols = (n - j0).min(PANEL_N);
        for (p, panel) in a[..panel_len(m, k)].chunks_exact(k * PANEL_M).enumerate() {
            let acc = tile(panel, &b[j0..], ldb, k);
            let rows = (m - p * PANEL_M).min(PANEL_M);
            for (r, row) in acc.iter().enumerate().take(rows) {
                let dst = &mut c[(p * PANEL_M + r) * ldc + j0..][..cols];
                let vals = [row[0].to_array(), row[1].to_array()];
                if let Ok(full) = <&mut [f32; PANEL_N]>::try_from(&mut *dst) {
                    full[..8].copy_from_slice(&vals[0]);
                    full[8..].copy_from_slice(&vals[1]);
                } else {
                    copy_short(dst, &vals.as_flattened()[..cols]);
                }
            }
        }
    }
}

/// One register tile: `PANEL_M` rows of the panel times 16 columns of `b`.
#[inline(always)]
fn tile(panel: &[f32], b: &[f32], ldb: usize, k: usize) -> [[f32x8; 2]; PANEL_M] {
    let mut acc = [[f32x8::ZERO; 2]; PANEL_M];
    assert!(
        panel.len() >= k * PANEL_M && (k == 0 || b.len() >= (k - 1) * ldb + PANEL_N),
        "panel_gemm: tile reads past its operands"
    );
    let (ap, bp) = (panel.as_ptr(), b.as_ptr());
    for kk in 0..k {
        // SAFETY: the assert above bounds every read: `a[kk*PANEL_M + r]` with
        // `r < PANEL_M` and `kk < k`, and `b[kk*ldb .. kk*ldb + 16]` with `kk <= k - 1`.
        // read_unaligned allows any alignment.
        unsafe {
            let bv = [
                bp.add(kk * ldb).cast::<f32x8>().read_unaligned(),
                bp.add(kk * ldb + 8).cast::<f32x8>().read_unaligned(),
            ];
            for (r, row) in acc.iter_mut().enumerate() {
                let av = f32x8::splat(*ap.add(kk * PANEL_M + r));
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
            panel_gemm(m, n, k, &packed, &b, ldb, &mut c, ldc);
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
    }
}
