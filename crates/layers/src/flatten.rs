//! `Flatten`: NCHW to `[N, C*H*W]`.
