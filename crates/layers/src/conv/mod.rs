//! 2-D convolution: the `Conv2d` layer, im2col + GEMM and direct SIMD kernels, backward.
