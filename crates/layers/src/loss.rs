//! Softmax cross-entropy with label smoothing, and softmax probabilities.

use ember_tensor::{Tensor, simd};

/// Checks `logits` is `[N, K]` with `N = labels.len()` and every label `< K`; returns `(N, K)`.
#[track_caller]
fn check(logits: &Tensor, labels: &[usize]) -> (usize, usize) {
    let (n, k) = match *logits.shape().dims() {
        [n, k] => (n, k),
        _ => panic!(
            "softmax_cross_entropy: logits must be [N, classes], got {}",
            logits.shape()
        ),
    };
    assert!(
        labels.len() == n,
        "softmax_cross_entropy: {} labels for a batch of {n} logits rows",
        labels.len()
    );
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= k) {
        panic!("softmax_cross_entropy: label {l} of item {i} is not below the {k} classes");
    }
    (n, k)
}

/// Mean softmax cross-entropy of `logits` `[N, K]` against `labels` (each `< K`), with
/// label smoothing `eps` (the target is `(1 - eps) * onehot + eps / K`, as PyTorch's
/// `label_smoothing`). Returns the loss and writes dLoss/dlogits, `(softmax - target) / N`,
/// into `grad` (resized to `[N, K]`, reusing its allocation).
///
/// Numerically stable: log-probabilities come from a log-sum-exp that subtracts each
/// row's maximum, so logits of any magnitude give finite results.
///
/// # Panics
/// If `logits` is not `[N, K]`, `labels.len() != N` or a label is `>= K` (the data crate
/// validates labels; here they are a programming error).
///
/// ```
/// use ember_layers::loss::softmax_cross_entropy;
/// use ember_tensor::Tensor;
/// let logits = Tensor::from_vec([1, 3], vec![0.0, 0.0, 0.0]).unwrap();
/// let mut grad = Tensor::zeros([0]);
/// let loss = softmax_cross_entropy(&logits, &[2], 0.0, &mut grad);
/// assert!((loss - 3f32.ln()).abs() < 1e-6);
/// assert!((grad.data()[2] + 2.0 / 3.0).abs() < 1e-6);
/// ```
pub fn softmax_cross_entropy(
    logits: &Tensor,
    labels: &[usize],
    label_smoothing: f32,
    grad: &mut Tensor,
) -> f32 {
    let (n, k) = check(logits, labels);
    grad.resize_for(logits.shape());
    if n == 0 || k == 0 {
        return 0.0;
    }
    let g = grad.data_mut();
    // The gradient buffer holds the log-probabilities first.
    simd::log_softmax_rows(logits.data(), k, g);
    let off = label_smoothing / k as f32;
    let on = 1.0 - label_smoothing + off;
    let inv_n = 1.0 / n as f32;
    let mut total = 0.0f64;
    for (row, &label) in g.chunks_exact_mut(k).zip(labels) {
        let smooth = if label_smoothing != 0.0 {
            off as f64 * row.iter().map(|&v| v as f64).sum::<f64>()
        } else {
            0.0
        };
        total -= smooth + (on - off) as f64 * row[label] as f64;
        for v in row.iter_mut() {
            *v = (v.exp() - off) * inv_n;
        }
        row[label] -= (on - off) * inv_n;
    }
    (total / n as f64) as f32
}

/// Row-wise softmax of `logits` `[N, K]`: each row's class probabilities (stable for
/// logits of any magnitude).
///
/// # Panics
/// If `logits` is not of rank 2.
pub fn softmax_rows(logits: &Tensor) -> Tensor {
    let k = match *logits.shape().dims() {
        [_, k] => k,
        _ => panic!(
            "softmax_rows: logits must be [N, classes], got {}",
            logits.shape()
        ),
    };
    let mut p = Tensor::zeros(logits.shape());
    if k > 0 {
        simd::log_softmax_rows(logits.data(), k, p.data_mut());
        for v in p.data_mut() {
            *v = v.exp();
        }
    }
    p
}
