//! Every SIMD kernel against its scalar reference on awkward lengths and misaligned slices,
//! at every instruction-set level this CPU has.

use ember_tensor::simd::{self, Level, reference};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Runs `check` at every level this CPU has (the levels it lacks are noted once).
fn at_every_level(check: impl Fn() -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
    static NOTE: std::sync::Once = std::sync::Once::new();
    NOTE.call_once(|| {
        for l in Level::ALL.into_iter().filter(|l| !l.is_available()) {
            eprintln!("note: this CPU lacks {l}: its kernels are not tested here");
        }
    });
    for level in Level::available() {
        simd::with_level(level, &check)
            .map_err(|e| TestCaseError::fail(format!("at {level}: {e}")))?;
    }
    Ok(())
}

/// Lengths around the SIMD width and unroll factor, plus random ones.
fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![
            0usize, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 1000, 1003
        ]),
        0usize..3000,
    ]
}

/// A vector of `len + offset` values; the kernel sees `[offset..]`, so starts are misaligned.
fn data(max_len: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>, Vec<f32>, usize)> {
    (len().prop_map(move |n| n.min(max_len)), 0usize..8).prop_flat_map(|(n, off)| {
        let v = || prop::collection::vec(-10.0f32..10.0, n + off);
        (v(), v(), v(), Just(off))
    })
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn binary_and_fused_kernels_match_reference((a, b, c, off) in data(5000)) {
        at_every_level(|| {
            let (a, b, c) = (&a[off..], &b[off..], &c[off..]);
            let n = a.len();
            let (mut got, mut want) = (vec![0.0; n + off], vec![0.0; n]);
            let got = &mut got[off..];
            type Bin = fn(&[f32], &[f32], &mut [f32]);
            let kernels: [(Bin, Bin); 3] = [(simd::add, reference::add), (simd::sub, reference::sub), (simd::mul, reference::mul)];
            for (fast, slow) in kernels {
                fast(a, b, got);
                slow(a, b, &mut want);
                prop_assert_eq!(&*got, &want[..]);
            }
            simd::relu(a, got);
            reference::relu(a, &mut want);
            prop_assert_eq!(&*got, &want[..]);
            simd::relu_backward(a, b, got);
            reference::relu_backward(a, b, &mut want);
            prop_assert_eq!(&*got, &want[..]);
            // Fused kernels round once: within one ulp-ish of the two-rounding reference.
            simd::mul_add(a, b, c, got);
            reference::mul_add(a, b, c, &mut want);
            for (g, w) in got.iter().zip(&want) { prop_assert!(close(*g, *w, 1e-5), "{} vs {}", g, w); }
            got.copy_from_slice(c);
            want.copy_from_slice(c);
            simd::axpy(0.37, a, got);
            reference::axpy(0.37, a, &mut want);
            for (g, w) in got.iter().zip(&want) { prop_assert!(close(*g, *w, 1e-5), "{} vs {}", g, w); }
            got.copy_from_slice(c);
            want.copy_from_slice(c);
            simd::add_assign(got, a);
            reference::add_assign(&mut want, a);
            prop_assert_eq!(&*got, &want[..]);
            simd::scale(got, -1.5);
            reference::scale(&mut want, -1.5);
            prop_assert_eq!(&*got, &want[..]);
            Ok(())
        })?;
    }

    #[test]
    fn reductions_match_reference((a, b, _c, off) in data(5000)) {
        at_every_level(|| {
            let (a, b) = (&a[off..], &b[off..]);
            // Summation order differs: bound the error by the magnitude summed.
            let tol = |mag: f32| 1e-6 * (a.len() as f32 + 1.0) * (mag + 1.0);
            let mag: f32 = a.iter().map(|x| x.abs()).sum();
            prop_assert!((simd::sum(a) - reference::sum(a)).abs() <= tol(mag));
            let magd: f32 = a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum();
            prop_assert!((simd::dot(a, b) - reference::dot(a, b)).abs() <= tol(magd));
            let magsq: f32 = a.iter().map(|x| x * x).sum();
            prop_assert!((simd::sq_norm(a) - reference::sq_norm(a)).abs() <= tol(magsq));
            prop_assert_eq!(simd::max(a), reference::max(a));
            Ok(())
        })?;
    }

    #[test]
    fn row_kernels_match_reference(rows in 0usize..20, cols in 1usize..40, off in 0usize..8, seed in any::<u64>()) {
        at_every_level(|| {
            let mut rng = ember_tensor::Rng::new(seed);
            let buf: Vec<f32> = (0..rows * cols + off).map(|_| rng.uniform(-50.0, 50.0)).collect();
            let x = &buf[off..];
            let (mut got, mut want) = (vec![0usize; rows], vec![0usize; rows]);
            simd::argmax_rows(x, cols, &mut got);
            reference::argmax_rows(x, cols, &mut want);
            prop_assert_eq!(got, want);
            let (mut got, mut want) = (vec![0.0f32; rows * cols], vec![0.0f32; rows * cols]);
            simd::log_softmax_rows(x, cols, &mut got);
            reference::log_softmax_rows(x, cols, &mut want);
            for (g, w) in got.iter().zip(&want) { prop_assert!(close(*g, *w, 1e-5), "{} vs {}", g, w); }
            Ok(())
        })?;
    }
}

