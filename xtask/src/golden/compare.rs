//! Comparing computed tensors with expected ones: `max |got - want| / (1 + |want|)`.

use std::collections::BTreeSet;

use super::json::GoldenTensor;

/// The running comparison of one case: worst errors, shape problems, what was checked.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Largest `|got - want|` over all compared values.
    pub max_abs: f64,
    /// Largest `|got - want| / (1 + |want|)` (the pass criterion).
    pub max_rel: f64,
    /// The tensor holding `max_rel`.
    pub worst: Option<String>,
    /// Mismatched shapes or non-finite values: each makes the case fail.
    pub problems: Vec<String>,
    /// The expected tensors compared so far.
    pub checked: BTreeSet<String>,
}

impl Comparison {
    /// Compares `got` (with shape `got_shape`) with `expected.name`.
    pub fn tensor(&mut self, name: &str, got_shape: &[usize], got: &[f32], want: &GoldenTensor) {
        let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
        self.values(name, got_shape, &got, want);
    }

    /// As [`Comparison::tensor`], for f64 values.
    pub fn values(&mut self, name: &str, got_shape: &[usize], got: &[f64], want: &GoldenTensor) {
        self.checked.insert(name.to_string());
        if got_shape != want.shape.as_slice() || got.len() != want.data.len() {
            self.problems.push(format!(
                "{name}: got shape {got_shape:?}, expected {:?}",
                want.shape
            ));
            return;
        }
        for (&g, &w) in got.iter().zip(&want.data) {
            let abs = (g - w).abs();
            if !abs.is_finite() {
                self.problems.push(format!("{name}: got {g}, expected {w}"));
                return;
            }
            self.max_abs = self.max_abs.max(abs);
            let rel = abs / (1.0 + w.abs());
            if rel > self.max_rel {
                self.max_rel = rel;
                self.worst = Some(name.to_string());
            }
        }
    }
}
