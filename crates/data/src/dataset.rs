//! The in-memory dataset: u8 pixels in NCHW order, one label per image, class names.

use ember_tensor::Rng;

use crate::DataError;

/// Images as u8 pixels (NCHW, one contiguous buffer), a label per image and the class names.
///
/// Pixels stay u8 in memory (CIFAR-10's training set is 150 MB, not 600 MB of f32); the
/// [`Loader`](crate::Loader) converts each batch to f32 as it goes.
///
/// ```
/// use ember_data::Dataset;
/// let pixels = vec![0u8; 4 * 2 * 2]; // 4 grayscale 2x2 images
/// let ds = Dataset::new([1, 2, 2], pixels, vec![0, 1, 0, 1], vec!["a".into(), "b".into()])?;
/// assert_eq!(ds.len(), 4);
/// assert_eq!(ds.class_counts(), vec![2, 2]);
/// let (train, val) = ds.split(0.5, 7, true);
/// assert_eq!((train.len(), val.len()), (2, 2));
/// # Ok::<(), ember_data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    shape: [usize; 3],
    pixels: Vec<u8>,
    labels: Vec<usize>,
    classes: Vec<String>,
}

impl Dataset {
    /// A dataset of `labels.len()` images of `shape` = (C, H, W). Fails if the pixel count
    /// does not match, a dimension is zero, or a label is not below `classes.len()`.
    pub fn new(
        shape: [usize; 3],
        pixels: Vec<u8>,
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Result<Self, DataError> {
        let item: usize = shape.iter().product();
        if item == 0 {
            return Err(DataError::new(
                "dataset",
                "non-zero image dimensions (C, H, W)",
                format!("{shape:?}"),
            ));
        }
        if Some(pixels.len()) != labels.len().checked_mul(item) {
            return Err(DataError::new(
                "dataset",
                format!(
                    "{} pixels ({} images of {shape:?})",
                    labels.len().saturating_mul(item),
                    labels.len()
                ),
                format!("{} pixels", pixels.len()),
            ));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l >= classes.len())
        {
            return Err(DataError::new(
                "dataset",
                format!("labels below {} (the number of classes)", classes.len()),
                format!("label {l} at image {i}"),
            ));
        }
        Ok(Dataset {
            shape,
            pixels,
            labels,
            classes,
        })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The image shape (C, H, W).
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The number of pixels (u8 values) in one image: C * H * W.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i` (CHW order). Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The label of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    /// All labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The class names; label `k` names `classes()[k]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// A new dataset of the images at `indices`, in that order. Panics on an index out of range.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Dataset {
            shape: self.shape,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }

    /// A seeded random sample of `count` images (all of them when `count >= len`) that keeps
    /// the class proportions: each class gives its share of `count`, rounded by largest
    /// remainders so the total is exact. The images keep their original order.
    pub fn stratified_sample(&self, count: usize, seed: u64) -> Dataset {
        if count >= self.len() {
            return self.clone();
        }
        let mut by_class = vec![Vec::new(); self.classes.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l].push(i);
        }
        // Quotas: floor of each share, then one more to the largest remainders.
        let n = self.len() as u128;
        let shares: Vec<(usize, u128)> = by_class
            .iter()
            .map(|g| {
                let exact = g.len() as u128 * count as u128;
                ((exact / n) as usize, exact % n)
            })
            .collect();
        let mut quota: Vec<usize> = shares.iter().map(|s| s.0).collect();
        let short = count - quota.iter().sum::<usize>();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(a.cmp(&b)));
        for &k in order.iter().take(short) {
            quota[k] += 1;
        }
        let rng = Rng::new(seed);
        let mut keep = Vec::with_capacity(count);
        for (k, mut group) in by_class.into_iter().enumerate() {
            rng.fork(k as u64).shuffle(&mut group);
            keep.extend_from_slice(&group[..quota[k]]);
        }
        keep.sort_unstable();
        self.subset(&keep)
    }

    /// Splits into (train, validation), with about `val_fraction` of the images (rounded) in
    /// validation, chosen at random from `seed`. With `stratified`, each class is split
    /// separately, so both parts keep the class proportions. Both parts keep the original
    /// image order. `val_fraction` is clamped to [0, 1].
    pub fn split(&self, val_fraction: f64, seed: u64, stratified: bool) -> (Dataset, Dataset) {
        let frac = if val_fraction.is_nan() {
            0.0
        } else {
            val_fraction.clamp(0.0, 1.0)
        };
        let rng = Rng::new(seed);
        let mut is_val = vec![false; self.len()];
        let groups: Vec<Vec<usize>> = if stratified {
            let mut g = vec![Vec::new(); self.classes.len()];
            for (i, &l) in self.labels.iter().enumerate() {
                g[l].push(i);
            }
            g
        } else {
            vec![(0..self.len()).collect()]
        };
        for (k, mut group) in groups.into_iter().enumerate() {
            rng.fork(k as u64).shuffle(&mut group);
            let take = (group.len() as f64 * frac).round() as usize;
            for &i in &group[..take.min(group.len())] {
                is_val[i] = true;
            }
        }
        let (val, train): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| is_val[i]);
        (self.subset(&train), self.subset(&val))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize, classes: usize) -> Dataset {
        let pixels: Vec<u8> = (0..n * 3).map(|i| (i / 3) as u8).collect();
        let labels = (0..n).map(|i| i % classes).collect();
        let names = (0..classes).map(|c| c.to_string()).collect();
        Dataset::new([3, 1, 1], pixels, labels, names).unwrap()
    }

    #[test]
    fn new_rejects_inconsistent_input() {
        assert!(Dataset::new([1, 2, 2], vec![0; 7], vec![0, 0], vec!["a".into()]).is_err());
        assert!(Dataset::new([1, 2, 2], vec![0; 8], vec![0, 1], vec!["a".into()]).is_err());
        assert!(Dataset::new([0, 2, 2], vec![], vec![], vec!["a".into()]).is_err());
    }

    #[test]
    fn subset_copies_images_and_labels() {
        let ds = toy(10, 3);
        let s = ds.subset(&[7, 2]);
        assert_eq!(s.image(0), &[7, 7, 7]);
        assert_eq!(s.image(1), &[2, 2, 2]);
        assert_eq!(s.labels(), &[1, 2]);
    }

    #[test]
    fn split_is_a_seeded_partition() {
        let ds = toy(100, 4);
        let (t, v) = ds.split(0.2, 1, false);
        assert_eq!((t.len(), v.len()), (80, 20));
        let mut ids: Vec<u8> = t
            .pixels()
            .iter()
            .chain(v.pixels())
            .step_by(3)
            .copied()
            .collect();
        ids.sort();
        assert_eq!(ids, (0..100).collect::<Vec<u8>>());
        assert_eq!(ds.split(0.2, 1, false), (t.clone(), v.clone()));
        assert_ne!(ds.split(0.2, 2, false).1, v);
    }

    #[test]
    fn stratified_sample_is_exact_seeded_and_proportional() {
        // 103 images over 4 classes (26, 26, 26, 25), in class order as a folder lists them.
        let pixels: Vec<u8> = (0..103 * 3).map(|i| (i / 3) as u8).collect();
        let labels: Vec<usize> = (0..103).map(|i| i * 4 / 103).collect();
        let names = (0..4).map(|c| c.to_string()).collect();
        let ds = Dataset::new([3, 1, 1], pixels, labels, names).unwrap();
        for count in [0, 1, 5, 40, 102] {
            let s = ds.stratified_sample(count, 7);
            assert_eq!(s.len(), count);
            for (c, &k) in s.class_counts().iter().enumerate() {
                let share = ds.class_counts()[c] as f64 * count as f64 / 103.0;
                assert!(
                    (k as f64 - share).abs() < 1.0,
                    "class {c}: {k} for a share of {share}"
                );
            }
            // Original order, no repeats.
            let ids: Vec<u8> = s.pixels().iter().step_by(3).copied().collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(ds.stratified_sample(40, 7), ds.stratified_sample(40, 7));
        assert_ne!(ds.stratified_sample(40, 7), ds.stratified_sample(40, 8));
        assert_eq!(ds.stratified_sample(500, 1), ds);
        // Not the first images in class order: every class is there.
        assert!(
            ds.stratified_sample(8, 1)
                .class_counts()
                .iter()
                .all(|&k| k == 2)
        );
    }

    #[test]
    fn stratified_split_keeps_class_proportions() {
        let ds = toy(100, 4); // 25 per class
        let (t, v) = ds.split(0.2, 3, true);
        assert_eq!(v.class_counts(), vec![5, 5, 5, 5]);
        assert_eq!(t.class_counts(), vec![20, 20, 20, 20]);
    }
}
