//! Reference 2-D batch norm (f64, obvious loops), PyTorch semantics.
//!
//! Tensors are NCHW row-major slices; statistics are per channel over `n * h * w` values.

/// The shape of a batch: `n` images of `c` channels of `hw` (height x width) values.
#[derive(Clone, Copy, Debug)]
pub struct Batch {
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Values per channel plane (`h * w`).
    pub hw: usize,
}

/// Batch norm's per-channel scale and shift, running statistics and `eps`.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormParams<'a> {
    /// Scale `[c]`.
    pub gamma: &'a [f64],
    /// Shift `[c]`.
    pub beta: &'a [f64],
    /// Running mean `[c]` (before a training step).
    pub running_mean: &'a [f64],
    /// Running variance `[c]` (before a training step).
    pub running_var: &'a [f64],
    /// Added to the variance.
    pub eps: f64,
}

/// The result of a training-mode forward.
#[derive(Clone, Debug)]
pub struct BatchNormTrain {
    /// The normalised, scaled and shifted output.
    pub output: Vec<f64>,
    /// Per-channel batch mean.
    pub mean: Vec<f64>,
    /// Per-channel biased batch variance (what the normalisation uses).
    pub var: Vec<f64>,
    /// Running mean after the momentum update.
    pub running_mean: Vec<f64>,
    /// Running variance after the momentum update (with the unbiased batch variance).
    pub running_var: Vec<f64>,
}

fn at(c: usize, i: usize, ch: usize, hw: usize, p: usize) -> usize {
    (i * c + ch) * hw + p
}

/// Training-mode batch norm of `x` `[n, c, hw]` with `bn` (its running statistics before
/// the step) and `momentum`.
pub fn batchnorm_train_forward(
    x: &[f64],
    b: Batch,
    bn: &BatchNormParams<'_>,
    momentum: f64,
) -> BatchNormTrain {
    let Batch { n, c, hw } = b;
    let (gamma, beta, eps) = (bn.gamma, bn.beta, bn.eps);
    let (running_mean, running_var) = (bn.running_mean, bn.running_var);
    let m = (n * hw) as f64;
    let mut out = BatchNormTrain {
        output: vec![0.0; x.len()],
        mean: vec![0.0; c],
        var: vec![0.0; c],
        running_mean: running_mean.to_vec(),
        running_var: running_var.to_vec(),
    };
    for ch in 0..c {
        let mut s = 0.0;
        for i in 0..n {
            for p in 0..hw {
                s += x[at(c, i, ch, hw, p)];
            }
        }
        let mean = s / m;
        let mut v = 0.0;
        for i in 0..n {
            for p in 0..hw {
                v += (x[at(c, i, ch, hw, p)] - mean).powi(2);
            }
        }
        let var = v / m;
        for i in 0..n {
            for p in 0..hw {
                let j = at(c, i, ch, hw, p);
                out.output[j] = gamma[ch] * (x[j] - mean) / (var + eps).sqrt() + beta[ch];
            }
        }
        out.mean[ch] = mean;
        out.var[ch] = var;
        let unbiased = if m > 1.0 { var * m / (m - 1.0) } else { var };
        out.running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mean;
        out.running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * unbiased;
    }
    out
}

/// Gradients of training-mode batch norm (batch statistics depend on `x`):
/// `(dx, dgamma, dbeta)`.
pub fn batchnorm_train_backward(
    x: &[f64],
    g: &[f64],
    b: Batch,
    gamma: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let Batch { n, c, hw } = b;
    let m = (n * hw) as f64;
    let mut dx = vec![0.0; x.len()];
    let mut dgamma = vec![0.0; c];
    let mut dbeta = vec![0.0; c];
    for ch in 0..c {
        let idx: Vec<usize> = (0..n)
            .flat_map(|i| (0..hw).map(move |p| at(c, i, ch, hw, p)))
            .collect();
        let mean = idx.iter().map(|&j| x[j]).sum::<f64>() / m;
        let var = idx.iter().map(|&j| (x[j] - mean).powi(2)).sum::<f64>() / m;
        let invstd = 1.0 / (var + eps).sqrt();
        let xhat = |j: usize| (x[j] - mean) * invstd;
        let sum_g: f64 = idx.iter().map(|&j| g[j]).sum();
        let sum_gx: f64 = idx.iter().map(|&j| g[j] * xhat(j)).sum();
        dgamma[ch] = sum_gx;
        dbeta[ch] = sum_g;
        for &j in &idx {
            dx[j] = gamma[ch] * invstd * (g[j] - sum_g / m - xhat(j) * sum_gx / m);
        }
    }
    (dx, dgamma, dbeta)
}

/// Eval-mode batch norm: normalises with the running statistics of `bn`.
pub fn batchnorm_eval_forward(x: &[f64], b: Batch, bn: &BatchNormParams<'_>) -> Vec<f64> {
    let Batch { n, c, hw } = b;
    let (gamma, beta, eps) = (bn.gamma, bn.beta, bn.eps);
    let (running_mean, running_var) = (bn.running_mean, bn.running_var);
    let mut y = vec![0.0; x.len()];
    for i in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                let j = at(c, i, ch, hw, p);
                y[j] = gamma[ch] * (x[j] - running_mean[ch]) / (running_var[ch] + eps).sqrt()
                    + beta[ch];
            }
        }
    }
    y
}

/// Gradients of eval-mode batch norm (statistics are constants): `(dx, dgamma, dbeta)`.
pub fn batchnorm_eval_backward(
    x: &[f64],
    g: &[f64],
    b: Batch,
    bn: &BatchNormParams<'_>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let Batch { n, c, hw } = b;
    let (gamma, eps) = (bn.gamma, bn.eps);
    let (running_mean, running_var) = (bn.running_mean, bn.running_var);
    let mut dx = vec![0.0; x.len()];
    let mut dgamma = vec![0.0; c];
    let mut dbeta = vec![0.0; c];
    for i in 0..n {
        for ch in 0..c {
            let invstd = 1.0 / (running_var[ch] + eps).sqrt();
            for p in 0..hw {
                let j = at(c, i, ch, hw, p);
                dx[j] = gamma[ch] * invstd * g[j];
                dgamma[ch] += g[j] * (x[j] - running_mean[ch]) * invstd;
                dbeta[ch] += g[j];
            }
        }
    }
    (dx, dgamma, dbeta)
}