#[test]
fn argmax_takes_the_first_of_ties() {
    let x = [
        1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0,
    ];
    let mut out = [9; 2];
    simd::argmax_rows(&x, 7, &mut out);
    assert_eq!(out, [1, 0]);
}

#[test]
fn log_softmax_survives_huge_logits() {
    let x = [
        1000.0f32, 0.0, -1000.0, 999.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0,
    ];
    let mut out = [0.0; 9];
    simd::log_softmax_rows(&x, 9, &mut out);
    assert!(out.iter().all(|v| v.is_finite()));
    let total: f32 = out.iter().map(|v| v.exp()).sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");
}

#[test]
#[should_panic(expected = "simd::add: a has 3 elements but out has 4")]
fn length_mismatch_names_both_lengths() {
    simd::add(&[1.0; 3], &[1.0; 4], &mut [0.0; 4]);
}

#[test]
fn the_active_level_is_one_this_cpu_has() {
    let level = simd::init().expect("EMBER_SIMD names a level this CPU has");
    assert!(level.is_available());
    assert_eq!(simd::level(), level);
}

#[test]
fn transpose_8x8_at_every_level() {
    let src: Vec<f32> = (0..8 * 11).map(|v| v as f32).collect();
    for level in Level::available() {
        let mut dst = vec![-1.0f32; 7 * 13 + 8];
        ember_tensor::simd_dispatch!(level, s => {
            use ember_tensor::simd::Simd;
            let rows: [&[f32]; 8] = std::array::from_fn(|r| &src[r * 11..]);
            s.transpose_8x8(rows, &mut dst, 13);
        });
        for j in 0..8 {
            for r in 0..8 {
                assert_eq!(dst[j * 13 + r], src[r * 11 + j], "{level}: ({j}, {r})");
            }
            if j < 7 {
                assert!(
                    dst[j * 13 + 8..(j + 1) * 13].iter().all(|&v| v == -1.0),
                    "{level}: wrote past row {j}"
                );
            }
        }
    }
}

/// The vector `exp`, `abs` and `copysign` of every level against f64, over the range `exp`
/// documents (within 2 ulps), and at the clamps.
#[test]
fn exp_abs_copysign_at_every_level() {
    fn check<S: ember_tensor::simd::Simd>(s: S) {
        let xs: Vec<f32> = (0..20_000)
            .map(|i| -87.0 + i as f32 * (175.0 / 20_000.0))
            .collect();
        for chunk in xs.chunks_exact(S::LANES) {
            let mut out = [0.0f32; 16];
            s.store(&mut out, s.exp(s.load(chunk)));
            for (&x, &got) in chunk.iter().zip(&out) {
                let want = (x as f64).exp();
                let ulp = (want as f32).abs() * f32::EPSILON;
                assert!(
                    ((got as f64) - want).abs() <= 2.0 * ulp as f64,
                    "{:?}: exp({x}) = {got}, want {want}",
                    S::LEVEL
                );
            }
            let neg: Vec<f32> = chunk.iter().map(|v| -v).collect();
            s.store(&mut out, s.abs(s.load(&neg)));
            assert!(chunk.iter().zip(&out).all(|(a, b)| a.abs() == *b));
            s.store(&mut out, s.copysign(s.load(chunk), s.load(&neg)));
            assert!(
                chunk
                    .iter()
                    .zip(&out)
                    .all(|(a, b)| b.to_bits() == (-a).to_bits())
            );
        }
        let mut out = [0.0f32; 16];
        s.store(&mut out, s.exp(s.splat(-1000.0)));
        assert!(
            out[0] >= 0.0 && out[0] < 1e-37,
            "{:?}: {}",
            S::LEVEL,
            out[0]
        );
    }
    for level in Level::available() {
        ember_tensor::simd_dispatch!(level, s => check(s));
    }
}
