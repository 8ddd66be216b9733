//! # ember-layers
//!
//! The layers a convolutional image classifier is built from (convolution, pooling, linear,
//! activations, batch norm, dropout, residual blocks), each with an explicit forward and
//! backward pass, and the `Sequential` container a model is defined with.

pub mod activation;
pub mod conv;
pub mod dropout;
pub mod flatten;
pub mod layer;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod pool;
pub mod reference;
pub mod residual;
pub mod sequential;

pub use layer::{Layer, LayerError, Mode, Pair, Param};
