//! Softmax cross-entropy with label smoothing.
