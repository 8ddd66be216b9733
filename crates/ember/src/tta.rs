//! Test-time augmentation: a batch's logits averaged over transformed copies of its images
//! (mirrored, shifted by a pixel), as fast CIFAR-10 recipes score their test sets.

use ember_layers::{Layer, Mode, Sequential};
use ember_tensor::Tensor;

use crate::config::Tta;

/// The model's logits for the normalised NCHW batch `x` under `tta`, in eval mode.
pub fn logits(model: &mut Sequential, x: &Tensor, tta: Tta) -> Tensor {
    match tta {
        Tta::None => model.forward(x, Mode::Eval).clone(),
        Tta::Flip => mirrored_mean(model, x),
        Tta::FlipTranslate => {
            // Half the image with its mirror, half the two one-pixel shifts with theirs.
            let mut out = mirrored_mean(model, x);
            let mut shifted = mirrored_mean(model, &shift(x, -1));
            add_scaled(&mut shifted, &mirrored_mean(model, &shift(x, 1)), 1.0);
            out.data_mut().iter_mut().for_each(|v| *v *= 0.5);
            add_scaled(&mut out, &shifted, 0.25);
            out
        }
    }
}

/// `(f(x) + f(mirror(x))) / 2`.
fn mirrored_mean(model: &mut Sequential, x: &Tensor) -> Tensor {
    let mut out = model.forward(x, Mode::Eval).clone();
    let flipped = model.forward(&mirror(x), Mode::Eval);
    out.data_mut()
        .iter_mut()
        .zip(flipped.data())
        .for_each(|(a, b)| *a = 0.5 * (*a + b));
    out
}

/// `a += scale * b`.
fn add_scaled(a: &mut Tensor, b: &Tensor, scale: f32) {
    a.data_mut()
        .iter_mut()
        .zip(b.data())
        .for_each(|(a, b)| *a += scale * b);
}

/// Each image mirrored left-right.
pub fn mirror(x: &Tensor) -> Tensor {
    let mut out = x.clone();
    let w = x.shape().dims().last().copied().unwrap_or(1).max(1);
    for row in out.data_mut().chunks_exact_mut(w) {
        row.reverse();
    }
    out
}

/// Each image moved by `by` pixels down and right (up and left when negative), the edges
/// reflected: `out[y][x] = in[r(y - by)][r(x - by)]` with `r` reflecting about the border
/// pixels (PyTorch's `reflect` padding then a crop).
pub fn shift(x: &Tensor, by: isize) -> Tensor {
    let mut out = x.clone();
    let dims = x.shape().dims().to_vec();
    let (h, w) = match dims[..] {
        [.., h, w] => (h, w),
        _ => return out,
    };
    if h < 2 || w < 2 {
        return out;
    }
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        ember_data::transform::reflect_index(i, n).clamp(0, n - 1) as usize
    };
    for (src, dst) in x
        .data()
        .chunks_exact(h * w)
        .zip(out.data_mut().chunks_exact_mut(h * w))
    {
        for y in 0..h {
            let sy = reflect(y as isize - by, h);
            for x in 0..w {
                dst[y * w + x] = src[sy * w + reflect(x as isize - by, w)];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_layers::{Flatten, Linear};

    fn image(h: usize, w: usize) -> Tensor {
        Tensor::from_vec([1, 1, h, w], (0..h * w).map(|v| v as f32).collect()).unwrap()
    }

    #[test]
    fn mirror_and_shift_move_pixels_as_documented() {
        let x = image(3, 4);
        assert_eq!(
            mirror(&x).data(),
            &[3., 2., 1., 0., 7., 6., 5., 4., 11., 10., 9., 8.]
        );
        // Down-right by one: row 0 is the reflection of row 1, column 0 of column 1.
        assert_eq!(
            shift(&x, 1).data(),
            &[5., 4., 5., 6., 1., 0., 1., 2., 5., 4., 5., 6.]
        );
        assert_eq!(
            shift(&x, -1).data(),
            &[5., 6., 7., 6., 9., 10., 11., 10., 5., 6., 7., 6.]
        );
    }

    /// On a linear model the augmented logits are the model of the averaged images, so the
    /// weights of the average can be checked exactly.
    #[test]
    fn logits_average_the_copies_with_their_weights() {
        let x = image(4, 5);
        let mut model = Sequential::new().add(Flatten).add(Linear::new(20, 3));
        let plain = model.forward(&x, Mode::Eval).clone();
        assert_eq!(logits(&mut model, &x, Tta::None).data(), plain.data());
        let mean = |imgs: &[(f32, Tensor)]| {
            let mut avg = Tensor::zeros([1, 1, 4, 5]);
            for (wgt, t) in imgs {
                for (a, b) in avg.data_mut().iter_mut().zip(t.data()) {
                    *a += wgt * b;
                }
            }
            avg
        };
        let flip_avg = mean(&[(0.5, x.clone()), (0.5, mirror(&x))]);
        let want = model.forward(&flip_avg, Mode::Eval).clone();
        let got = logits(&mut model, &x, Tta::Flip);
        for (g, w) in got.data().iter().zip(want.data()) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        let (a, b) = (shift(&x, -1), shift(&x, 1));
        let all = mean(&[
            (0.25, x.clone()),
            (0.25, mirror(&x)),
            (0.125, a.clone()),
            (0.125, mirror(&a)),
            (0.125, b.clone()),
            (0.125, mirror(&b)),
        ]);
        let want = model.forward(&all, Mode::Eval).clone();
        let got = logits(&mut model, &x, Tta::FlipTranslate);
        for (g, w) in got.data().iter().zip(want.data()) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
    }
}
