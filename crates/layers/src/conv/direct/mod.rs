//! Direct 3x3 stride-1 convolution: the forward pass, the input gradient (the adjoint
//! convolution: flipped kernel, swapped channels, padding `2 - p`) and the weight gradient,
//! on the register-blocked kernels of [`kernels`].

mod kernels;

pub use kernels::{
    BLOCK_CO, conv2d_direct_3x3, conv2d_direct_3x3_weight_grad, direct_3x3_scratch_len,
    direct_3x3_weight_grad_scratch_len, pack_3x3_weights, packed_3x3_len,
};

use ember_tensor::simd_dispatch;

use super::ConvGeometry;
use super::chunk::{BackwardImages, ForwardImages, grow};
use super::epilogue::Epilogue;
use crate::Pair;
use kernels::{forward_image, weight_grad_images};

/// The direct kernel's workspace of a batch chunk.
#[derive(Default)]
pub(super) struct DirectScratch {
    /// Zero-padded input planes (forward), or output-gradient planes (input gradient).
    padded: Vec<f32>,
    /// Padded inputs and cut output gradients of a weight-gradient call.
    weight_grad: Vec<f32>,
}

/// Packs `w` (OIHW) for the forward pass into `packed`.
pub(super) fn pack_forward(g: &ConvGeometry, w: &[f32], packed: &mut Vec<f32>) {
    let (cout, cin) = (g.out_channels, g.in_channels);
    pack_3x3_weights(w, cout, cin, false, grow(packed, packed_3x3_len(cout, cin)));
}

/// Packs `w` (OIHW) for the input gradient (the adjoint convolution) into `packed`.
pub(super) fn pack_input_grad(g: &ConvGeometry, w: &[f32], packed: &mut Vec<f32>) {
    let (cout, cin) = (g.out_channels, g.in_channels);
    pack_3x3_weights(w, cout, cin, true, grow(packed, packed_3x3_len(cin, cout)));
}

/// The input gradient of a 3x3 stride-1 convolution is a 3x3 stride-1 convolution of the
/// output gradient with the flipped, transposed kernel and padding `2 - p`.
fn adjoint(g: &ConvGeometry) -> ConvGeometry {
    ConvGeometry {
        in_channels: g.out_channels,
        height: g.out_h(),
        width: g.out_w(),
        out_channels: g.in_channels,
        padding: Pair(2 - g.padding.0, 2 - g.padding.1),
        ..*g
    }
}

/// Forward of the images of `f` into `ys`, `f.weights` from [`pack_forward`].
pub(super) fn forward(f: &ForwardImages<'_>, ys: &mut [f32], s: &mut DirectScratch) {
    let scratch = grow(&mut s.padded, direct_3x3_scratch_len(f.g));
    let images =
        f.x.chunks_exact(f.g.in_item())
            .zip(ys.chunks_exact_mut(f.g.out_item()));
    simd_dispatch!(s => {
        for (x, y) in images {
            forward_image(s, &ForwardImages { x, ..*f }, scratch, y);
        }
    })
}

/// Backward of a group of images: adds their weight gradient to the OIHW `weight_sum`, and/or
/// writes their input gradient to `gx` (`packed` from [`pack_input_grad`]).
pub(super) fn backward(
    b: &BackwardImages<'_>,
    packed: &[f32],
    s: &mut DirectScratch,
    gx: Option<&mut [f32]>,
    weight_sum: Option<&mut [f32]>,
) {
    let g = ConvGeometry {
        batch: b.images,
        ..*b.g
    };
    if let Some(sum) = weight_sum {
        let scratch = grow(&mut s.weight_grad, direct_3x3_weight_grad_scratch_len(&g));
        conv2d_direct_3x3_weight_grad(&g, b.x, b.gy, scratch, sum);
    }
    if let Some(gx) = gx {
        let adj = adjoint(&g);
        let scratch = grow(&mut s.padded, direct_3x3_scratch_len(&adj));
        let images =
            b.gy.chunks_exact(g.out_item())
                .zip(gx.chunks_exact_mut(g.in_item()));
        simd_dispatch!(s => {
            for (gy, gxi) in images {
                let image = ForwardImages::new(&adj, gy, packed, Epilogue::NONE, false);
                forward_image(s, &image, scratch, gxi);
            }
        })
    }
}

