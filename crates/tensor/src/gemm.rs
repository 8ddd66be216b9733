//! Matrix multiplication: `C = alpha * op(A) * op(B) + beta * C` on matrixmultiply's
//! `sgemm`, with transposes expressed as strides (never copied) and the work split over
//! rayon's threads by blocks of C.
//!
//! All matrices are row-major with a leading dimension (the distance between two rows as
//! stored). `op(A)` is `m x k`: with [`Op::N`] A is stored `m x k` (`lda >= k`), with
//! [`Op::T`] it is stored `k x m` (`lda >= m`). Likewise `op(B)` is `k x n`. C is `m x n`
//! (`ldc >= n`). When `beta == 0`, C is overwritten and its old contents (even NaN) are
//! ignored. Any of `m`, `n`, `k` may be 0.
//!
//! ```
//! use ember_tensor::gemm::{gemm, Op};
//! // C (2x2) = A (2x3) * B^T where B is stored 2x3.
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
//! let mut c = [0.0; 4];
//! gemm(Op::N, Op::T, 2, 2, 3, 1.0, &a, 3, &b, 3, 0.0, &mut c, 2);
//! assert_eq!(c, [1.0, 2.0, 4.0, 5.0]);
//! ```

use rayon::prelude::*;

/// Whether an operand is used as stored (`N`) or transposed (`T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// Below this many multiply-adds a GEMM runs on the calling thread: splitting costs more
/// than it saves (measured with the `gemm` criterion bench at 1 and 2 threads).
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// `C = alpha * op(A) * op(B) + beta * C`, split across rayon's threads when large enough.
///
/// Panics, naming the operand and both sizes, if a slice is too short for its matrix or a
/// leading dimension is smaller than its row length.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    op_a: Op,
    op_b: Op,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let g = Gemm::checked(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc);
    let threads = rayon::current_num_threads();
    if threads <= 1 || m * n * k < PARALLEL_MIN_MACS {
        g.run_block(alpha, beta, 0, m, 0, n);
        return;
    }
    // Split the longer side of C into one block per thread; a block of rows shares B, a
    // block of columns shares A, so every thread packs only what it multiplies.
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    let parts = threads.min(len.div_ceil(8)).max(1);
    let step = len.div_ceil(parts);
    (0..parts).into_par_iter().for_each(|p| {
        let lo = p * step;
        let hi = ((p + 1) * step).min(len);
        if lo < hi {
            if split_rows {
                g.run_block(alpha, beta, lo, hi, 0, n);
            } else {
                g.run_block(alpha, beta, 0, m, lo, hi);
            }
        }
    });
}

/// [`gemm`] on the calling thread only: for callers that already run in parallel (for
/// example one GEMM per image of a batch).
#[allow(clippy::too_many_arguments)]
pub fn gemm_serial(
    op_a: Op,
    op_b: Op,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    Gemm::checked(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc).run_block(alpha, beta, 0, m, 0, n);
}

/// A bounds-checked GEMM problem held as raw parts, so that threads can work on disjoint
/// blocks of C (blocks of columns are not contiguous, so they cannot be `&mut` slices).
struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_strides: (isize, isize),
    b: *const f32,
    b_strides: (isize, isize),
    c: *mut f32,
    ldc: usize,
}

// SAFETY: `Gemm` only lives inside `gemm`/`gemm_serial` while the borrows it was made from
// are held; A and B are only read, and concurrent `run_block` calls write disjoint blocks of C.
unsafe impl Sync for Gemm {}

#[track_caller]
fn needed(rows: usize, cols: usize, ld: usize, what: &str) -> usize {
    assert!(
        ld >= cols || rows == 0,
        "gemm: leading dimension of {what} is {ld}, less than its row length {cols}"
    );
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

impl Gemm {
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    fn checked(
        op_a: Op,
        op_b: Op,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
    ) -> Gemm {
        let (ar, ac) = if op_a == Op::N { (m, k) } else { (k, m) };
        let (br, bc) = if op_b == Op::N { (k, n) } else { (n, k) };
        for (what, len, need) in [
            ("A", a.len(), needed(ar, ac, lda, "A")),
            ("B", b.len(), needed(br, bc, ldb, "B")),
            ("C", c.len(), needed(m, n, ldc, "C")),
        ] {
            assert!(
                len >= need,
                "gemm: {what} has {len} elements, its {m}x{n}x{k} product needs {need}"
            );
        }
        let lda = lda as isize;
        let ldb = ldb as isize;
        Gemm {
            m,
            n,
            k,
            a: a.as_ptr(),
            a_strides: if op_a == Op::N { (lda, 1) } else { (1, lda) },
            b: b.as_ptr(),
            b_strides: if op_b == Op::N { (ldb, 1) } else { (1, ldb) },
            c: c.as_mut_ptr(),
            ldc,
        }
    }

    /// Computes rows `i0..i1`, columns `j0..j1` of C.
    fn run_block(&self, alpha: f32, beta: f32, i0: usize, i1: usize, j0: usize, j1: usize) {
        debug_assert!(i1 <= self.m && j1 <= self.n);
        if i0 >= i1 || j0 >= j1 {
            return;
        }
        if self.k == 0 {
            for i in i0..i1 {
                for j in j0..j1 {
                    // SAFETY: (i, j) is inside C, whose extent `checked` verified.
                    let cij = unsafe { &mut *self.c.add(i * self.ldc + j) };
                    *cij = if beta == 0.0 { 0.0 } else { beta * *cij };
                }
            }
            return;
        }
        let (rsa, csa) = self.a_strides;
        let (rsb, csb) = self.b_strides;
        // SAFETY: `checked` verified that A, B and C hold every element of op(A) (m x k),
        // op(B) (k x n) and C (m x n) under these strides; the offsets select row i0 of
        // op(A) and column j0 of op(B), and the block (i1-i0) x (j1-j0) stays inside them.
        // Concurrent calls get disjoint (i, j) blocks, so writes to C never overlap.
        unsafe {
            matrixmultiply::sgemm(
                i1 - i0,
                self.k,
                j1 - j0,
                alpha,
                self.a.offset(i0 as isize * rsa),
                rsa,
                csa,
                self.b.offset(j0 as isize * csb),
                rsb,
                csb,
                beta,
                self.c.add(i0 * self.ldc + j0),
                self.ldc as isize,
                1,
            );
        }
    }
}

/// The naive triple loop, the oracle for tests: same contract as [`gemm`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_reference(
    op_a: Op,
    op_b: Op,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let aip = if op_a == Op::N {
                    a[i * lda + p]
                } else {
                    a[p * lda + i]
                };
                let bpj = if op_b == Op::N {
                    b[p * ldb + j]
                } else {
                    b[j * ldb + p]
                };
                s += aip as f64 * bpj as f64;
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta * c[i * ldc + j]
            };
            c[i * ldc + j] = (alpha as f64 * s) as f32 + old;
        }
    }
}
