//! Gradient clipping by global norm and by value.

use ember_optim::clip::{clip_by_value, clip_coefficient, grad_norm_sq, scale_grad};
use ember_tensor::Rng;

#[test]
fn norm_matches_f64_sum_of_squares() {
    let mut rng = Rng::new(9);
    for n in [0usize, 1, 7, 33, 4096, 4097, 100_003] {
        let g: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let want: f64 = g.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let got = grad_norm_sq(&g);
        assert!(
            (got - want).abs() <= 1e-6 * want.max(1e-30),
            "n {n}: {got} vs {want}"
        );
    }
}

#[test]
fn global_norm_clipping_in_two_passes() {
    let mut grads = vec![vec![3.0f32, 0.0], vec![0.0f32, 4.0, 0.0]];
    let norm_sq: f64 = grads.iter().map(|g| grad_norm_sq(g)).sum();
    assert_eq!(norm_sq, 25.0);
    let c = clip_coefficient(norm_sq, 1.0);
    assert!((f64::from(c) - 1.0 / (5.0 + 1e-6)).abs() < 1e-7);
    for g in &mut grads {
        scale_grad(g, c);
    }
    let after: f64 = grads.iter().map(|g| grad_norm_sq(g)).sum();
    assert!(
        (after.sqrt() - 1.0).abs() < 1e-6,
        "clipped norm {}",
        after.sqrt()
    );
    assert_eq!(
        clip_coefficient(25.0, 10.0),
        1.0,
        "below the limit nothing changes"
    );
    assert!(clip_coefficient(f64::NAN, 1.0).is_nan());
    assert_eq!(clip_coefficient(f64::INFINITY, 1.0), 0.0);
}

#[test]
fn clip_by_value_clamps_both_sides() {
    let mut g = [-3.0f32, 0.5, 2.0, -0.25, f32::NAN];
    clip_by_value(&mut g, 1.0);
    assert_eq!(&g[..4], &[-1.0, 0.5, 1.0, -0.25]);
    assert!(g[4].is_nan());
}

mod properties {
    use ember_optim::clip::{clip_by_value, clip_coefficient, grad_norm_sq, scale_grad};
    use proptest::prelude::*;

    proptest! {
        /// After global-norm clipping the norm is at most `max_norm`, and below the limit
        /// nothing changes; clipping by value bounds every element and keeps the others.
        #[test]
        fn clipping_bounds(
            grads in proptest::collection::vec(proptest::collection::vec(-100.0f32..100.0, 0..300), 1..5),
            max_norm in 0.01f32..50.0,
            max_abs in 0.01f32..50.0,
        ) {
            let mut g = grads.clone();
            let norm_sq: f64 = g.iter().map(|x| grad_norm_sq(x)).sum();
            let c = clip_coefficient(norm_sq, max_norm);
            for x in &mut g {
                scale_grad(x, c);
            }
            let after: f64 = g.iter().map(|x| grad_norm_sq(x)).sum::<f64>().sqrt();
            prop_assert!(after <= f64::from(max_norm) * (1.0 + 1e-5), "norm {after} > {max_norm}");
            if norm_sq.sqrt() + 1e-6 <= f64::from(max_norm) {
                prop_assert_eq!(&g, &grads);
            }
            for (mut x, orig) in grads.clone().into_iter().zip(&grads) {
                clip_by_value(&mut x, max_abs);
                for (&v, &o) in x.iter().zip(orig) {
                    prop_assert!(v.abs() <= max_abs);
                    if o.abs() <= max_abs {
                        prop_assert_eq!(v, o);
                    }
                }
            }
        }
    }
}
