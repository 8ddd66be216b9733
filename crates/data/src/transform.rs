//! Pixel transforms: u8 to normalised f32, and seeded augmentation (random crop with
//! padding, horizontal flip, cutout), fused into one pass per image.

use ember_tensor::Rng;
use rayon::prelude::*;

use crate::{DataError, Dataset};

/// Per-channel normalisation: pixels are scaled to [0, 1], then `(x - mean[c]) / std[c]`.
/// A one-element `mean`/`std` applies to every channel.
///
/// ```
/// use ember_data::Normalize;
/// let n = Normalize { mean: vec![0.5], std: vec![0.25] };
/// let mut out = [0.0; 2];
/// n.apply(&[0, 255], 1, &mut out);
/// assert_eq!(out, [-2.0, 2.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    /// Per-channel mean of the [0, 1]-scaled pixels.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the [0, 1]-scaled pixels.
    pub std: Vec<f32>,
}

impl Default for Normalize {
    /// Scaling to [0, 1] only.
    fn default() -> Self {
        Normalize {
            mean: vec![0.0],
            std: vec![1.0],
        }
    }
}

impl Normalize {
    /// The exact per-channel mean and (population) standard deviation of a dataset's pixels
    /// scaled to [0, 1]. A channel with zero spread gets std 1.
    pub fn from_dataset(ds: &Dataset) -> Normalize {
        let [c, h, w] = ds.shape();
        let plane = h * w;
        let hist = ds
            .pixels()
            .par_chunks(c * plane * 64)
            .map(|chunk| {
                let mut hist = vec![[0u64; 256]; c];
                for img in chunk.chunks_exact(c * plane) {
                    for (ch, px) in img.chunks_exact(plane).enumerate() {
                        for &p in px {
                            hist[ch][p as usize] += 1;
                        }
                    }
                }
                hist
            })
            .reduce(
                || vec![[0u64; 256]; c],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(&b) {
                        for (s, t) in x.iter_mut().zip(y) {
                            *s += t;
                        }
                    }
                    a
                },
            );
        let mut mean = Vec::with_capacity(c);
        let mut std = Vec::with_capacity(c);
        for h in &hist {
            let n: u64 = h.iter().sum();
            let (s, s2) = h
                .iter()
                .enumerate()
                .fold((0.0f64, 0.0f64), |(s, s2), (v, &k)| {
                    let x = v as f64 / 255.0;
                    (s + x * k as f64, s2 + x * x * k as f64)
                });
            let m = if n > 0 { s / n as f64 } else { 0.0 };
            let var = if n > 0 {
                (s2 / n as f64 - m * m).max(0.0)
            } else {
                0.0
            };
            let sd = var.sqrt();
            mean.push(m as f32);
            std.push(if sd > 1e-12 { sd as f32 } else { 1.0 });
        }
        Normalize { mean, std }
    }

    /// Checks that this fits images with `channels` channels and that every std is positive.
    pub fn check(&self, channels: usize) -> Result<(), DataError> {
        let fits = |n: usize| n == 1 || n == channels;
        if !fits(self.mean.len()) || !fits(self.std.len()) {
            let expected = if channels == 1 {
                "1 mean and 1 standard deviation".to_string()
            } else {
                format!("1 or {channels} means and as many standard deviations")
            };
            return Err(DataError::new(
                "normalisation",
                expected,
                format!(
                    "{} means and {} standard deviations",
                    self.mean.len(),
                    self.std.len()
                ),
            ));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::new(
                "normalisation",
                "finite means",
                format!("{m}"),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(DataError::new(
                "normalisation",
                "positive finite standard deviations",
                format!("{s}"),
            ));
        }
        Ok(())
    }

    /// One 256-entry lookup table per channel: the f32 value of each u8 pixel.
    pub fn tables(&self, channels: usize) -> Vec<[f32; 256]> {
        (0..channels)
            .map(|c| {
                let m = self.mean[if self.mean.len() == 1 { 0 } else { c }];
                let s = self.std[if self.std.len() == 1 { 0 } else { c }];
                std::array::from_fn(|v| (v as f32 / 255.0 - m) / s)
            })
            .collect()
    }

    /// Normalises one CHW image of `channels` channels into `out` (same length).
    pub fn apply(&self, pixels: &[u8], channels: usize, out: &mut [f32]) {
        let plane = pixels.len() / channels.max(1);
        for ((px, o), t) in pixels
            .chunks(plane)
            .zip(out.chunks_mut(plane))
            .zip(self.tables(channels))
        {
            for (o, &p) in o.iter_mut().zip(px) {
                *o = t[p as usize];
            }
        }
    }
}

