//! # ember-layers
//!
//! The layers a convolutional image classifier is built from (convolution, pooling, linear,
//! activations, batch norm, dropout, residual blocks), each with an explicit forward and
//! backward pass, and the `Sequential` container a model is defined with.
//!
//! There is no autograd graph: each layer keeps what its backward needs (or recomputes it
//! from the input, which `backward` receives again), owns its output and input-gradient
//! buffers and reuses them, so a training step allocates nothing once they have grown.
//! Every layer has a plain f64 twin in [`reference`](mod@reference), the oracle of the property tests.
//!
//! ```
//! use ember_layers::{loss::softmax_cross_entropy, BatchNorm2d, Flatten, Layer, Linear,
//!                    Mode, ReLU, Residual, Sequential};
//! use ember_tensor::{Rng, Shape, Tensor};
//!
//! let mut model = Sequential::new()
//!     .add(BatchNorm2d::new(1))
//!     .add(Flatten)
//!     .add(Linear::new(16, 8))
//!     .add(ReLU)
//!     .add(Residual::new(Sequential::new().add(Linear::new(8, 8)).add(ReLU)))
//!     .add(Linear::new(8, 3));
//! model.reset_parameters(&mut Rng::new(1));
//! let x = Tensor::normal([4, 1, 4, 4], 0.0, 1.0, &mut Rng::new(2));
//! let labels = [0, 2, 1, 2];
//!
//! model.zero_grad();
//! let logits = model.forward(&x, Mode::Train);
//! let mut grad = Tensor::zeros([0]);
//! let loss = softmax_cross_entropy(logits, &labels, 0.0, &mut grad);
//! model.backward(&x, &grad, false);
//! assert!(loss.is_finite());
//! assert!(model.param_names().contains(&"4.block.0.weight".to_string()));
//! println!("{}", model.summary(Shape::from([4, 1, 4, 4]))?);
//! # Ok::<(), ember_layers::LayerError>(())
//! ```

mod buffers;
mod par;
mod window;

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
pub mod replica;
pub mod residual;
pub mod sequential;
pub mod summary;
pub mod timing;

pub use activation::{Elementwise, ElementwiseOp, GELU, LeakyReLU, ReLU, Scale};
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use layer::{Layer, LayerError, Mode, Pair, Param};
pub use linear::Linear;
pub use loss::{softmax_cross_entropy, softmax_rows};
pub use norm::BatchNorm2d;
pub use pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};
pub use residual::Residual;
pub use sequential::Sequential;
pub use summary::{Summary, SummaryRow};
pub use timing::LayerTime;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
