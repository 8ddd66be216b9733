//! The fully connected `Linear` layer.
