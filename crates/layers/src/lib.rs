//! # ember-layers
//!
//! The layers a convolutional image classifier is built from (convolution, pooling, linear,
//! activations, batch norm, dropout, residual blocks), each with an explicit forward and
//! backward pass, and the `Sequential` container a model is defined with.
//!
//! Work in progress: the layers land with the layers issue; the [`Layer`] trait is the
//! contract the rest of Ember is written against.

pub mod layer;

pub use layer::{Layer, LayerError, Mode, Param};
