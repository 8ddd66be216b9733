//! Which convolution algorithm runs each pass, and the measurements behind the rule.
//!
//! Adding an algorithm means a variant here, its rule, and its own file (forward, input
//! gradient and weight gradient over [`ConvGeometry`]); the layer only dispatches.

use super::ConvGeometry;
use super::winograd::{WinogradTile, WinogradTiles};
use crate::Pair;
use ember_tensor::simd::Level;

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
    /// Winograd F(4x4, 3x3) for every pass: fewer products than F(2x2, 3x3) (2.25
    /// multiplications per output against 4) for larger transforms and larger rounding
    /// errors; covers and falls back as [`ConvAlgorithm::Winograd`] does. `Auto` takes it
    /// where Winograd applies with at least 64 channels in and out on outputs of at least
    /// 12x12, or 7x7 with 128 channels in and batches of 256, or 3x3 and 4x4 with 128
    /// channels in and batches of 1024 (see [`ConvAlgorithm::choose`]).
    Winograd4x4,
}

impl ConvAlgorithm {
    /// The Winograd variant of a Winograd algorithm, `None` for the others.
    pub fn winograd_tile(self) -> Option<WinogradTile> {
        match self {
            ConvAlgorithm::Winograd => Some(WinogradTile::F2),
            ConvAlgorithm::Winograd4x4 => Some(WinogradTile::F4),
            _ => None,
        }
    }

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
    /// it applies and Winograd does not; im2col + GEMM otherwise. With AVX-512 the direct
    /// kernel also takes layers of at most 32 input channels with outputs wider than 16.
    /// Of the two Winograd tiles, F(4x4, 3x3) from 64 channels (see `winograd4x4_wins`).
    pub fn choose(self, g: &ConvGeometry) -> ConvAlgorithm {
        match self {
            ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4x4 if Self::winograd_applies(g) => {
                self
            }
            ConvAlgorithm::Auto if Self::winograd_wins(g) => {
                if Self::winograd4x4_wins(g) {
                    ConvAlgorithm::Winograd4x4
                } else {
                    ConvAlgorithm::Winograd
                }
            }
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
        Self::winograd_applies(g)
            && small
            && g.in_channels >= 16
            && g.out_channels >= 16
            && !Self::direct_wins_wide(g)
    }

    /// Where F(4x4, 3x3) beats F(2x2, 3x3): at least 64 channels in and out (the products
    /// it saves outweigh its larger transforms), outputs of at least 7x7 (smaller ones leave
    /// most of a 4x4 tile unused), and with fewer than 128 channels in, outputs of at least
    /// 12x12. Measured on Zen 4 (1 thread, CPU time, forward + backward, GFLOP/s): 120
    /// against 106 with 64 channels on 15x15, 182 against 148 for 64 to 256 on 15x15,
    /// 148-154 against 123-125 with 256 on 7x7, 120-122 against 107-109 with 128 on 7x7,
    /// 194 against 162 with 128 on 16x16; with AVX2 and portable SIMD further ahead. From
    /// 64 channels on 8x8 forward + backward gains (134-139 against 126-131) but the forward
    /// pass alone loses with AVX-512 (115-124 against 130-133), so inference keeps F(2x2,
    /// 3x3) there; with 256 channels on 3x3 outputs the two tie. Below 12x12 a batch of 64
    /// over 2 threads gives each chunk 8 images, 32 tiles of F(4x4, 3x3) (half a pass), and
    /// there it lost (criterion, 2 threads, 256 channels on 8x8: 0.73x forward, 0.76x
    /// forward + backward), so small outputs take it only from batches of 256. On 3x3 and
    /// 4x4 outputs one tile of F(4x4, 3x3) (36 products) replaces four of F(2x2, 3x3) (64),
    /// but an image is one tile, so a chunk fills a pass only in large batches: with 256
    /// channels and a batch of 1024 (2 threads, `conv_speed`) forward + backward ran 1.06-1.38x
    /// F(2x2, 3x3)'s speed on 3x3 (five runs) and 1.08-1.12x on 4x4 (two), the forward pass
    /// alone 0.75-1.17x; at a batch of 256 the two were level. (On 5x5 and 6x6 outputs the two
    /// tiles need the same number of products.)
    fn winograd4x4_wins(g: &ConvGeometry) -> bool {
        let side = g.out_h().min(g.out_w());
        let deep = g.in_channels >= 128;
        g.in_channels >= 64
            && g.out_channels >= 64
            && (side >= 12
                || (side >= 7 && deep && g.batch >= 256)
                || ((3..=4).contains(&side) && deep && g.batch >= 1024))
    }

    /// Where the direct kernel beats Winograd although both channel counts are at least 16:
    /// with AVX-512's 6-vector tiles, at most 32 input channels and outputs wider than 16.
    /// Measured (1 thread, CPU time, batch 64, Xeon with AVX-512): 16, 24 and 32 channels
    /// on 31x31 and 32x32 outputs, forward 125-134 GFLOP/s against 75-97, weight gradient
    /// 82-84 against 64-73, input gradient 124-139 against 85-121; on 16x16 outputs the two
    /// tie over a training step (105 against 107 with 32 channels in).
    fn direct_wins_wide(g: &ConvGeometry) -> bool {
        ember_tensor::simd::level() == Level::Avx512
            && Self::direct_applies(g)
            && g.in_channels <= 32
            && g.out_w() > 16
    }

    /// The algorithm for the weight gradient. `Auto` takes Winograd where it takes it for
    /// the forward pass (weight gradient 210-280 GFLOP/s on the four deeper shapes against
    /// 159-194 for the direct kernel), the direct kernel for outputs at least 12 wide
    /// otherwise (the first layer: 64-74 against Winograd's 36; on 8x8 outputs the direct
    /// kernel's per-weight horizontal sums cost more than GEMM's packing), im2col + GEMM
    /// for the rest.
    pub fn choose_weight_grad(self, g: &ConvGeometry) -> ConvAlgorithm {
        let direct = Self::direct_applies(g);
        let forward = self.choose(g);
        match self {
            ConvAlgorithm::Auto | ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4x4
                if forward.winograd_tile().is_some() =>
            {
                forward
            }
            ConvAlgorithm::Direct3x3 if direct => ConvAlgorithm::Direct3x3,
            ConvAlgorithm::Auto if direct && g.out_w() >= 12 => ConvAlgorithm::Direct3x3,
            _ => ConvAlgorithm::Im2colGemm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_tensor::simd::with_level;

    fn conv3x3(cin: usize, hw: usize, cout: usize) -> ConvGeometry {
        ConvGeometry {
            batch: 8,
            in_channels: cin,
            height: hw,
            width: hw,
            out_channels: cout,
            kernel: Pair(3, 3),
            stride: Pair(1, 1),
            padding: Pair(1, 1),
            dilation: Pair(1, 1),
            groups: 1,
        }
    }

    /// The direct kernel takes the wide, shallow layers only where the level has AVX-512.
    #[test]
    fn auto_rule_by_level() {
        let wide = conv3x3(24, 31, 64);
        let narrow = conv3x3(32, 16, 64);
        let deep = conv3x3(64, 32, 64);
        let tiny = conv3x3(64, 4, 64);
        for level in Level::available() {
            with_level(level, || {
                let direct = level == Level::Avx512;
                let want = if direct {
                    ConvAlgorithm::Direct3x3
                } else {
                    ConvAlgorithm::Winograd
                };
                assert_eq!(ConvAlgorithm::Auto.choose(&wide), want, "{level}");
                assert_eq!(
                    ConvAlgorithm::Auto.choose_weight_grad(&wide),
                    want,
                    "{level}"
                );
                assert_eq!(ConvAlgorithm::Auto.choose(&narrow), ConvAlgorithm::Winograd);
                assert_eq!(
                    ConvAlgorithm::Auto.choose(&deep),
                    ConvAlgorithm::Winograd4x4
                );
                assert_eq!(ConvAlgorithm::Auto.choose(&tiny), ConvAlgorithm::Winograd);
                assert_eq!(
                    ConvAlgorithm::Auto.choose(&conv3x3(3, 32, 32)),
                    ConvAlgorithm::Direct3x3
                );
            });
        }
    }
}
