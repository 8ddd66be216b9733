//! 64-byte aligned f32 storage, so SIMD loads of a tensor's start never split a cache line.

use std::ops::{Deref, DerefMut};

/// One cache line of f32s; the unit of allocation.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; LINE]);

const LINE: usize = 16;

/// A growable f32 buffer whose first element is 64-byte aligned.
#[derive(Clone, Default)]
pub struct AlignedVec {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedVec {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        AlignedVec {
            lines: vec![Line([0.0; LINE]); len.div_ceil(LINE)],
            len,
        }
    }

    /// A copy of `data`.
    pub fn from_slice(data: &[f32]) -> Self {
        let mut v = Self::zeros(data.len());
        v.copy_from_slice(data);
        v
    }

    /// Number of f32 elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of elements the buffer holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.lines.capacity() * LINE
    }

    /// Sets the length to `len`, reusing the allocation when it is large enough.
    /// Elements kept keep their values; new elements are zero.
    pub fn resize(&mut self, len: usize) {
        let lines = len.div_ceil(LINE);
        if lines > self.lines.len() {
            self.lines.resize(lines, Line([0.0; LINE]));
        }
        if len > self.len {
            // Elements past the old length may hold stale values from a longer past life.
            let old = self.len;
            self.len = len;
            self[old..].fill(0.0);
        } else {
            self.len = len;
        }
    }
}

impl Deref for AlignedVec {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` over `[f32; 16]` with size 64 and no padding, so
        // `lines` is `lines.len() * 16` contiguous, initialised f32s, and `len` never
        // exceeds that (every constructor and `resize` keep `lines.len() * 16 >= len`).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }
}

impl DerefMut for AlignedVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`; the unique borrow of `self` makes the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

impl std::fmt::Debug for AlignedVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_sized() {
        for len in [0, 1, 15, 16, 17, 1000] {
            let v = AlignedVec::zeros(len);
            assert_eq!(v.len(), len);
            assert_eq!(v.as_ptr() as usize % 64, 0);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn resize_zeroes_new_elements_and_keeps_old() {
        let mut v = AlignedVec::from_slice(&[1.0, 2.0, 3.0]);
        v.resize(1);
        v.resize(20);
        assert_eq!(&v[..3], &[1.0, 0.0, 0.0]);
        assert!(v[3..].iter().all(|&x| x == 0.0));
        let cap = v.capacity();
        v.resize(5);
        assert_eq!(v.capacity(), cap, "shrinking keeps the allocation");
    }
}
