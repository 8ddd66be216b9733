//! The fused SIMD kernels against the scalar reference at every level this CPU has: random
//! lengths (empty, shorter than a lane, lane tails, over the parallel threshold) and random
//! hyper-parameters. They must agree bitwise with the reference that rounds its
//! multiply-adds as the level does (fused for AVX2, AVX-512 and a portable path compiled
//! with FMA; two roundings for a portable path without).

use ember_tensor::Rng;
use ember_tensor::simd::{Level, with_level};
use proptest::prelude::*;

use super::{AdamStep, Moments, PAR_CHUNK, SgdStep, adam, reference, sgd};

fn lengths() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => prop_oneof![Just(0usize), Just(1), Just(7), Just(8), Just(9), Just(15), Just(17)],
        4 => 0usize..64,
        2 => 1000usize..1100,
        1 => Just(PAR_CHUNK + 13),
        1 => Just(3 * PAR_CHUNK - 5),
    ]
}

fn normal_vec(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

/// The multiply-add of `level`, one lane.
fn mul_add_of(level: Level) -> fn(f32, f32, f32) -> f32 {
    fn fused<S: ember_tensor::simd::Simd>(_: S) -> bool {
        S::FUSED
    }
    if ember_tensor::simd_dispatch!(level, s => fused(s)) {
        f32::mul_add
    } else {
        |a, b, c| a * b + c
    }
}

fn assert_same(level: Level, what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{level}: {what}[{i}]: simd {g} vs scalar {w}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sgd_matches_reference(
        n in lengths(),
        seed in any::<u64>(),
        lr in 0.0f32..1.0,
        momentum in prop_oneof![Just(0.0f32), 0.0f32..0.99],
        dampening in prop_oneof![Just(0.0f32), 0.0f32..1.0],
        weight_decay in prop_oneof![Just(0.0f32), 0.0f32..0.1],
        nesterov in any::<bool>(),
        first in any::<bool>(),
    ) {
        let mut rng = Rng::new(seed);
        let p0 = normal_vec(&mut rng, n, 1.0);
        let g = normal_vec(&mut rng, n, 0.1);
        let b0 = if momentum == 0.0 { Vec::new() } else { normal_vec(&mut rng, n, 0.1) };
        let k = SgdStep { lr, momentum, dampening, weight_decay, nesterov, first };
        for level in Level::available() {
            let (mut p2, mut b2) = (p0.clone(), b0.clone());
            reference::sgd(mul_add_of(level), &mut p2, &g, &mut b2, &k);
            let (mut p1, mut b1) = (p0.clone(), b0.clone());
            with_level(level, || sgd(&mut p1, &g, &mut b1, &k));
            assert_same(level, "p", &p1, &p2);
            assert_same(level, "buf", &b1, &b2);
        }
    }

    #[test]
    fn adam_matches_reference(
        n in lengths(),
        seed in any::<u64>(),
        lr in 1e-5f32..0.1,
        weight_decay in prop_oneof![Just(0.0f32), 0.0f32..0.1],
        decoupled in any::<bool>(),
        amsgrad in any::<bool>(),
        beta1 in 0.0f32..0.99,
        beta2 in 0.9f32..0.9999,
        t in 1u64..10_000,
    ) {
        let mut rng = Rng::new(seed);
        let p0 = normal_vec(&mut rng, n, 1.0);
        let g = normal_vec(&mut rng, n, 0.1);
        let m0 = normal_vec(&mut rng, n, 0.05);
        let v0: Vec<f32> = normal_vec(&mut rng, n, 0.01).iter().map(|x| x * x).collect();
        let x0: Vec<f32> = if amsgrad {
            normal_vec(&mut rng, n, 0.01).iter().map(|x| x * x).collect()
        } else {
            Vec::new()
        };
        let bc1 = 1.0 - f64::from(beta1).powf(t as f64);
        let bc2 = 1.0 - f64::from(beta2).powf(t as f64);
        let k = AdamStep {
            decay_factor: if decoupled { 1.0 - lr * weight_decay } else { 1.0 },
            weight_decay: if decoupled { 0.0 } else { weight_decay },
            one_minus_beta1: 1.0 - beta1,
            beta2,
            one_minus_beta2: 1.0 - beta2,
            bias_correction2_sqrt: bc2.sqrt() as f32,
            step_size: (f64::from(lr) / bc1) as f32,
            eps: 1e-8,
        };
        for level in Level::available() {
            let (mut p2, mut m2, mut v2, mut x2) = (p0.clone(), m0.clone(), v0.clone(), x0.clone());
            let st = Moments { m: &mut m2, v: &mut v2, vmax: &mut x2 };
            reference::adam(mul_add_of(level), &mut p2, &g, st, &k);
            let (mut p1, mut m1, mut v1, mut x1) = (p0.clone(), m0.clone(), v0.clone(), x0.clone());
            let st = Moments { m: &mut m1, v: &mut v1, vmax: &mut x1 };
            with_level(level, || adam(&mut p1, &g, st, &k));
            assert_same(level, "p", &p1, &p2);
            assert_same(level, "m", &m1, &m2);
            assert_same(level, "v", &v1, &v2);
            assert_same(level, "vmax", &x1, &x2);
        }
    }
}

#[test]
#[should_panic(expected = "momentum buffer has 3 elements but the parameter has 4")]
fn sgd_kernel_names_bad_buffer_length() {
    let k = SgdStep {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        first: true,
    };
    sgd(&mut [0.0; 4], &[0.0; 4], &mut [0.0; 3], &k);
}
