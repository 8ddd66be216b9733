//! Plain scalar versions of every SIMD kernel: obviously correct loops, the oracle the
//! property tests compare against, and what runs on targets where speed does not matter.

/// `out[i] = a[i] + b[i]`
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = a[i] + b[i];
    }
}

/// `out[i] = a[i] - b[i]`
pub fn sub(a: &[f32], b: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = a[i] - b[i];
    }
}

/// `out[i] = a[i] * b[i]`
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = a[i] * b[i];
    }
}

/// `y[i] += x[i]`
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    for i in 0..y.len() {
        y[i] += x[i];
    }
}

/// `x[i] *= alpha`
pub fn scale(x: &mut [f32], alpha: f32) {
    for v in x {
        *v *= alpha;
    }
}

/// `y[i] += alpha * x[i]`
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for i in 0..y.len() {
        y[i] += alpha * x[i];
    }
}

/// `out[i] = a[i] * b[i] + c[i]`
pub fn mul_add(a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = a[i] * b[i] + c[i];
    }
}

/// `out[i] = max(x[i], 0)`
pub fn relu(x: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = if x[i] > 0.0 { x[i] } else { 0.0 };
    }
}

/// `out[i] = grad[i]` where `x[i] > 0`, else 0.
pub fn relu_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = if x[i] > 0.0 { grad[i] } else { 0.0 };
    }
}

/// The sum of the elements.
pub fn sum(x: &[f32]) -> f32 {
    let mut s = 0.0;
    for &v in x {
        s += v;
    }
    s
}

/// The largest element; `-inf` for an empty slice.
pub fn max(x: &[f32]) -> f32 {
    let mut m = f32::NEG_INFINITY;
    for &v in x {
        if v > m {
            m = v;
        }
    }
    m
}

/// `sum(x[i]^2)`
pub fn sq_norm(x: &[f32]) -> f32 {
    let mut s = 0.0;
    for &v in x {
        s += v * v;
    }
    s
}

/// `sum(a[i] * b[i])`
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0;
    for i in 0..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// For each row of a `rows x cols` matrix, the index of its first largest element.
pub fn argmax_rows(x: &[f32], cols: usize, out: &mut [usize]) {
    for (r, o) in out.iter_mut().enumerate() {
        let row = &x[r * cols..(r + 1) * cols];
        let mut best = 0;
        for j in 1..cols {
            if row[j] > row[best] {
                best = j;
            }
        }
        *o = best;
    }
}

/// Row-wise `log_softmax`: `out = x - max - ln(sum(exp(x - max)))` per row.
pub fn log_softmax_rows(x: &[f32], cols: usize, out: &mut [f32]) {
    for r in 0..x.len() / cols.max(1) {
        let row = &x[r * cols..(r + 1) * cols];
        let m = max(row);
        let s: f32 = row.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + s.ln();
        for j in 0..cols {
            out[r * cols + j] = row[j] - lse;
        }
    }
}