/// Images per backward call: see [`weight_grad_images`].
pub(super) fn images_per_call(g: &ConvGeometry) -> usize {
    weight_grad_images(g.height, g.width, g.padding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::conv::{conv2d_backward, conv2d_forward};
    use ember_tensor::simd::{Level, with_level};
    use proptest::prelude::*;

    fn max_rel_err(got: &[f32], want: &[f64]) -> f64 {
        got.iter()
            .zip(want)
            .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
            .fold(0.0, f64::max)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The forward kernel (with bias and ReLU), its adjoint form and the weight gradient
        /// against the f64 reference, at every level: odd widths around both vector sizes
        /// (row tails), channel counts that leave a partial block of BLOCK_CO, padding 0-2.
        #[test]
        fn kernels_match_reference_at_every_level(
            cin in 1usize..=5, cout in 1usize..=9, h in 1usize..=9, w in 1usize..=35,
            ph in 0usize..=2, pw in 0usize..=2, images in 1usize..=3, relu in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let g = ConvGeometry {
                batch: images, in_channels: cin, height: h, width: w, out_channels: cout,
                kernel: Pair(3, 3), stride: Pair(1, 1), padding: Pair(ph, pw),
                dilation: Pair(1, 1), groups: 1,
            };
            if g.validate().is_err() {
                return Ok(());
            }
            let mut rng = ember_tensor::Rng::new(seed);
            let mut randv = |n: usize| (0..n).map(|_| rng.normal()).collect::<Vec<f32>>();
            let (x, wt, bias, gy) = (randv(images * g.in_item()), randv(cout * cin * 9), randv(cout), randv(images * g.out_item()));
            let f64s = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
            let mut want_y = conv2d_forward(&g, &f64s(&x), &f64s(&wt), Some(&f64s(&bias)));
            if relu {
                want_y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            let want = conv2d_backward(&g, &f64s(&x), &f64s(&wt), &f64s(&gy));
            let mut packed = vec![0.0; packed_3x3_len(cout, cin)];
            pack_3x3_weights(&wt, cout, cin, false, &mut packed);
            let mut packed_adj = vec![0.0; packed_3x3_len(cin, cout)];
            pack_3x3_weights(&wt, cout, cin, true, &mut packed_adj);
            let one = ConvGeometry { batch: 1, ..g };
            let adj = adjoint(&one);
            for level in Level::available() {
                let (mut y, mut gx, mut gw) = (vec![f32::NAN; gy.len()], vec![f32::NAN; x.len()], vec![0.0f32; wt.len()]);
                with_level(level, || {
                    let mut scratch = vec![f32::NAN; direct_3x3_scratch_len(&one).max(direct_3x3_scratch_len(&adj))];
                    let ep = Epilogue { bias: Some(&bias), relu };
                    for n in 0..images {
                        let (xi, yi) = (&x[n * g.in_item()..][..g.in_item()], &mut y[n * g.out_item()..][..g.out_item()]);
                        conv2d_direct_3x3(&one, xi, &packed, ep, &mut scratch, yi);
                        let (gyi, gxi) = (&gy[n * g.out_item()..][..g.out_item()], &mut gx[n * g.in_item()..][..g.in_item()]);
                        conv2d_direct_3x3(&adj, gyi, &packed_adj, Epilogue::NONE, &mut scratch, gxi);
                    }
                    let mut wscratch = vec![f32::NAN; direct_3x3_weight_grad_scratch_len(&g)];
                    conv2d_direct_3x3_weight_grad(&g, &x, &gy, &mut wscratch, &mut gw);
                });
                prop_assert!(max_rel_err(&y, &want_y) <= 1e-4, "{level}: forward");
                prop_assert!(max_rel_err(&gx, &want.input) <= 1e-4, "{level}: input gradient");
                prop_assert!(max_rel_err(&gw, &want.weight) <= 1e-4, "{level}: weight gradient");
            }
        }
    }
}
