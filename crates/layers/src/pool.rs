//! Max, average and global average pooling layers with vectorised kernels.
