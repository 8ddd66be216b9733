//! Helpers shared by the dense/norm/container tests: finite differences and comparisons.
#![allow(dead_code)]

use ember_tensor::{Rng, Tensor};

/// Central finite differences of `f` at `x` (f64).
pub fn numeric_grad(f: &dyn Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xp[i];
            xp[i] = orig + h;
            let up = f(&xp);
            xp[i] = orig - h;
            let down = f(&xp);
            xp[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// `max |got - want| / (1 + |want|)`.
pub fn max_rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

/// Asserts `max |got - want| / (1 + |want|) <= tol`, naming `what`.
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let err = max_rel_err(got, want);
    assert!(
        err <= tol,
        "{what}: error {err:e} > {tol:e}\n got {got:?}\nwant {want:?}"
    );
}

/// `sum(a * b)`.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// f32 values (exactly representable) from a seed, uniform in (-1, 1) but at least
/// `min_abs` away from zero (keeps finite differences off ReLU kinks).
pub fn values(len: usize, seed: u64, min_abs: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|_| {
            let v = rng.uniform(-1.0, 1.0);
            if v.abs() < min_abs {
                if v < 0.0 { v - min_abs } else { v + min_abs }
            } else {
                v
            }
        })
        .collect()
}

/// A tensor of [`values`].
pub fn tensor(shape: &[usize], seed: u64, min_abs: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        ember_tensor::Shape::new(shape).unwrap(),
        values(n, seed, min_abs),
    )
    .unwrap()
}

/// f32 slice as f64.
pub fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}
