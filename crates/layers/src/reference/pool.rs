//! Reference pooling forward and backward (f64).