/// Training-time augmentation; the default does nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Random crop back to the original size after padding each side with this many zero
    /// (black) pixels; 0 disables it. CIFAR's usual value is 4.
    pub crop_padding: usize,
    /// Random shift by up to this many pixels each way, the edges reflected (a random crop
    /// of the image padded by reflection, as fast CIFAR-10 recipes use with 2); 0 disables
    /// it. Applies instead of `crop_padding` when both are set.
    pub translate: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
    /// With `hflip`: instead of a coin per image and epoch, each image is mirrored every
    /// other epoch, from a random start of its own (alternating flips: every image is seen
    /// both ways in any two consecutive epochs).
    pub alternate_flip: bool,
    /// Side of a square set to 0 after normalisation, centred at a uniform random pixel and
    /// clipped at the borders (DeVries & Taylor 2017); 0 disables it.
    pub cutout: usize,
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Self {
        Augment::default()
    }

    /// The usual CIFAR recipe: crop with 4 pixels of padding and horizontal flip.
    pub fn crop_flip() -> Self {
        Augment {
            crop_padding: 4,
            hflip: true,
            ..Augment::default()
        }
    }

    /// True if this changes nothing.
    pub fn is_none(&self) -> bool {
        *self == Augment::default()
    }
}

/// Augments and normalises one CHW u8 image of `shape` into `out`, drawing from `rng` in a
/// fixed order (shift, flip, cutout centre). `flip` forces the mirror decision (the loader's
/// alternating flips); `None` draws it when `aug.hflip`. `tables` come from
/// [`Normalize::tables`].
pub fn augment_image(
    src: &[u8],
    shape: [usize; 3],
    aug: &Augment,
    tables: &[[f32; 256]],
    rng: &mut Rng,
    flip: Option<bool>,
    out: &mut [f32],
) {
    let [c, h, w] = shape;
    let reflect = aug.translate > 0;
    let pad = if reflect {
        aug.translate
    } else {
        aug.crop_padding
    };
    let (dy, dx) = if pad > 0 {
        let span = 2 * pad as u64 + 1;
        (
            rng.below(span) as isize - pad as isize,
            rng.below(span) as isize - pad as isize,
        )
    } else {
        (0, 0)
    };
    let drawn = aug.hflip && rng.next_u64() & 1 == 1;
    let flip = flip.unwrap_or(drawn);
    // Where a shifted coordinate lands: reflected back inside (translate), or outside (crop).
    let at = |i: isize, n: usize| -> Option<usize> {
        let n = n as isize;
        match i {
            _ if (0..n).contains(&i) => Some(i as usize),
            _ if reflect => Some(reflect_index(i, n).clamp(0, n - 1) as usize),
            _ => None,
        }
    };
    let plane = h * w;
    for ch in 0..c {
        let t = &tables[ch];
        let fill = t[0];
        let src = &src[ch * plane..(ch + 1) * plane];
        let out = &mut out[ch * plane..(ch + 1) * plane];
        for y in 0..h {
            let row = &mut out[y * w..(y + 1) * w];
            let Some(sy) = at(y as isize + dy, h) else {
                row.fill(fill);
                continue;
            };
            let srow = &src[sy * w..(sy + 1) * w];
            if dx == 0 && !flip {
                for (o, &p) in row.iter_mut().zip(srow) {
                    *o = t[p as usize];
                }
                continue;
            }
            for (x, o) in row.iter_mut().enumerate() {
                let xx = if flip { w - 1 - x } else { x };
                *o = match at(xx as isize + dx, w) {
                    Some(sx) => t[srow[sx] as usize],
                    None => fill,
                };
            }
        }
    }
    if aug.cutout > 0 {
        let cy = rng.below(h as u64) as usize;
        let cx = rng.below(w as u64) as usize;
        let half = aug.cutout / 2;
        let (y0, y1) = (
            cy.saturating_sub(half),
            (cy.saturating_sub(half) + aug.cutout).min(h),
        );
        let (x0, x1) = (
            cx.saturating_sub(half),
            (cx.saturating_sub(half) + aug.cutout).min(w),
        );
        for ch in 0..c {
            for y in y0..y1 {
                out[ch * plane + y * w + x0..ch * plane + y * w + x1].fill(0.0);
            }
        }
    }
}

