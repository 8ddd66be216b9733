//! Tensor shapes: a small inline list of dimensions, `Copy` so that passing one never allocates.

use std::fmt;

use crate::error::ShapeError;

/// The largest rank a [`Shape`] holds.
pub const MAX_RANK: usize = 6;

/// The dimensions of a row-major tensor, outermost first (NCHW for images).
///
/// A shape is stored inline (no heap allocation) and is `Copy`.
///
/// ```
/// use ember_tensor::Shape;
/// let s = Shape::from([2, 3, 28, 28]);
/// assert_eq!(s.numel(), 2 * 3 * 28 * 28);
/// assert_eq!(s.dims(), &[2, 3, 28, 28]);
/// assert_eq!(s.to_string(), "[2, 3, 28, 28]");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: u8,
}

impl Shape {
    /// Builds a shape from a list of dimensions; fails if there are more than [`MAX_RANK`].
    pub fn new(dims: &[usize]) -> Result<Self, ShapeError> {
        if dims.len() > MAX_RANK {
            return Err(ShapeError::RankTooLarge { rank: dims.len() });
        }
        let mut d = [0; MAX_RANK];
        d[..dims.len()].copy_from_slice(dims);
        Ok(Shape {
            dims: d,
            rank: dims.len() as u8,
        })
    }

    /// The shape of a scalar (rank 0, one element).
    pub const fn scalar() -> Self {
        Shape {
            dims: [0; MAX_RANK],
            rank: 0,
        }
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank as usize]
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank as usize
    }

    /// The number of elements (the product of the dimensions; 1 for a scalar).
    ///
    /// Panics, naming the shape, if the product does not fit in `usize` (rather than
    /// wrapping to a small number in a release build): shapes that come from user input are
    /// checked with [`checked_numel`](Self::checked_numel) first.
    pub fn numel(&self) -> usize {
        self.checked_numel()
            .unwrap_or_else(|| panic!("shape {self} has more elements than usize holds"))
    }

    /// The number of elements, or `None` if the product overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        checked_product(self.dims())
    }

    /// Dimension `i` (outermost is 0). Panics if `i >= rank`.
    pub fn dim(&self, i: usize) -> usize {
        assert!(
            i < self.rank(),
            "dimension {i} of shape {self} (rank {})",
            self.rank()
        );
        self.dims[i]
    }

    /// Interprets the shape as NCHW and returns `(n, c, h, w)`, or an error naming the shape.
    pub fn nchw(&self) -> Result<(usize, usize, usize, usize), ShapeError> {
        match *self.dims() {
            [n, c, h, w] => Ok((n, c, h, w)),
            _ => Err(ShapeError::Rank {
                expected: 4,
                shape: *self,
            }),
        }
    }

    /// The number of elements in one item of the outermost dimension (e.g. one image of a
    /// batch). Panics like [`numel`](Self::numel) on overflow.
    pub fn item_numel(&self) -> usize {
        checked_product(self.dims().get(1..).unwrap_or(&[]))
            .unwrap_or_else(|| panic!("shape {self} has more elements than usize holds"))
    }
}

/// The product of `dims`, or `None` on overflow.
pub fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

macro_rules! shape_from_array {
    ($($n:literal)*) => {$(
        impl From<[usize; $n]> for Shape {
            fn from(dims: [usize; $n]) -> Self {
                let mut d = [0; MAX_RANK];
                d[..$n].copy_from_slice(&dims);
                Shape { dims: d, rank: $n }
            }
        }
    )*};
}
shape_from_array!(1 2 3 4 5 6);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_limits() {
        assert!(Shape::new(&[1; 7]).is_err());
        assert_eq!(Shape::new(&[2, 3]).unwrap(), Shape::from([2, 3]));
        assert_eq!(Shape::scalar().numel(), 1);
        assert_eq!(Shape::from([4, 0, 2]).numel(), 0);
    }

    #[test]
    fn element_counts_never_wrap() {
        let huge = Shape::from([1 << 40, 1 << 40]);
        assert_eq!(huge.checked_numel(), None);
        assert_eq!(Shape::from([3, 1 << 20]).checked_numel(), Some(3 << 20));
        assert_eq!(checked_product(&[]), Some(1));
        // In a release build the plain product wraps to 0 here; numel must not.
        let wrapped = std::panic::catch_unwind(|| huge.numel());
        assert!(wrapped.is_err(), "numel of {huge} returned {wrapped:?}");
        assert!(
            std::panic::catch_unwind(|| Shape::from([2, 1 << 40, 1 << 40]).item_numel()).is_err()
        );
    }

    #[test]
    fn nchw_checks_rank() {
        assert_eq!(Shape::from([1, 2, 3, 4]).nchw().unwrap(), (1, 2, 3, 4));
        let err = Shape::from([1, 2]).nchw().unwrap_err().to_string();
        assert!(err.contains("[1, 2]"), "{err}");
    }
}
