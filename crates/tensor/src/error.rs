//! The one error type of the tensor crate.

use std::fmt;

use crate::Shape;

/// A shape that does not fit: what was expected and what was found.
///
/// The rule across Ember: constructors and conversions that take caller data
/// (`Tensor::from_vec`, `reshape`, `Shape::new`) return this error; kernels over
/// slices and layer forward passes treat a size mismatch as a programming error and
/// panic with a message naming both shapes, like slice indexing does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// The data length does not match the shape's element count.
    Len {
        /// The shape asked for.
        shape: Shape,
        /// The number of elements supplied.
        len: usize,
    },
    /// A reshape to a shape with another element count.
    Reshape {
        /// The tensor's shape.
        from: Shape,
        /// The requested shape.
        to: Shape,
    },
    /// A shape of the wrong rank.
    Rank {
        /// The rank required.
        expected: usize,
        /// The shape found.
        shape: Shape,
    },
    /// More dimensions than [`crate::shape::MAX_RANK`].
    RankTooLarge {
        /// The rank asked for.
        rank: usize,
    },
    /// Two shapes that must agree and do not.
    Mismatch {
        /// What the operation needs.
        expected: Shape,
        /// What it was given.
        found: Shape,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Len { shape, len } => write!(
                f,
                "shape {shape} needs {} elements, got {len}",
                shape.numel()
            ),
            ShapeError::Reshape { from, to } => write!(
                f,
                "cannot reshape {from} ({} elements) to {to} ({} elements)",
                from.numel(),
                to.numel()
            ),
            ShapeError::Rank { expected, shape } => {
                write!(f, "expected a rank-{expected} shape, got {shape}")
            }
            ShapeError::RankTooLarge { rank } => write!(
                f,
                "rank {rank} exceeds the maximum of {}",
                crate::shape::MAX_RANK
            ),
            ShapeError::Mismatch { expected, found } => {
                write!(f, "expected shape {expected}, got {found}")
            }
        }
    }
}

impl std::error::Error for ShapeError {}