/// Index `i` reflected about the edge elements of `0..n`, as PyTorch's `reflect` padding
/// reads it: -1 -> 1, n -> n - 2; indices in `0..n` unchanged. One reflection only: an
/// index further out than `n - 1` from the edge stays outside `0..n`.
pub fn reflect_index(i: isize, n: isize) -> isize {
    if i < 0 {
        -i
    } else if i >= n {
        2 * n - 2 - i
    } else {
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious per-pixel reference: pad (zeros, or by reflection as PyTorch's
    /// `F.pad(mode="reflect")`), crop, flip, normalise, cut out.
    fn reference(
        src: &[u8],
        [c, h, w]: [usize; 3],
        aug: &Augment,
        n: &Normalize,
        rng: &mut Rng,
        forced_flip: Option<bool>,
    ) -> Vec<f32> {
        let reflect = aug.translate > 0;
        let pad = if reflect {
            aug.translate
        } else {
            aug.crop_padding
        };
        let (oy, ox) = if pad > 0 {
            let s = 2 * pad as u64 + 1;
            (rng.below(s) as usize, rng.below(s) as usize)
        } else {
            (0, 0)
        };
        let flip = forced_flip.unwrap_or(aug.hflip && rng.next_u64() & 1 == 1);
        let (ph, pw) = (h + 2 * pad, w + 2 * pad);
        let mut out = vec![0.0; c * h * w];
        // Reflection about the edge pixel: -1 -> 1, n -> n - 2.
        let mirror = |i: isize, n: usize| -> usize {
            let n = n as isize;
            (if i < 0 {
                -i
            } else if i >= n {
                2 * n - 2 - i
            } else {
                i
            }) as usize
        };
        for ch in 0..c {
            let mut padded = vec![0u8; ph * pw];
            for y in 0..ph {
                for x in 0..pw {
                    let (sy, sx) = (y as isize - pad as isize, x as isize - pad as isize);
                    let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                    if inside || reflect {
                        let (sy, sx) = (mirror(sy, h), mirror(sx, w));
                        padded[y * pw + x] = src[ch * h * w + sy * w + sx];
                    }
                }
            }
            for y in 0..h {
                for x in 0..w {
                    let xs = if flip { w - 1 - x } else { x };
                    let v = padded[(y + oy) * pw + xs + ox] as f32 / 255.0;
                    let m = n.mean[ch.min(n.mean.len() - 1)];
                    let s = n.std[ch.min(n.std.len() - 1)];
                    out[ch * h * w + y * w + x] = (v - m) / s;
                }
            }
        }
        if aug.cutout > 0 {
            let cy = rng.below(h as u64) as isize;
            let cx = rng.below(w as u64) as isize;
            let lo = |c: isize| (c - (aug.cutout / 2) as isize).max(0);
            for ch in 0..c {
                for y in 0..h as isize {
                    for x in 0..w as isize {
                        let (y0, x0) = (lo(cy), lo(cx));
                        if y >= y0
                            && y < y0 + aug.cutout as isize
                            && x >= x0
                            && x < x0 + aug.cutout as isize
                        {
                            out[ch * h * w + (y * w as isize + x) as usize] = 0.0;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn augment_matches_reference() {
        let mut data_rng = Rng::new(5);
        for (shape, aug) in [
            (
                [3, 7, 5],
                Augment {
                    crop_padding: 2,
                    hflip: true,
                    cutout: 3,
                    ..Augment::none()
                },
            ),
            (
                [1, 4, 9],
                Augment {
                    crop_padding: 4,
                    ..Augment::none()
                },
            ),
            (
                [3, 6, 6],
                Augment {
                    hflip: true,
                    cutout: 8,
                    ..Augment::none()
                },
            ),
            (
                [3, 7, 5],
                Augment {
                    translate: 2,
                    hflip: true,
                    ..Augment::none()
                },
            ),
            (
                [1, 4, 3],
                Augment {
                    translate: 2,
                    crop_padding: 4,
                    ..Augment::none()
                },
            ),
            ([2, 3, 3], Augment::none()),
        ] {
            let n = Normalize {
                mean: (0..shape[0]).map(|c| 0.1 * c as f32).collect(),
                std: vec![0.3; shape[0]],
            };
            let tables = n.tables(shape[0]);
            let len = shape.iter().product();
            for seed in 0..50 {
                let src: Vec<u8> = (0..len).map(|_| data_rng.below(256) as u8).collect();
                let forced = [None, Some(true), Some(false)][seed as usize % 3];
                let mut out = vec![f32::NAN; len];
                let mut rng = Rng::new(seed);
                augment_image(&src, shape, &aug, &tables, &mut rng, forced, &mut out);
                let want = reference(&src, shape, &aug, &n, &mut Rng::new(seed), forced);
                for (a, b) in out.iter().zip(&want) {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "{shape:?} {aug:?} seed {seed}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn from_dataset_matches_direct_computation() {
        let mut rng = Rng::new(1);
        let pixels: Vec<u8> = (0..100 * 2 * 3 * 3).map(|_| rng.below(256) as u8).collect();
        let ds = Dataset::new([2, 3, 3], pixels.clone(), vec![0; 100], vec!["x".into()]).unwrap();
        let n = Normalize::from_dataset(&ds);
        for c in 0..2 {
            let v: Vec<f64> = pixels
                .chunks(9)
                .skip(c)
                .step_by(2)
                .flatten()
                .map(|&p| p as f64 / 255.0)
                .collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            assert!((n.mean[c] as f64 - m).abs() < 1e-6 && (n.std[c] as f64 - s).abs() < 1e-6);
        }
        assert!(n.check(2).is_ok());
        assert!(n.check(3).is_err());
        assert!(
            Normalize {
                mean: vec![0.0],
                std: vec![0.0]
            }
            .check(1)
            .is_err()
        );
        let nan_mean = Normalize {
            mean: vec![f32::NAN],
            std: vec![1.0],
        };
        assert!(nan_mean.check(1).unwrap_err().to_string().contains("NaN"));
    }
}
