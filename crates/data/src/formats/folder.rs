//! Image folders (`root/<class>/*.png|jpg|jpeg|bmp`) and single-image decoding, the analog
//! of Spark's ImageSchema: every image is decoded, converted to grayscale or RGB and resized.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader, Limits};
use rayon::prelude::*;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::formats::folder_cache::{self, CacheState};
use crate::formats::read_file;
use crate::{DataError, Dataset, OpenOptions, Splits};

/// The file extensions read from image folders (case-insensitive).
pub const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The largest width or height accepted from an image header.
pub const MAX_SIDE: u32 = 16_384;

/// The largest height or width an image folder takes from its first image when no size is
/// given: a folder of photos is not resized to 2048x2048 (and held in memory at that size)
/// without being asked to.
pub const MAX_INFERRED_SIDE: usize = 256;

/// The most pixel bytes an image folder may decode to (16 GiB), checked before decoding.
pub const MAX_FOLDER_BYTES: usize = 1 << 34;

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Decodes an image (PNG, JPEG or BMP, recognised by content) to u8 pixels in CHW order with
/// `channels` (1 = grayscale, 3 = RGB), resized to `height` x `width` if needed (bilinear).
/// Header sizes are bounded by [`MAX_SIDE`] and the decoder's allocations by a memory limit.
pub fn decode_image(
    name: &str,
    bytes: &[u8],
    channels: usize,
    height: usize,
    width: usize,
) -> Result<Vec<u8>, DataError> {
    if channels != 1 && channels != 3 {
        return Err(DataError::new(
            name,
            "1 or 3 channels requested",
            format!("{channels}"),
        ));
    }
    if height == 0 || width == 0 || height > MAX_SIDE as usize || width > MAX_SIDE as usize {
        return Err(DataError::new(
            name,
            format!("a target size from 1 to {MAX_SIDE}"),
            format!("{height}x{width}"),
        ));
    }
    let bad =
        |e: &dyn std::fmt::Display| DataError::new(name, "a PNG, JPEG or BMP image", e.to_string());
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| bad(&e))?;
    Ok(to_chw(img, channels, height, width))
}

fn to_chw(img: DynamicImage, channels: usize, height: usize, width: usize) -> Vec<u8> {
    let (h, w) = (height as u32, width as u32);
    let img = if img.width() != w || img.height() != h {
        img.resize_exact(w, h, FilterType::Triangle)
    } else {
        img
    };
    let plane = height * width;
    if channels == 1 {
        img.into_luma8().into_raw()
    } else {
        let rgb = img.into_rgb8();
        let mut out = vec![0u8; 3 * plane];
        for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
            out[i] = px[0];
            out[plane + i] = px[1];
            out[2 * plane + i] = px[2];
        }
        out
    }
}

/// Reads and decodes one image file; see [`decode_image`].
pub fn load_image(
    path: &Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<Vec<u8>, DataError> {
    decode_image(
        &path.display().to_string(),
        &read_file(path)?,
        channels,
        height,
        width,
    )
}

/// The class folders (sorted by name) and their image files (sorted) under `root`.
fn classes_in(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, DataError> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>, DataError> {
        let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "a readable folder", &e))?;
        let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for dir in list(root)?.into_iter().filter(|p| p.is_dir()) {
        let images: Vec<PathBuf> = list(&dir)?.into_iter().filter(|p| is_image(p)).collect();
        if !images.is_empty() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, images));
        }
    }
    Ok(out)
}

/// True if `root` has class folders holding images, directly or under `train/`.
pub fn detect(root: &Path) -> bool {
    let r = if root.join("train").is_dir() {
        root.join("train")
    } else {
        root.to_path_buf()
    };
    classes_in(&r).is_ok_and(|c| !c.is_empty())
}

/// The size images of an image folder are converted to: channels, height, width.
pub type ImageSize = [usize; 3];

