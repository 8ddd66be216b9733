//! GEMM against the naive triple loop: every transpose combination, degenerate sizes, padded
//! leading dimensions, beta accumulation, and the parallel split.

use ember_tensor::Rng;
use ember_tensor::gemm::{MatMut, MatRef, gemm, gemm_reference, gemm_serial};
use proptest::prelude::*;

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    N,
    T,
}

/// The `rows x cols` operand stored as `op` says, rows `ld` apart.
fn view(data: &[f32], op: Op, rows: usize, cols: usize, ld: usize) -> MatRef<'_> {
    match op {
        Op::N => MatRef::new(data, rows, cols, ld),
        Op::T => MatRef::new(data, cols, rows, ld).t(),
    }
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 2, 7, 8, 9, 17]),
        0usize..80
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![Op::N, Op::T])
}

#[allow(clippy::too_many_arguments)]
fn check(
    m: usize,
    n: usize,
    k: usize,
    op_a: Op,
    op_b: Op,
    pad: usize,
    alpha: f32,
    beta: f32,
    seed: u64,
    serial: bool,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let (ar, ac) = if op_a == Op::N { (m, k) } else { (k, m) };
    let (br, bc) = if op_b == Op::N { (k, n) } else { (n, k) };
    let (lda, ldb, ldc) = (ac + pad, bc + pad, n + pad);
    let mut fill = |len: usize| {
        (0..len)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect::<Vec<f32>>()
    };
    let a = fill(ar * lda);
    let b = fill(br * ldb);
    let c0 = fill(m * ldc);
    let (mut got, mut want) = (c0.clone(), c0.clone());
    let (va, vb) = (view(&a, op_a, m, k, lda), view(&b, op_b, k, n, ldb));
    if serial {
        gemm_serial(alpha, va, vb, beta, MatMut::new(&mut got, m, n, ldc));
    } else {
        gemm(alpha, va, vb, beta, MatMut::new(&mut got, m, n, ldc));
    }
    gemm_reference(alpha, va, vb, beta, MatMut::new(&mut want, m, n, ldc));
    for i in 0..m {
        for j in 0..ldc {
            let (g, w) = (got[i * ldc + j], want[i * ldc + j]);
            if j >= n {
                prop_assert_eq!(
                    g,
                    c0[i * ldc + j],
                    "padding column {} of row {} was written",
                    j,
                    i
                );
            } else {
                prop_assert!(
                    (g - w).abs() <= 1e-5 * (k as f32 + 1.0),
                    "C[{},{}] = {} want {}",
                    i,
                    j,
                    g,
                    w
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn matches_naive(m in dim(), n in dim(), k in dim(), op_a in op(), op_b in op(), pad in 0usize..3,
                     alpha in prop::sample::select(vec![1.0f32, -0.5, 2.0]),
                     beta in prop::sample::select(vec![0.0f32, 1.0, 0.25]), seed in any::<u64>(), serial in any::<bool>()) {
        check(m, n, k, op_a, op_b, pad, alpha, beta, seed, serial)?;
    }
}

#[test]
fn large_products_use_both_split_directions() {
    // Tall (split over rows) and wide (split over columns), big enough to go parallel.
    check(300, 40, 70, Op::N, Op::N, 1, 1.0, 0.5, 1, false).unwrap();
    check(20, 900, 60, Op::T, Op::T, 0, 1.0, 0.0, 2, false).unwrap();
    check(64, 1024, 27, Op::N, Op::N, 0, 1.0, 0.0, 3, false).unwrap();
}

#[test]
fn beta_zero_ignores_nan_in_c() {
    let a = [1.0; 4];
    let b = [1.0; 4];
    let mut c = [f32::NAN; 4];
    let (va, vb) = (MatRef::new(&a, 2, 2, 2), MatRef::new(&b, 2, 2, 2));
    gemm(1.0, va, vb, 0.0, MatMut::new(&mut c, 2, 2, 2));
    assert_eq!(c, [2.0; 4]);
    let mut c = [f32::NAN; 4];
    let (va, vb) = (MatRef::new(&[], 2, 0, 0), MatRef::new(&[], 0, 2, 2));
    gemm(1.0, va, vb, 0.0, MatMut::new(&mut c, 2, 2, 2));
    assert_eq!(c, [0.0; 4]);
}

#[test]
#[should_panic(expected = "matrix view: 3 elements, a 2x2 matrix with rows 2 apart needs 4")]
fn short_operand_panics_with_sizes() {
    MatRef::new(&[1.0; 3], 2, 2, 2);
}

#[test]
#[should_panic(expected = "gemm: shapes do not chain: A 2x3, B 2x2, C 2x2")]
fn mismatched_shapes_panic_with_sizes() {
    let mut c = [0.0; 4];
    gemm(
        1.0,
        MatRef::new(&[1.0; 6], 2, 3, 3),
        MatRef::new(&[1.0; 4], 2, 2, 2),
        0.0,
        MatMut::new(&mut c, 2, 2, 2),
    );
}
