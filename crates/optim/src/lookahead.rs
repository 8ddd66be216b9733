//! Lookahead over an exponential moving average of the weights, as fast CIFAR-10 recipes
//! use it: every `every` steps the slow copy moves towards the weights,
//! `slow = decay·slow + (1 − decay)·fast`, and the weights jump back to it, `fast = slow`.
//! The decay grows with training, `decay = alpha^every · (t / T)³`: early on the weights run
//! free, late they are held close to their recent average.

use std::collections::BTreeMap;

use crate::OptimError;

/// Lookahead with a cubically growing decay; see the module documentation.
///
/// ```
/// use ember_optim::Lookahead;
/// let mut la = Lookahead::new(5, 0.95).unwrap();
/// let mut w = vec![1.0f32, 2.0];
/// // Step 5 of 10: decay = 0.95^5 * 0.5^3.
/// if let Some(decay) = la.decay_after(5, 10) {
///     la.update("0.weight", &mut w, decay);
/// }
/// assert_eq!(w, vec![1.0, 2.0]); // the first update starts the slow copy at the weights
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Lookahead {
    every: u64,
    alpha: f32,
    slow: BTreeMap<String, Vec<f32>>,
}

impl Lookahead {
    /// Lookahead every `every` steps with base `alpha` (0.95 in the recipes). Errors unless
    /// `every >= 1` and `alpha` is in (0, 1].
    pub fn new(every: u64, alpha: f32) -> Result<Self, OptimError> {
        if every == 0 || !(alpha > 0.0 && alpha <= 1.0) {
            return Err(OptimError::InvalidHyperParameter {
                optimizer: "lookahead",
                message: format!(
                    "needs every >= 1 and alpha in (0, 1], got every {every} and alpha {alpha}"
                ),
            });
        }
        Ok(Lookahead {
            every,
            alpha,
            slow: BTreeMap::new(),
        })
    }

    /// The decay to apply after `steps` of `total` optimizer steps have been taken, or
    /// `None` when this step has no update: every `every` steps, and at the last step.
    pub fn decay_after(&self, steps: u64, total: u64) -> Option<f32> {
        if steps == 0 || (!steps.is_multiple_of(self.every) && steps != total) {
            return None;
        }
        let progress = (steps as f64 / total.max(1) as f64).min(1.0);
        Some((f64::from(self.alpha).powf(self.every as f64) * progress.powi(3)) as f32)
    }

    /// Moves the slow copy of `name` towards `fast` by `1 − decay` and sets `fast` to it.
    /// The first update of a name starts its slow copy at `fast`.
    pub fn update(&mut self, name: &str, fast: &mut [f32], decay: f32) {
        let slow = self
            .slow
            .entry(name.to_string())
            .or_insert_with(|| fast.to_vec());
        if slow.len() != fast.len() {
            // A tensor that changed size (a new model) starts over.
            *slow = fast.to_vec();
        }
        for (s, f) in slow.iter_mut().zip(fast.iter_mut()) {
            *s = decay * *s + (1.0 - decay) * *f;
            *f = *s;
        }
    }

    /// The slow copies, by name, for a checkpoint.
    pub fn state(&self) -> &BTreeMap<String, Vec<f32>> {
        &self.slow
    }

    /// Replaces the slow copies with saved ones.
    pub fn load_state(&mut self, slow: BTreeMap<String, Vec<f32>>) {
        self.slow = slow;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the rule written out: the slow copy is the running lerp, the weights jump to it.
    #[test]
    fn update_follows_the_rule() {
        let mut la = Lookahead::new(2, 0.9).unwrap();
        let (total, mut fast, mut slow) = (8u64, vec![0.5f32, -1.0], None::<Vec<f64>>);
        for step in 1..=total {
            // Some optimizer moved the weights.
            fast.iter_mut().for_each(|w| *w += 0.25 * step as f32);
            let Some(decay) = la.decay_after(step, total) else {
                assert!(step % 2 == 1);
                continue;
            };
            let want = (0.9f64.powi(2) * (step as f64 / total as f64).powi(3)) as f32;
            assert!((decay - want).abs() < 1e-7);
            let s = slow.get_or_insert_with(|| fast.iter().map(|&v| v as f64).collect());
            for (s, &f) in s.iter_mut().zip(&fast) {
                *s = decay as f64 * *s + (1.0 - decay as f64) * f as f64;
            }
            la.update("w", &mut fast, decay);
            for (&f, &s) in fast.iter().zip(s.iter()) {
                assert!((f as f64 - s).abs() < 1e-5, "{f} vs {s}");
            }
        }
        assert_eq!(la.state()["w"], fast);
        // The last step always updates, even off the period.
        assert!(la.decay_after(7, 7).is_some() && la.decay_after(7, 9).is_none());
        assert!(Lookahead::new(0, 0.9).is_err() && Lookahead::new(5, 1.5).is_err());
    }
}