/// Class names (sorted) with their image files (sorted).
type Classes = Vec<(String, Vec<PathBuf>)>;

/// The training and test parts of an image folder: `root/train/<class>/*` and
/// `root/test/<class>/*`, or `root/<class>/*` alone.
struct Listing {
    train_root: PathBuf,
    train: Classes,
    test: Option<(PathBuf, Classes)>,
}

impl Listing {
    fn of(root: &Path) -> Result<Listing, DataError> {
        let (train_root, test_root) = if root.join("train").is_dir() {
            (
                root.join("train"),
                Some(root.join("test")).filter(|t| t.is_dir()),
            )
        } else {
            (root.to_path_buf(), None)
        };
        let train = classes_in(&train_root)?;
        if train.is_empty() {
            return Err(DataError::new(
                train_root.display().to_string(),
                format!("class folders holding images ({})", EXTENSIONS.join(", ")),
                "none",
            ));
        }
        let test = match test_root {
            Some(t) => {
                let files = classes_in(&t)?;
                Some((t, files))
            }
            None => None,
        };
        Ok(Listing {
            train_root,
            train,
            test,
        })
    }

    fn classes(&self) -> Vec<String> {
        self.train.iter().map(|(c, _)| c.clone()).collect()
    }

    fn images(&self) -> usize {
        let count =
            |part: &[(String, Vec<PathBuf>)]| part.iter().map(|(_, f)| f.len()).sum::<usize>();
        count(&self.train) + self.test.as_ref().map_or(0, |(_, t)| count(t))
    }

    /// The size images are converted to, as `options` or the first training image say.
    fn size(&self, options: &OpenOptions) -> Result<ImageSize, DataError> {
        match options.image_size {
            Some(s) => Ok(s),
            None => size_from_first(&self.train[0].1[0], options.resize),
        }
    }

    fn fingerprint(&self, root: &Path, size: ImageSize) -> Result<u64, DataError> {
        let mut parts: Vec<&folder_cache::ClassFiles> = vec![&self.train];
        if let Some((_, t)) = &self.test {
            parts.push(t);
        }
        folder_cache::fingerprint(root, &parts, size)
    }
}

/// Reads an image folder: `root/train/<class>/*` and `root/test/<class>/*`, or `root/<class>/*`
/// (then the test split is empty: see [`Splits::hold_out_test`] and [`Dataset::split`]).
/// Class names are the sorted folder names of the training part; a test class missing from
/// them is an error. Every image is resized to `options.image_size`; without it,
/// `options.resize` gives the height and width, and the first training image (in sorted
/// order) whatever is missing: its height and width (each at most [`MAX_INFERRED_SIDE`],
/// else an error asking for a size), and 1 channel if it is grayscale, 3 otherwise.
///
/// With `options.cache_dir`, the decoded folder is kept there ([`folder_cache`]) and read
/// back while its files are unchanged; `options.progress` hears of the decoding.
pub fn open_dir(root: &Path, options: &OpenOptions) -> Result<Splits, DataError> {
    let listing = Listing::of(root)?;
    let classes = listing.classes();
    let size = listing.size(options)?;
    let cache = match &options.cache_dir {
        Some(dir) => {
            let fingerprint = listing.fingerprint(root, size)?;
            let path = folder_cache::cache_path(dir, root, size);
            if let Some(splits) = folder_cache::load(&path, fingerprint, size, &classes) {
                return Ok(splits);
            }
            Some((path, fingerprint))
        }
        None => None,
    };
    let progress = Progress {
        done: AtomicUsize::new(0),
        total: listing.images(),
        report: options.progress.as_deref(),
    };
    let train_ds = read_classes(
        &listing.train_root,
        &listing.train,
        &classes,
        size,
        &progress,
    )?;
    let test_ds = match &listing.test {
        Some((t, files)) => read_classes(t, files, &classes, size, &progress)?,
        None => Dataset::new(size, Vec::new(), Vec::new(), classes.clone())?,
    };
    let splits = Splits {
        format: "image-folder".into(),
        train: train_ds,
        test: test_ds,
    };
    if let Some((path, fingerprint)) = cache {
        // The cache only saves time: a folder that cannot be written is read again next time.
        let _ = folder_cache::store(&path, fingerprint, &splits);
    }
    Ok(splits)
}

