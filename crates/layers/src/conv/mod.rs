//! 2-D convolution: the [`Conv2d`] layer and its algorithms, each in its own file with its
//! forward, input-gradient and weight-gradient code over one [`ConvGeometry`]:
//!
//! - `im2col`: im2col + GEMM, any configuration ([`im2col`], [`col2im`]);
//! - `direct`: a direct SIMD kernel for 3x3 stride-1 layers ([`conv2d_direct_3x3`],
//!   [`conv2d_direct_3x3_weight_grad`], [`pack_3x3_weights`]);
//! - `winograd`: Winograd F(2x2, 3x3) and F(4x4, 3x3) for 3x3 stride-1 layers
//!   ([`winograd_input`] and the other transforms with [`WinogradTiles`] of a
//!   [`WinogradTile`]; products on [`panel_gemm`] / [`gemm_nt_acc`]).
//!
//! [`ConvAlgorithm`] holds the rule that picks one per shape and pass, and the measurements
//! behind it; [`Epilogue`] is the bias and fused ReLU every algorithm ends with. The layer
//! splits work over the batch with rayon; when the batch is smaller than the thread count
//! the products themselves run in parallel instead. Each batch chunk owns its workspace,
//! kept between steps, so a training step allocates nothing once the buffers have grown.
//!
//! ```
//! use ember_layers::conv::{WinogradTiles, panel_gemm, panel_index, panel_len};
//! use ember_tensor::gemm::{MatMut, MatRef};
//! // A 2x3 matrix packed into panels times a 3x16 row-major matrix.
//! let a = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
//! let mut packed = vec![0.0; panel_len(2, 3)];
//! for r in 0..2 {
//!     for c in 0..3 {
//!         packed[panel_index(r, c, 3)] = a[r][c];
//!     }
//! }
//! let b = vec![1.0f32; 3 * 16];
//! let mut c = vec![0.0f32; 2 * 16];
//! panel_gemm(&packed, MatRef::new(&b, 3, 16, 16), MatMut::new(&mut c, 2, 16, 16));
//! assert_eq!((c[0], c[16]), (6.0, 15.0));
//! // An 8x8 image padded by 1 has an 8x8 output: 4x4 tiles of 2x2.
//! let tiles = WinogradTiles::new(8, 8, ember_layers::Pair(1, 1)).unwrap();
//! assert_eq!(tiles.per_image(), 16);
//! ```

mod algorithm;
mod chunk;
mod copy;
mod direct;
mod epilogue;
mod geometry;
mod im2col;
mod layer;
mod panel_gemm;
mod winograd;

pub use algorithm::ConvAlgorithm;
pub use direct::{
    BLOCK_CO, conv2d_direct_3x3, conv2d_direct_3x3_weight_grad, direct_3x3_scratch_len,
    direct_3x3_weight_grad_scratch_len, pack_3x3_weights, packed_3x3_len,
};
pub use epilogue::Epilogue;
pub use geometry::{ConvGeometry, out_len};
pub use im2col::{col2im, im2col};
pub use layer::Conv2d;
pub use panel_gemm::{
    PANEL_M, PANEL_N, gemm_nt_acc, pack_transposed, panel_gemm, panel_index, panel_len,
    transposed_len,
};
pub use winograd::{
    WINOGRAD_POSITIONS, WinogradTile, WinogradTiles, winograd_grad_output, winograd_input,
    winograd_input_grad, winograd_len, winograd_output, winograd_plane, winograd_weight_grad,
    winograd_weights, winograd_weights_len,
};
