//! Reference linear, activations and softmax cross-entropy (f64, obvious loops).
//!
//! Matrices are row-major slices. Backward functions take the forward's input and the
//! upstream gradient `g = dL/doutput` and return the gradients of `L`.

/// `y[i][o] = sum_k x[i][k] w[o][k] + b[o]`: `x` is `[n, din]`, `w` is `[dout, din]`.
pub fn linear_forward(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    n: usize,
    din: usize,
    dout: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; n * dout];
    for i in 0..n {
        for o in 0..dout {
            let mut s = b.map_or(0.0, |b| b[o]);
            for k in 0..din {
                s += x[i * din + k] * w[o * din + k];
            }
            y[i * dout + o] = s;
        }
    }
    y
}

/// Gradients of a linear layer: `(dx [n, din], dw [dout, din], db [dout])`.
pub fn linear_backward(
    x: &[f64],
    w: &[f64],
    g: &[f64],
    n: usize,
    din: usize,
    dout: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; n * din];
    let mut dw = vec![0.0; dout * din];
    let mut db = vec![0.0; dout];
    for i in 0..n {
        for o in 0..dout {
            let go = g[i * dout + o];
            db[o] += go;
            for k in 0..din {
                dx[i * din + k] += go * w[o * din + k];
                dw[o * din + k] += go * x[i * din + k];
            }
        }
    }
    (dx, dw, db)
}

/// `max(x, 0)`.
pub fn relu_forward(x: &[f64]) -> Vec<f64> {
    leaky_relu_forward(x, 0.0)
}

/// ReLU's input gradient: `g` where `x > 0`, else 0.
pub fn relu_backward(x: &[f64], g: &[f64]) -> Vec<f64> {
    leaky_relu_backward(x, g, 0.0)
}

/// `x` where `x > 0`, else `slope * x`.
pub fn leaky_relu_forward(x: &[f64], slope: f64) -> Vec<f64> {
    x.iter()
        .map(|&v| if v > 0.0 { v } else { slope * v })
        .collect()
}

/// Leaky ReLU's input gradient: `g` where `x > 0`, else `slope * g`.
pub fn leaky_relu_backward(x: &[f64], g: &[f64], slope: f64) -> Vec<f64> {
    x.iter()
        .zip(g)
        .map(|(&v, &g)| if v > 0.0 { g } else { slope * g })
        .collect()
}

/// The error function in f64: its Taylor series for `|x| <= 2.5`, else `1 - erfc` with
/// erfc's continued fraction `e^(-x²)/√π / (x + (1/2)/(x + (2/2)/(x + (3/2)/(x + ...))))`
/// (both accurate to about 1e-15 where they are used).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    if z <= 2.5 {
        let (mut term, mut sum) = (x, x);
        for n in 1..100 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        return sum * 2.0 / std::f64::consts::PI.sqrt();
    }
    let mut f = z;
    for k in (1..=200).rev() {
        f = z + (k as f64 / 2.0) / f;
    }
    let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / f;
    (1.0 - erfc).copysign(x)
}

/// `x Φ(x)`, `Φ(x) = (1 + erf(x / √2)) / 2`.
pub fn gelu_forward(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| v * 0.5 * (1.0 + erf(v / 2f64.sqrt())))
        .collect()
}

/// GELU's input gradient: `g (Φ(x) + x φ(x))`.
pub fn gelu_backward(x: &[f64], g: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(g)
        .map(|(&v, &g)| {
            let cdf = 0.5 * (1.0 + erf(v / 2f64.sqrt()));
            let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            g * (cdf + v * pdf)
        })
        .collect()
}

/// Mean softmax cross-entropy of `logits` `[n, k]` with label smoothing `eps`, and its
/// gradient wrt the logits: target `t = (1 - eps) onehot + eps / k`,
/// `loss = -mean_i sum_j t_ij log softmax(x_i)_j`, `grad = (softmax - t) / n`.
pub fn cross_entropy(
    logits: &[f64],
    labels: &[usize],
    n: usize,
    k: usize,
    eps: f64,
) -> (f64, Vec<f64>) {
    let mut loss = 0.0;
    let mut grad = vec![0.0; n * k];
    for i in 0..n {
        let row = &logits[i * k..(i + 1) * k];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
        for j in 0..k {
            let t = (1.0 - eps) * if j == labels[i] { 1.0 } else { 0.0 } + eps / k as f64;
            let logp = row[j] - lse;
            loss -= t * logp;
            grad[i * k + j] = (logp.exp() - t) / n as f64;
        }
    }
    (loss / n as f64, grad)
}
