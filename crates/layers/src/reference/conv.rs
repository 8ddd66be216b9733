//! Reference convolution forward and backward (f64).
