//! 2-D convolution: the [`Conv2d`] layer, im2col + GEMM, direct SIMD and Winograd kernels,
//! backward.
//!
//! The layer picks an algorithm per shape and pass ([`ConvAlgorithm`]): Winograd
//! F(2x2, 3x3) ([`winograd_input`] and the other `winograd_*` transforms, products on
//! [`panel_gemm`] / [`gemm_nt_acc`]) for 3x3 stride-1 layers with at least 16 channels, a
//! direct 3x3 stride-1 kernel ([`conv2d_direct_3x3`]) for those with fewer, im2col + GEMM
//! otherwise (1x1 stride-1 convolutions multiply the input directly, without im2col). Work
//! is split over the batch with rayon; when the batch is smaller than the thread count the
//! products themselves run in parallel instead. Each batch chunk owns its workspace, kept
//! between steps, so a training step allocates nothing once the buffers have grown.
//!
//! The kernels are public functions over slices and sizes: [`im2col`], [`col2im`],
//! [`conv2d_direct_3x3`] with [`pack_3x3_weights`] / [`pack_3x3_weights_adjoint`], the
//! Winograd transforms with [`WinogradTiles`], and the panel products.
//!
//! ```
//! use ember_layers::conv::{WinogradTiles, panel_gemm, panel_index, panel_len};
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
//! panel_gemm(2, 16, 3, &packed, &b, 16, &mut c, 16);
//! assert_eq!((c[0], c[16]), (6.0, 15.0));
//! // An 8x8 image padded by 1 has an 8x8 output: 4x4 tiles of 2x2.
//! let tiles = WinogradTiles::new(8, 8, ember_layers::Pair(1, 1)).unwrap();
//! assert_eq!(tiles.per_image(), 16);
//! ```

mod backward;
mod direct;
mod geometry;
mod im2col;
mod layer;
mod panel_gemm;
mod winograd;

pub use direct::{
    BLOCK_CO, conv2d_direct_3x3, conv2d_direct_3x3_weight_grad, direct_3x3_scratch_len,
    direct_3x3_weight_grad_scratch_len, pack_3x3_weights, pack_3x3_weights_adjoint, packed_3x3_len,
};
pub use geometry::{ConvGeometry, out_len};
pub use im2col::{col2im, im2col};
pub use layer::{Conv2d, ConvAlgorithm};
pub use panel_gemm::{
    PANEL_M, PANEL_N, gemm_nt_acc, pack_transposed, panel_gemm, panel_index, panel_len,
    transposed_len,
};
pub use winograd::{
    WINOGRAD_POSITIONS, WinogradTiles, winograd_grad_output, winograd_input, winograd_input_grad,
    winograd_len, winograd_output, winograd_plane, winograd_weight_grad, winograd_weights,
    winograd_weights_len,
};
