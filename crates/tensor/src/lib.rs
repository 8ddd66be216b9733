//! # ember-tensor
//!
//! The numeric foundation of Ember: a contiguous f32 [`Tensor`] with 64-byte aligned storage
//! and an inline [`Shape`], the project-wide seeded [`Rng`], weight initialisers ([`init`]),
//! SIMD elementwise kernels ([`simd`]) and a parallel GEMM ([`gemm`]).
//!
//! Everything here works on plain slices and sizes as well as tensors, so the kernels are
//! usable on their own.
//!
//! ## Errors
//! One rule: constructors and reshapes that take caller data return [`ShapeError`]; kernels
//! whose slice lengths disagree panic with a message naming both lengths (a bug in the
//! caller, as with slice indexing).
//!
//! ## Instruction sets
//! The SIMD kernels pick AVX-512, AVX2 + FMA or a portable path at run time: see [`simd`].
//!
//! ```
//! use ember_tensor::{gemm::{gemm, MatMut, MatRef}, simd, Rng, Tensor};
//! let mut rng = Rng::new(0);
//! let a = Tensor::normal([4, 8], 0.0, 1.0, &mut rng);
//! let b = Tensor::normal([8, 3], 0.0, 1.0, &mut rng);
//! let mut c = Tensor::zeros([4, 3]);
//! let (va, vb) = (MatRef::new(a.data(), 4, 8, 8), MatRef::new(b.data(), 8, 3, 3));
//! gemm(1.0, va, vb, 0.0, MatMut::new(c.data_mut(), 4, 3, 3));
//! let mut out = Tensor::zeros([4, 3]);
//! simd::relu(c.data(), out.data_mut());
//! assert!(out.data().iter().all(|&x| x >= 0.0));
//! ```

pub mod error;
pub mod gemm;
pub mod init;
pub mod rng;
pub mod shape;
pub mod simd;
pub mod storage;
pub mod tensor;

pub use error::ShapeError;
pub use rng::Rng;
pub use shape::{Shape, checked_product};
pub use storage::AlignedVec;
pub use tensor::Tensor;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