/// Where the decoded copy of the image folder `root` is cached for `options` (its image size
/// worked out as [`open_dir`] does), and whether it matches the folder's files; `None`
/// without `options.cache_dir`.
pub fn cache_state(root: &Path, options: &OpenOptions) -> Result<Option<CacheState>, DataError> {
    let Some(dir) = &options.cache_dir else {
        return Ok(None);
    };
    let listing = Listing::of(root)?;
    let size = listing.size(options)?;
    let fingerprint = listing.fingerprint(root, size)?;
    let path = folder_cache::cache_path(dir, root, size);
    Ok(Some(folder_cache::state(&path, fingerprint)))
}

/// Counts decoded images for a progress report.
struct Progress<'a> {
    done: AtomicUsize,
    total: usize,
    report: Option<&'a (dyn Fn(usize, usize) + Send + Sync)>,
}

impl Progress<'_> {
    fn one_more(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(report) = self.report
            && (done.is_multiple_of(512) || done == self.total)
        {
            report(done, self.total);
        }
    }
}

/// The size of a folder's images as its first image (`first`) says, with `resize` as the
/// height and width when given.
fn size_from_first(first: &Path, resize: Option<[usize; 2]>) -> Result<ImageSize, DataError> {
    let name = first.display().to_string();
    let mut reader = ImageReader::new(Cursor::new(read_file(first)?))
        .with_guessed_format()
        .map_err(|e| DataError::new(&name, "an image", e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| DataError::new(&name, "a PNG, JPEG or BMP image", e.to_string()))?;
    let c = if img.color().has_color() { 3 } else { 1 };
    let (h, w) = (img.height() as usize, img.width() as usize);
    match resize {
        Some([h, w]) => Ok([c, h, w]),
        None if h > MAX_INFERRED_SIDE || w > MAX_INFERRED_SIDE => Err(DataError::new(
            name,
            format!(
                "a first image of at most {MAX_INFERRED_SIDE}x{MAX_INFERRED_SIDE} pixels to take \
                 the folder's image size from, or a size to resize every image to \
                 (`--image-size HxW`)"
            ),
            format!("{h}x{w}"),
        )),
        None => Ok([c, h, w]),
    }
}

fn read_classes(
    root: &Path,
    found: &[(String, Vec<PathBuf>)],
    classes: &[String],
    size: ImageSize,
    progress: &Progress<'_>,
) -> Result<Dataset, DataError> {
    let mut files = Vec::new();
    for (name, images) in found {
        let label = classes.iter().position(|c| c == name).ok_or_else(|| {
            DataError::new(
                root.join(name).display().to_string(),
                "a class folder also present in the training part",
                "an unknown class",
            )
        })?;
        files.extend(images.iter().map(|p| (p, label)));
    }
    let [c, h, w] = size;
    let total = [files.len(), c, h, w]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_FOLDER_BYTES);
    if total.is_none() {
        return Err(DataError::new(
            root.display().to_string(),
            format!(
                "at most {MAX_FOLDER_BYTES} bytes of pixels (16 GiB); use a smaller image size"
            ),
            format!("{} images of {c}x{h}x{w}", files.len()),
        ));
    }
    let decoded: Vec<Vec<u8>> = files
        .par_iter()
        .map(|(p, _)| {
            let image = load_image(p, c, h, w);
            progress.one_more();
            image
        })
        .collect::<Result<_, _>>()?;
    let labels = files.iter().map(|(_, l)| *l).collect();
    Dataset::new(size, decoded.concat(), labels, classes.to_vec())
}
