//! Which convolution algorithm runs each pass, and the measurements behind the rule.
//!
//! Adding an algorithm means a variant here, its rule, and its own file (forward, input
//! gradient and weight gradient over [`ConvGeometry`]); the layer only dispatches.

use super::ConvGeometry;
use super::winograd::WinogradTiles;
use crate::Pair;

/// How a [`Conv2d`](super::Conv2d) computes its forward pass (and its input gradient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Choose per shape by the measured rule in [`ConvAlgorithm::choose`].
    Auto,
    /// im2col + GEMM (any configuration).
    Im2colGemm,
    /// The direct 3x3 stride-1 SIMD kernel; falls back to im2col + GEMM for shapes it does
    /// not cover (see [`ConvAlgorithm::direct_applies`]).
    Direct3x3,
    /// Winograd F(2x2, 3x3) for every pass; falls back to im2col + GEMM for shapes it does
    /// not cover (see [`ConvAlgorithm::winograd_applies`]).
    Winograd,
}

impl ConvAlgorithm {
    /// Whether the direct kernel covers `g`: 3x3 kernel, stride 1, dilation 1, one group,
    /// padding at most 2 (so that the input gradient is a direct 3x3 convolution too).
    pub fn direct_applies(g: &ConvGeometry) -> bool {
        g.kernel == Pair(3, 3)
            && g.stride == Pair(1, 1)
            && g.dilation == Pair(1, 1)
            && g.groups == 1
            && g.padding.0 <= 2
            && g.padding.1 <= 2
    }

    /// Whether Winograd F(2x2, 3x3) covers `g`: 3x3 kernel, stride 1, dilation 1, one
    /// group (any padding).
    pub fn winograd_applies(g: &ConvGeometry) -> bool {
        g.kernel == Pair(3, 3)
            && g.stride == Pair(1, 1)
            && g.dilation == Pair(1, 1)
            && g.groups == 1
            && WinogradTiles::new(g.height, g.width, g.padding).is_some()
    }

    /// The algorithm `Auto` resolves to for `g`'s forward pass and input gradient.
    /// Measured (`tests/conv_speed.rs`, 2 threads, the five CIFAR-sized shapes): Winograd
    /// wherever both channel counts are at least 16 (forward 248-354 GFLOP/s against
    /// 189-215 for the direct kernel, input gradient 266-354 against 187-217); the direct
    /// kernel for the 3-channel first layer (forward 142 against Winograd's 64) and wherever
    /// it applies and Winograd does not; im2col + GEMM otherwise.
    pub fn choose(self, g: &ConvGeometry) -> ConvAlgorithm {
        match self {
            ConvAlgorithm::Winograd if Self::winograd_applies(g) => ConvAlgorithm::Winograd,
            ConvAlgorithm::Auto if Self::winograd_wins(g) => ConvAlgorithm::Winograd,
            ConvAlgorithm::Auto | ConvAlgorithm::Direct3x3 if Self::direct_applies(g) => {
                ConvAlgorithm::Direct3x3
            }
            _ => ConvAlgorithm::Im2colGemm,
        }
    }

    /// Where `Auto` takes Winograd: at least 16 channels in and out, and outputs of at most
    /// 64x64 (a pass holds at least one whole image's tiles, so larger images would make
    /// its buffers large; they take the direct kernel).
    fn winograd_wins(g: &ConvGeometry) -> bool {
        let small = WinogradTiles::new(g.height, g.width, g.padding)
            .is_some_and(|t| t.per_image() <= 32 * 32);
        Self::winograd_applies(g) && small && g.in_channels >= 16 && g.out_channels >= 16
    }

    /// The algorithm for the weight gradient. `Auto` takes Winograd where it takes it for
    /// the forward pass (weight gradient 210-280 GFLOP/s on the four deeper shapes against
    /// 159-194 for the direct kernel), the direct kernel for outputs at least 12 wide
    /// otherwise (the first layer: 64-74 against Winograd's 36; on 8x8 outputs the direct
    /// kernel's per-weight horizontal sums cost more than GEMM's packing), im2col + GEMM
    /// for the rest.
    pub fn choose_weight_grad(self, g: &ConvGeometry) -> ConvAlgorithm {
        let direct = Self::direct_applies(g);
        match self {
            ConvAlgorithm::Auto | ConvAlgorithm::Winograd
                if self.choose(g) == ConvAlgorithm::Winograd =>
            {
                ConvAlgorithm::Winograd
            }
            ConvAlgorithm::Direct3x3 if direct => ConvAlgorithm::Direct3x3,
            ConvAlgorithm::Auto if direct && g.out_w() >= 12 => ConvAlgorithm::Direct3x3,
            _ => ConvAlgorithm::Im2colGemm,
        }
    }
}
