//! From Spark's image rows to Ember's pixels: checks each row against Spark's image schema,
//! reorders BGR(A) rows of pixels into RGB planes, and converts channels and sizes where the
//! dataset's shape asks for it, as image folders and `predict` do.

use std::collections::BTreeSet;

use image::{DynamicImage, GrayImage, RgbImage};

use super::columns::{Label, SparkImage, row_name};
use crate::DataError;
use crate::formats::folder::{self, ImageSize, MAX_INFERRED_SIDE, MAX_SIDE};

/// OpenCV's type code of 8-bit single-channel images, as Spark writes it in `mode`.
pub const CV_8UC1: i32 = 0;
/// OpenCV's type code of 8-bit 3-channel (BGR) images.
pub const CV_8UC3: i32 = 16;
/// OpenCV's type code of 8-bit 4-channel (BGRA) images.
pub const CV_8UC4: i32 = 24;

/// The most classes an integer label column may index (labels are class indices).
pub const MAX_CLASSES: u64 = 100_000;

/// The OpenCV type code Spark writes for `channels` 8-bit channels.
pub fn mode_for(channels: usize) -> Option<i32> {
    match channels {
        1 => Some(CV_8UC1),
        3 => Some(CV_8UC3),
        4 => Some(CV_8UC4),
        _ => None,
    }
}

/// Checks one row against Spark's image schema: a known 8-bit mode that agrees with
/// `nChannels`, sides from 1 to [`MAX_SIDE`], and `height * width * nChannels` data bytes.
/// Returns (channels, height, width).
pub fn check(file: &str, row: usize, img: &SparkImage) -> Result<[usize; 3], DataError> {
    let at = || row_name(file, row, img.origin.as_deref());
    if img.mode == -1 || img.height == -1 {
        return Err(DataError::new(
            at(),
            "a decoded image",
            "one Spark could not decode (mode -1, no data); filter such rows out, or read \
             with .option(\"dropInvalid\", True)",
        ));
    }
    let channels = match img.n_channels {
        1 | 3 | 4 => img.n_channels as usize,
        c => {
            return Err(DataError::new(
                at(),
                "nChannels 1, 3 or 4",
                format!("nChannels {c}"),
            ));
        }
    };
    if mode_for(channels) != Some(img.mode) {
        return Err(DataError::new(
            at(),
            format!(
                "mode {} (OpenCV CV_8UC{channels}) for {channels} channels of 8 bits",
                mode_for(channels).unwrap_or(-1)
            ),
            format!("mode {}", img.mode),
        ));
    }
    let side = |v: i32| {
        usize::try_from(v)
            .ok()
            .filter(|&s| s >= 1 && s <= MAX_SIDE as usize)
    };
    let (Some(h), Some(w)) = (side(img.height), side(img.width)) else {
        return Err(DataError::new(
            at(),
            format!("a height and width from 1 to {MAX_SIDE}"),
            format!("{}x{}", img.height, img.width),
        ));
    };
    let want = h * w * channels;
    if img.pixels().len() != want {
        return Err(DataError::new(
            at(),
            format!("{want} data bytes ({h}x{w}x{channels}, from height, width and nChannels)"),
            format!("{} bytes", img.pixels().len()),
        ));
    }
    Ok([channels, h, w])
}

/// The size a dataset's images are converted to: `size` if given; else `resize` as height
/// and width (channels as below); else the first image's height and width (each at most
/// [`MAX_INFERRED_SIDE`]) and 1 channel if it is grayscale, 3 otherwise.
pub fn target_size(
    file: &str,
    first: [usize; 3],
    size: Option<ImageSize>,
    resize: Option<[usize; 2]>,
) -> Result<ImageSize, DataError> {
    let c = if first[0] == 1 { 1 } else { 3 };
    let side = |v: usize| (1..=MAX_SIDE as usize).contains(&v);
    if let Some([c, h, w]) = size
        && !((c == 1 || c == 3) && side(h) && side(w))
    {
        return Err(DataError::new(
            file,
            format!("a size to convert to of 1 or 3 channels, sides from 1 to {MAX_SIDE}"),
            format!("{c}x{h}x{w}"),
        ));
    }
    if let Some([h, w]) = resize
        && !(side(h) && side(w))
    {
        return Err(DataError::new(
            file,
            format!("a size to resize to with sides from 1 to {MAX_SIDE}"),
            format!("{h}x{w}"),
        ));
    }
    match (size, resize) {
        (Some(s), _) => Ok(s),
        (None, Some([h, w])) => Ok([c, h, w]),
        (None, None) if first[1] > MAX_INFERRED_SIDE || first[2] > MAX_INFERRED_SIDE => {
            Err(DataError::new(
                file,
                format!(
                    "a first image of at most {MAX_INFERRED_SIDE}x{MAX_INFERRED_SIDE} pixels to \
                     take the dataset's image size from, or a size to resize every image to \
                     (`--image-size HxW`)"
                ),
                format!("{}x{}", first[1], first[2]),
            ))
        }
        (None, None) => Ok([c, first[1], first[2]]),
    }
}

