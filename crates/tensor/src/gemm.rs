//! Matrix multiplication: `C = alpha * A * B + beta * C` on matrixmultiply's `sgemm`, over
//! strided matrix views, with the work split over rayon's threads by blocks of C.
//!
//! [`MatRef`] and [`MatMut`] are row-major views with a leading dimension (the distance
//! between two rows as stored); [`MatRef::t`] is the transpose as strides, never a copy.
//! When `beta == 0`, C is overwritten and its old contents (even NaN) are ignored. Any
//! dimension may be 0. matrixmultiply picks its AVX/FMA kernels at run time.
//!
//! ```
//! use ember_tensor::gemm::{gemm, MatMut, MatRef};
//! // C (2x2) = A (2x3) * B^T where B is stored 2x3.
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
//! let mut c = [0.0; 4];
//! gemm(1.0, MatRef::new(&a, 2, 3, 3), MatRef::new(&b, 2, 3, 3).t(), 0.0, MatMut::new(&mut c, 2, 2, 2));
//! assert_eq!(c, [1.0, 2.0, 4.0, 5.0]);
//! ```

use rayon::prelude::*;

/// A read-only `rows x cols` matrix view: element `(i, j)` is `data[i * row_stride + j *
/// col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// The row-major `rows x cols` matrix at the start of `data`, rows `ld` apart.
    /// Panics, naming the sizes, if `ld < cols` or `data` is too short.
    #[track_caller]
    pub fn new(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        check_extent(data.len(), rows, cols, ld);
        MatRef {
            data,
            rows,
            cols,
            row_stride: ld,
            col_stride: 1,
        }
    }

    /// The transpose, `cols x rows`, viewing the same memory.
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The memory viewed (from element `(0, 0)`).
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }

    /// Distance between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Distance between consecutive columns (1 unless transposed).
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Element `(i, j)`. Panics if out of range.
    pub fn at(&self, i: usize, j: usize) -> f32 {
        assert!(
            i < self.rows && j < self.cols,
            "MatRef: ({i}, {j}) out of range"
        );
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// A mutable row-major `rows x cols` matrix view, rows `ld` apart; only the first `cols`
/// elements of each row are ever written.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a> MatMut<'a> {
    /// The row-major `rows x cols` matrix at the start of `data`, rows `ld` apart.
    /// Panics, naming the sizes, if `ld < cols` or `data` is too short.
    #[track_caller]
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Self {
        check_extent(data.len(), rows, cols, ld);
        MatMut {
            data,
            rows,
            cols,
            ld,
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Distance between consecutive rows.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// The first `cols` elements of row `i`. Panics if `i` is out of range.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "MatMut: row {i} of {}", self.rows);
        &mut self.data[i * self.ld..i * self.ld + self.cols]
    }

    /// A view of the same matrix that borrows this one.
    pub fn rb_mut(&mut self) -> MatMut<'_> {
        MatMut {
            data: &mut *self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }
}

#[track_caller]
fn check_extent(len: usize, rows: usize, cols: usize, ld: usize) {
    assert!(
        ld >= cols || rows <= 1,
        "matrix view: leading dimension {ld} is less than the row length {cols}"
    );
    let need = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    };
    assert!(
        len >= need,
        "matrix view: {len} elements, a {rows}x{cols} matrix with rows {ld} apart needs {need}"
    );
}

/// Below this many multiply-adds a GEMM runs on the calling thread: splitting costs more
/// than it saves (measured with the `gemm` criterion bench at 1 and 2 threads).
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// `C = alpha * A * B + beta * C`, split across rayon's threads when large enough.
/// Panics, naming the sizes, if the shapes do not chain (`A` is `m x k`, `B` `k x n`, `C`
/// `m x n`).
#[track_caller]
pub fn gemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    let g = Gemm::checked(a, b, c);
    let (m, n, k) = (g.m, g.n, g.k);
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
#[track_caller]
pub fn gemm_serial(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    let g = Gemm::checked(a, b, c);
    g.run_block(alpha, beta, 0, g.m, 0, g.n);
}

/// [`gemm`] when `parallel`, else [`gemm_serial`].
#[track_caller]
pub fn gemm_maybe_parallel(
    parallel: bool,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
) {
    if parallel {
        gemm(alpha, a, b, beta, c);
    } else {
        gemm_serial(alpha, a, b, beta, c);
    }
}

/// A checked GEMM problem held as raw parts, so that threads can work on disjoint blocks of
/// C (blocks of columns are not contiguous, so they cannot be `&mut` slices).
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

impl Gemm {
    #[track_caller]
    fn checked(a: MatRef<'_>, b: MatRef<'_>, c: MatMut<'_>) -> Gemm {
        assert!(
            a.cols == b.rows && c.rows == a.rows && c.cols == b.cols,
            "gemm: shapes do not chain: A {}x{}, B {}x{}, C {}x{}",
            a.rows,
            a.cols,
            b.rows,
            b.cols,
            c.rows,
            c.cols
        );
        Gemm {
            m: a.rows,
            n: b.cols,
            k: a.cols,
            a: a.data.as_ptr(),
            a_strides: (a.row_stride as isize, a.col_stride as isize),
            b: b.data.as_ptr(),
            b_strides: (b.row_stride as isize, b.col_stride as isize),
            c: c.data.as_mut_ptr(),
            ldc: c.ld,
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
                    // SAFETY: (i, j) is inside C, whose extent `MatMut::new` verified.
                    let cij = unsafe { &mut *self.c.add(i * self.ldc + j) };
                    *cij = if beta == 0.0 { 0.0 } else { beta * *cij };
                }
            }
            return;
        }
        let (rsa, csa) = self.a_strides;
        let (rsb, csb) = self.b_strides;
        // SAFETY: the views' constructors verified that A, B and C hold every element of A
        // (m x k), B (k x n) and C (m x n) under these strides; the offsets select row i0 of
        // A and column j0 of B, and the block (i1-i0) x (j1-j0) stays inside them.
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

/// The naive triple loop in f64, the oracle for tests: same contract as [`gemm`].
#[track_caller]
pub fn gemm_reference(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    assert!(
        a.cols == b.rows && c.rows == a.rows && c.cols == b.cols,
        "gemm_reference: shapes do not chain"
    );
    for i in 0..c.rows {
        for j in 0..c.cols {
            let s: f64 = (0..a.cols)
                .map(|p| a.at(i, p) as f64 * b.at(p, j) as f64)
                .sum();
            let cij = &mut c.data[i * c.ld + j];
            let old = if beta == 0.0 { 0.0 } else { beta * *cij };
            *cij = (alpha as f64 * s) as f32 + old;
        }
    }
}
