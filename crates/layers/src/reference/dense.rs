//! Reference linear, activations, loss (f64).