/// Writes a checked row (`shape` as [`check`] returned it) into `out` as CHW pixels of
/// `target`: BGR(A) becomes RGB (alpha dropped), grayscale and colour are converted and
/// the size changed (bilinear) only where they differ, exactly as an image file is.
pub fn to_chw(img: &SparkImage, shape: [usize; 3], target: ImageSize, out: &mut [u8]) {
    let [c, h, w] = shape;
    let px = img.pixels();
    let plane = h * w;
    if [h, w] == [target[1], target[2]] && (c == 1) == (target[0] == 1) {
        if c == 1 {
            out.copy_from_slice(px);
        } else {
            let (r, rest) = out.split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            for (i, p) in px.chunks_exact(c).enumerate() {
                b[i] = p[0];
                g[i] = p[1];
                r[i] = p[2];
            }
        }
        return;
    }
    let (hu, wu) = (h as u32, w as u32);
    let decoded = if c == 1 {
        GrayImage::from_raw(wu, hu, px.to_vec()).map(DynamicImage::ImageLuma8)
    } else {
        let rgb: Vec<u8> = px
            .chunks_exact(c)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        RgbImage::from_raw(wu, hu, rgb).map(DynamicImage::ImageRgb8)
    };
    // from_raw fails only if the buffer is short, which `check` has ruled out.
    if let Some(decoded) = decoded {
        out.copy_from_slice(&folder::to_chw(decoded, target[0], target[1], target[2]));
    }
}

/// Which part of the dataset a row is in, and its position there: what [`classes`] asks
/// its caller to name in an error.
pub type RowAt<'a> = &'a dyn Fn(bool, usize) -> String;

/// The class names and the class index of every training and test row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classes {
    /// Class `k`'s name.
    pub names: Vec<String>,
    /// The training rows' class indices.
    pub train: Vec<usize>,
    /// The test rows' class indices.
    pub test: Vec<usize>,
}

/// The class names and each label's class index, for the training and the test part.
/// Integer labels are class indices: the classes are `0` to the largest label (over both
/// parts). String labels: the sorted names of the training part; a test name missing from
/// them is an error. `at(is_test, i)` names a row in errors.
pub fn classes(
    train: &[Label],
    test: &[Label],
    label_column: &str,
    at: RowAt,
) -> Result<Classes, DataError> {
    let all = || {
        let train = train.iter().enumerate().map(|(i, l)| (false, i, l));
        train.chain(test.iter().enumerate().map(|(i, l)| (true, i, l)))
    };
    let first_index = all().find(|(_, _, l)| matches!(l, Label::Index(_)));
    let first_name = all().find(|(_, _, l)| matches!(l, Label::Name(_)));
    if let (Some((ta, ia, _)), Some((tb, ib, _))) = (first_index, first_name) {
        return Err(DataError::new(
            at(tb, ib),
            format!(
                "labels in `{label_column}` of one kind, integers as in {}",
                at(ta, ia)
            ),
            "strings",
        ));
    }
    if first_index.is_some() {
        let mut max: Option<(u64, bool, usize)> = None;
        for (t, i, l) in all() {
            if let Label::Index(v) = l
                && max.is_none_or(|(m, _, _)| *v > m)
            {
                max = Some((*v, t, i));
            }
        }
        if let Some((m, t, i)) = max
            && m >= MAX_CLASSES
        {
            return Err(DataError::new(
                at(t, i),
                format!("class indices below {MAX_CLASSES} in `{label_column}`"),
                format!("{m}"),
            ));
        }
        let n = max.map_or(0, |(m, _, _)| m as usize + 1);
        let index = |part: &[Label]| {
            part.iter()
                .map(|l| match l {
                    Label::Index(i) => *i as usize,
                    Label::Name(_) => 0,
                })
                .collect()
        };
        return Ok(Classes {
            names: (0..n).map(|i| i.to_string()).collect(),
            train: index(train),
            test: index(test),
        });
    }
    let names: Vec<String> = train
        .iter()
        .filter_map(|l| match l {
            Label::Name(n) => Some(n.clone()),
            Label::Index(_) => None,
        })
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let index = |part: &[Label], is_test: bool| {
        part.iter()
            .enumerate()
            .map(|(i, l)| {
                let name = match l {
                    Label::Name(n) => n.as_str(),
                    Label::Index(_) => "",
                };
                names
                    .binary_search_by(|c| c.as_str().cmp(name))
                    .map_err(|_| {
                        DataError::new(
                            at(is_test, i),
                            format!(
                                "a class in `{label_column}` also present in the training part"
                            ),
                            format!("the unknown class {name:?}"),
                        )
                    })
            })
            .collect::<Result<Vec<usize>, DataError>>()
    };
    let (train, test) = (index(train, false)?, index(test, true)?);
    Ok(Classes { names, train, test })
}
