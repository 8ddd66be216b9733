//! Reference batch norm (f64).
