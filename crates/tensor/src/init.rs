//! Weight initialisers (Kaiming/He and Xavier/Glorot), with PyTorch's conventions.
//!
//! `fan_in` is `in_channels / groups * kh * kw` for a conv weight and `in_features` for a
//! linear one; `fan_out` likewise with the output side.

use crate::{Rng, Shape, Tensor};

/// Kaiming (He) uniform: `U(-b, b)` with `b = gain * sqrt(3 / fan_in)`.
/// `gain = sqrt(2)` suits ReLU. PyTorch's default conv and linear weight init is this
/// with `gain = sqrt(1/3)` (that is, `b = 1/sqrt(fan_in)`), see [`torch_default`].
pub fn kaiming_uniform(shape: impl Into<Shape>, fan_in: usize, gain: f32, rng: &mut Rng) -> Tensor {
    let bound = gain * (3.0 / fan_in.max(1) as f32).sqrt();
    Tensor::uniform(shape, -bound, bound, rng)
}

/// Kaiming (He) normal: `N(0, gain^2 / fan_in)`.
pub fn kaiming_normal(shape: impl Into<Shape>, fan_in: usize, gain: f32, rng: &mut Rng) -> Tensor {
    let std = gain / (fan_in.max(1) as f32).sqrt();
    Tensor::normal(shape, 0.0, std, rng)
}

/// Xavier (Glorot) uniform: `U(-b, b)` with `b = gain * sqrt(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(
    shape: impl Into<Shape>,
    fan_in: usize,
    fan_out: usize,
    gain: f32,
    rng: &mut Rng,
) -> Tensor {
    let bound = gain * (6.0 / (fan_in + fan_out).max(1) as f32).sqrt();
    Tensor::uniform(shape, -bound, bound, rng)
}

/// Xavier (Glorot) normal: `N(0, gain^2 * 2 / (fan_in + fan_out))`.
pub fn xavier_normal(
    shape: impl Into<Shape>,
    fan_in: usize,
    fan_out: usize,
    gain: f32,
    rng: &mut Rng,
) -> Tensor {
    let std = gain * (2.0 / (fan_in + fan_out).max(1) as f32).sqrt();
    Tensor::normal(shape, 0.0, std, rng)
}

/// PyTorch's default for conv and linear weights and biases: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn torch_default(shape: impl Into<Shape>, fan_in: usize, rng: &mut Rng) -> Tensor {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    Tensor::uniform(shape, -bound, bound, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(t: &Tensor) -> f32 {
        let n = t.len() as f32;
        let m = t.data().iter().sum::<f32>() / n;
        t.data().iter().map(|x| (x - m) * (x - m)).sum::<f32>() / n
    }

    #[test]
    fn variances_match_the_formulas() {
        let mut rng = Rng::new(0);
        let fan_in = 288;
        let g = 2f32.sqrt();
        let ku = kaiming_uniform([64, 32, 3, 3], fan_in, g, &mut rng);
        let kn = kaiming_normal([64, 32, 3, 3], fan_in, g, &mut rng);
        let want = 2.0 / fan_in as f32;
        assert!((var(&ku) / want - 1.0).abs() < 0.05, "{}", var(&ku));
        assert!((var(&kn) / want - 1.0).abs() < 0.05, "{}", var(&kn));
        let xu = xavier_uniform([200, 300], 300, 200, 1.0, &mut rng);
        let xn = xavier_normal([200, 300], 300, 200, 1.0, &mut rng);
        let want = 2.0 / 500.0;
        assert!((var(&xu) / want - 1.0).abs() < 0.05);
        assert!((var(&xn) / want - 1.0).abs() < 0.05);
        let b = 1.0 / (fan_in as f32).sqrt();
        let td = torch_default([1000], fan_in, &mut rng);
        assert!(td.data().iter().all(|x| x.abs() <= b));
    }
}
