//! The tensor type: a contiguous row-major f32 buffer with a shape.

use crate::{AlignedVec, Rng, Shape, ShapeError};

/// A contiguous, row-major f32 tensor with 64-byte aligned storage.
///
/// Images are NCHW. Reshaping never copies; element access is through
/// [`data`](Tensor::data) / [`data_mut`](Tensor::data_mut) slices, which is what the
/// kernels take.
///
/// ```
/// use ember_tensor::{Rng, Shape, Tensor};
/// let t = Tensor::from_vec([2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// let t = t.reshape([3, 2])?;
/// assert_eq!(t.shape().dims(), &[3, 2]);
/// assert_eq!(t.data()[5], 6.0);
/// let mut rng = Rng::new(7);
/// let w = Tensor::normal([4, 4], 0.0, 1.0, &mut rng);
/// assert_eq!(w.len(), 16);
/// # Ok::<(), ember_tensor::ShapeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Tensor {
    shape: Shape,
    data: AlignedVec,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        Tensor {
            data: AlignedVec::zeros(shape.numel()),
            shape,
        }
    }

    /// A tensor with every element equal to `value`.
    pub fn full(shape: impl Into<Shape>, value: f32) -> Self {
        let mut t = Self::zeros(shape);
        t.data.fill(value);
        t
    }

    /// A tensor holding `data`; fails if its length is not the shape's element count.
    pub fn from_vec(shape: impl Into<Shape>, data: Vec<f32>) -> Result<Self, ShapeError> {
        Self::from_slice(shape, &data)
    }

    /// A tensor holding a copy of `data`; fails if its length is not the shape's element count.
    pub fn from_slice(shape: impl Into<Shape>, data: &[f32]) -> Result<Self, ShapeError> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(ShapeError::Len {
                shape,
                len: data.len(),
            });
        }
        Ok(Tensor {
            shape,
            data: AlignedVec::from_slice(data),
        })
    }

    /// Elements drawn uniformly from `[lo, hi)`.
    pub fn uniform(shape: impl Into<Shape>, lo: f32, hi: f32, rng: &mut Rng) -> Self {
        let mut t = Self::zeros(shape);
        t.data.iter_mut().for_each(|x| *x = rng.uniform(lo, hi));
        t
    }

    /// Elements drawn from a normal distribution.
    pub fn normal(shape: impl Into<Shape>, mean: f32, std: f32, rng: &mut Rng) -> Self {
        let mut t = Self::zeros(shape);
        t.data
            .iter_mut()
            .for_each(|x| *x = mean + std * rng.normal());
        t
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The elements, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The same elements under another shape with the same element count; never copies.
    pub fn reshape(mut self, shape: impl Into<Shape>) -> Result<Self, ShapeError> {
        self.reshape_in_place(shape)?;
        Ok(self)
    }

    /// Changes the shape in place (same element count); never copies.
    pub fn reshape_in_place(&mut self, shape: impl Into<Shape>) -> Result<(), ShapeError> {
        let shape = shape.into();
        if shape.numel() != self.shape.numel() {
            return Err(ShapeError::Reshape {
                from: self.shape,
                to: shape,
            });
        }
        self.shape = shape;
        Ok(())
    }

    /// Gives the tensor a new shape of any size, reusing its allocation when it is large
    /// enough. The contents are unspecified afterwards (kept elements keep stale values).
    /// This is how layers keep workspace buffers across steps without allocating.
    pub fn resize_for(&mut self, shape: impl Into<Shape>) {
        let shape = shape.into();
        self.data.resize(shape.numel());
        self.shape = shape;
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: f32) {
        self.data.fill(value);
    }

    /// The elements of item `i` of the outermost dimension (e.g. image `i` of a batch).
    pub fn item(&self, i: usize) -> &[f32] {
        let n = self.shape.item_numel();
        &self.data[i * n..(i + 1) * n]
    }

    /// The elements of item `i` of the outermost dimension, mutable.
    pub fn item_mut(&mut self, i: usize) -> &mut [f32] {
        let n = self.shape.item_numel();
        &mut self.data[i * n..(i + 1) * n]
    }

    /// Copies the elements into a plain `Vec`.
    pub fn to_vec(&self) -> Vec<f32> {
        self.data.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_checks_length() {
        let err = Tensor::from_vec([2, 2], vec![1.0; 3]).unwrap_err();
        assert_eq!(err.to_string(), "shape [2, 2] needs 4 elements, got 3");
    }

    #[test]
    fn reshape_keeps_data_and_checks_count() {
        let t = Tensor::from_vec([2, 3], (0..6).map(|x| x as f32).collect()).unwrap();
        let ptr = t.data().as_ptr();
        let t = t.reshape([6]).unwrap();
        assert_eq!(t.data().as_ptr(), ptr, "reshape must not copy");
        let err = t.reshape([4]).unwrap_err().to_string();
        assert!(err.contains("[6]") && err.contains("[4]"), "{err}");
    }

    #[test]
    fn items_are_batch_slices() {
        let mut t = Tensor::zeros([3, 2, 2]);
        t.item_mut(1).fill(5.0);
        assert_eq!(t.item(1), &[5.0; 4]);
        assert_eq!(t.item(0), &[0.0; 4]);
        assert_eq!(t.data().as_ptr() as usize % 64, 0);
    }

    #[test]
    fn resize_for_reuses_allocation() {
        let mut t = Tensor::zeros([8, 8]);
        let ptr = t.data().as_ptr();
        t.resize_for([4, 4]);
        assert_eq!(t.shape(), Shape::from([4, 4]));
        t.resize_for([8, 8]);
        assert_eq!(t.data().as_ptr(), ptr);
    }
}
