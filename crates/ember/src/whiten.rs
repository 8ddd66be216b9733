//! Whitening initialisation of a first convolution: from the training images, the filters
//! that decorrelate their patches. For `kh x kw` patches of `c` channels (`d = c·kh·kw`
//! values), the patch covariance `Σ` has eigenpairs `(λ_k, v_k)`; the filters are
//! `v_k / √(λ_k + ε)` and their negatives, `2d` in all, so that the convolution's outputs
//! start uncorrelated with unit variance (fast CIFAR-10 recipes train from here).

use ember_data::{Dataset, Normalize};

use crate::error::{Error, Result};

/// Images the patch covariance is estimated from (a class-stratified sample).
pub const WHITENING_IMAGES: usize = 5000;

/// Added to each eigenvalue before the square root: keeps the faint directions from being
/// blown up.
pub const WHITENING_EPS: f64 = 5e-4;

/// The OIHW weight `[out, c, kh, kw]` of a whitening convolution for `data`'s images after
/// `normalize`, estimated from a stratified sample of [`WHITENING_IMAGES`] of them drawn from
/// `seed`. `out` must be `2·c·kh·kw`.
pub fn whitening_weights(
    data: &Dataset,
    normalize: &Normalize,
    (kh, kw): (usize, usize),
    out: usize,
    seed: u64,
) -> Result<Vec<f32>> {
    let [c, h, w] = data.shape();
    let d = c * kh * kw;
    if out != 2 * d {
        return Err(Error(format!(
            "a whitening convolution of {kh}x{kw} over {c} channels has {} filters (each \
             direction and its negative), not {out}",
            2 * d
        )));
    }
    if kh > h || kw > w || data.is_empty() {
        return Err(Error(format!(
            "whitening needs training images of at least {kh}x{kw} pixels, got {} of {h}x{w}",
            data.len()
        )));
    }
    let sample = data.stratified_sample(WHITENING_IMAGES, seed);
    let cov = patch_covariance(&sample, normalize, kh, kw);
    let (values, vectors) = symmetric_eigen(&cov, d);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut weight = vec![0.0f32; out * d];
    for (k, &e) in order.iter().enumerate() {
        let scale = 1.0 / (values[e].max(0.0) + WHITENING_EPS).sqrt();
        for i in 0..d {
            let v = (vectors[i * d + e] * scale) as f32;
            weight[k * d + i] = v;
            weight[(d + k) * d + i] = -v;
        }
    }
    Ok(weight)
}

/// `E[p pᵀ]` over every `kh x kw` patch (stride 1, no padding) of the normalised images,
/// a `d x d` row-major matrix with `d = c·kh·kw` in OIHW order `(channel, ky, kx)`.
fn patch_covariance(data: &Dataset, normalize: &Normalize, kh: usize, kw: usize) -> Vec<f64> {
    let [c, h, w] = data.shape();
    let d = c * kh * kw;
    let mut sum = vec![0.0f64; d * d];
    let mut image = vec![0.0f32; c * h * w];
    let mut patch = vec![0.0f64; d];
    let mut count = 0u64;
    for i in 0..data.len() {
        normalize.apply(data.image(i), c, &mut image);
        for y in 0..=h - kh {
            for x in 0..=w - kw {
                for ch in 0..c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            patch[(ch * kh + ky) * kw + kx] =
                                image[(ch * h + y + ky) * w + x + kx] as f64;
                        }
                    }
                }
                for a in 0..d {
                    for b in a..d {
                        sum[a * d + b] += patch[a] * patch[b];
                    }
                }
                count += 1;
            }
        }
    }
    for a in 0..d {
        for b in a..d {
            let v = sum[a * d + b] / count.max(1) as f64;
            sum[a * d + b] = v;
            sum[b * d + a] = v;
        }
    }
    sum
}

/// Eigenvalues and eigenvectors (as the columns of a row-major `n x n` matrix) of the
/// symmetric `n x n` matrix `a`, by cyclic Jacobi rotations until the off-diagonal part is
/// negligible.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a[..n * n].to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = m
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes m[p][q].
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let cos = 1.0 / (t * t + 1.0).sqrt();
                let sin = t * cos;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = cos * mkp - sin * mkq;
                    m[k * n + q] = sin * mkp + cos * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = cos * mpk - sin * mqk;
                    m[q * n + k] = sin * mpk + cos * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = cos * vkp - sin * vkq;
                    v[k * n + q] = sin * vkp + cos * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_tensor::Rng;

    /// `A v = λ v` for every pair, and the vectors orthonormal.
    #[test]
    fn jacobi_diagonalises_symmetric_matrices() {
        let mut rng = Rng::new(4);
        for n in [1, 2, 3, 7, 12] {
            let b: Vec<f64> = (0..n * n).map(|_| rng.normal() as f64).collect();
            // A = B Bᵀ + a diagonal: symmetric, eigenvalues spread out.
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>()
                        + if i == j { i as f64 } else { 0.0 };
                }
            }
            let (values, v) = symmetric_eigen(&a, n);
            for e in 0..n {
                for i in 0..n {
                    let av: f64 = (0..n).map(|k| a[i * n + k] * v[k * n + e]).sum();
                    assert!((av - values[e] * v[i * n + e]).abs() < 1e-9, "n {n}");
                }
                for f in 0..n {
                    let dot: f64 = (0..n).map(|k| v[k * n + e] * v[k * n + f]).sum();
                    assert!((dot - if e == f { 1.0 } else { 0.0 }).abs() < 1e-9);
                }
            }
        }
    }

    /// The filters whiten the patches they were estimated from: `W Σ Wᵀ = λ/(λ + ε)` on
    /// the diagonal for the first half, zero off it; the second half are the negatives.
    #[test]
    fn filters_decorrelate_the_patches() {
        let mut rng = Rng::new(7);
        let (n, c, h, w) = (40, 3, 6, 5);
        // Correlated channels: a shared component plus noise.
        let mut pixels = Vec::new();
        for _ in 0..n {
            let base: Vec<f32> = (0..h * w).map(|_| rng.uniform(0.0, 200.0)).collect();
            for ch in 0..c {
                for &b in &base {
                    pixels.push((b + ch as f32 * 20.0 + rng.uniform(0.0, 30.0)).min(255.0) as u8);
                }
            }
        }
        let ds = Dataset::new([c, h, w], pixels, vec![0; n], vec!["x".into()]).unwrap();
        let norm = Normalize::from_dataset(&ds);
        let (kh, kw) = (2, 2);
        let d = c * kh * kw;
        let wt = whitening_weights(&ds, &norm, (kh, kw), 2 * d, 1).unwrap();
        let cov = patch_covariance(&ds, &norm, kh, kw);
        let (values, _) = symmetric_eigen(&cov, d);
        let mut sorted = values.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        for i in 0..d {
            for j in 0..d {
                let wsw: f64 = (0..d)
                    .flat_map(|a| (0..d).map(move |b| (a, b)))
                    .map(|(a, b)| wt[i * d + a] as f64 * cov[a * d + b] * wt[j * d + b] as f64)
                    .sum();
                let want = if i == j {
                    sorted[i] / (sorted[i] + WHITENING_EPS)
                } else {
                    0.0
                };
                assert!((wsw - want).abs() < 1e-4, "({i}, {j}): {wsw} vs {want}");
            }
        }
        for k in 0..d * d {
            assert_eq!(wt[d * d + k], -wt[k]);
        }
        let e = whitening_weights(&ds, &norm, (kh, kw), 10, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("24 filters"), "{e}");
    }
}
