//! 2-D convolution: the [`Conv2d`] layer, im2col + GEMM and direct SIMD kernels, backward.
//!
//! The layer picks an algorithm per shape ([`ConvAlgorithm`]): a direct 3x3 stride-1
//! kernel ([`conv2d_direct_3x3`]) where it is measured to win, im2col + GEMM otherwise
//! (1x1 stride-1 convolutions multiply the input directly, without im2col). Work is split
//! over the batch with rayon; when the batch is smaller than the thread count the GEMMs
//! themselves run in parallel instead. Each batch chunk owns its workspace, kept between
//! steps, so a training step allocates nothing once the buffers have grown.
//!
//! The kernels are public functions over slices and sizes: [`im2col`], [`col2im`],
//! [`conv2d_direct_3x3`] with [`pack_3x3_weights`] / [`pack_3x3_weights_adjoint`].

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
