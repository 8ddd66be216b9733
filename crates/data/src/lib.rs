//! # ember-data
//!
//! Image datasets on disk and in memory for Ember: CIFAR-10/100 (binary and python
//! pickles, folder or `.tar.gz`), IDX (MNIST, Fashion-MNIST, gzip'd or raw), image folders,
//! and an embedded Fashion-MNIST sample; per-channel normalisation and seeded augmentation;
//! a parallel, shuffled loader that prepares the next batch in the background.
//!
//! Data flows `bytes on disk -> formats -> Dataset (u8 pixels) -> Loader -> NCHW f32 Tensor`.
//! Every reader validates sizes against the bytes it has before allocating, and reports bad
//! input as a [`DataError`] naming the file, what was expected and what was found.
//!
//! ```
//! use std::sync::Arc;
//! use ember_data::{Augment, Loader, LoaderConfig, Normalize};
//!
//! let splits = ember_data::sample()?; // or ember_data::open(Path::new("data/cifar-10-binary.tar.gz"))?
//! let (train, val) = splits.train.split(0.1, 42, true);
//! assert_eq!((train.len(), val.len()), (5400, 600));
//! let config = LoaderConfig {
//!     batch_size: 256,
//!     seed: 42,
//!     normalize: Normalize::from_dataset(&train),
//!     augment: Augment { crop_padding: 2, ..Augment::none() },
//!     ..Default::default()
//! };
//! let loader = Loader::new(Arc::new(train), config)?;
//! let first = loader.epoch(0).next().unwrap();
//! assert_eq!(first.images.shape().dims(), &[256, 1, 28, 28]);
//! # Ok::<(), ember_data::DataError>(())
//! ```

mod dataset;
mod error;
pub mod formats;
mod loader;
mod sample;
pub mod transform;

use std::path::Path;

pub use dataset::Dataset;
pub use error::DataError;
pub use formats::folder::{ImageSize, decode_image, load_image};
pub use loader::{Batch, Epoch, Loader, LoaderConfig};
pub use sample::{SAMPLE_BYTES, SAMPLE_TEST_PER_CLASS, SAMPLE_TRAIN_PER_CLASS, sample};
pub use transform::{Augment, Normalize};

use formats::{cifar, folder, idx, read_file};

/// A dataset's training and test parts, and the format they were read from.
#[derive(Clone, Debug)]
pub struct Splits {
    /// "idx", "cifar10-binary", "cifar100-binary", "cifar10-python", "cifar100-python",
    /// "image-folder" or "sample".
    pub format: String,
    /// The training images.
    pub train: Dataset,
    /// The test images (empty for an image folder without `train/` and `test/`).
    pub test: Dataset,
}

/// Told `(images decoded, images in all)` while an image folder is decoded.
pub type ProgressFn = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

/// Options for [`open_with`].
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// The (channels, height, width) image folders are converted to; by default the first
    /// training image's size (at most [`folder::MAX_INFERRED_SIDE`] a side), grayscale if
    /// it is grayscale and RGB otherwise.
    pub image_size: Option<ImageSize>,
    /// The height and width image folders are resized to, their channels as the first
    /// image's; used when `image_size` is not given.
    pub resize: Option<[usize; 2]>,
    /// A folder where decoded image folders are cached ([`formats::folder_cache`]); none by
    /// default.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Progress of decoding an image folder (not called when it comes from the cache).
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("image_size", &self.image_size)
            .field("resize", &self.resize)
            .field("cache_dir", &self.cache_dir)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Splits {
    /// For a dataset without a test part (a flat image folder): moves `fraction` of the
    /// training images, stratified by class and chosen from `seed`, into the test part.
    /// Does nothing when there is a test part already or `fraction` is 0.
    pub fn hold_out_test(&mut self, fraction: f64, seed: u64) {
        if !self.test.is_empty() || fraction <= 0.0 {
            return;
        }
        // A stream of its own, so that the validation split drawn later from the same
        // seed does not pick the same images in the same order.
        let (train, test) = self.train.split(fraction, seed ^ TEST_SPLIT_STREAM, true);
        self.train = train;
        self.test = test;
    }
}

/// Mixed into the seed of [`Splits::hold_out_test`].
const TEST_SPLIT_STREAM: u64 = 0x7e57_5b1e_7e57_5b1e;

/// The CIFAR folders and archives [`open`] also looks for inside a given folder.
const CIFAR_NAMES: [&str; 8] = [
    "cifar-10-batches-bin",
    "cifar-100-binary",
    "cifar-10-batches-py",
    "cifar-100-python",
    "cifar-10-binary.tar.gz",
    "cifar-100-binary.tar.gz",
    "cifar-10-python.tar.gz",
    "cifar-100-python.tar.gz",
];

/// Opens a dataset, recognising its format; see [`open_with`].
pub fn open(path: &Path) -> Result<Splits, DataError> {
    open_with(path, OpenOptions::default())
}

/// Opens a dataset, recognising its format, in this order:
/// - a file: a CIFAR-10/100 binary or python `.tar.gz` (or `.tar`) as distributed;
/// - a folder holding the IDX files `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
///   `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]` (MNIST, Fashion-MNIST);
/// - a folder holding CIFAR files: `data_batch_1.bin`… `test_batch.bin` (CIFAR-10 binary),
///   `train.bin` `test.bin` (CIFAR-100 binary), `data_batch_1`… `test_batch` (CIFAR-10
///   python), `train` `test` (CIFAR-100 python);
/// - a folder holding one of the CIFAR folders or archives under its official name
///   (`cifar-10-batches-bin`, `cifar-10-binary.tar.gz`, …);
/// - an image folder: `root/train/<class>/*` and `root/test/<class>/*`, or `root/<class>/*`
///   with an empty test part.
pub fn open_with(path: &Path, options: OpenOptions) -> Result<Splits, DataError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, "an existing file or folder", &e))?;
    if meta.is_file() {
        let bytes = read_file(path)?;
        return cifar::open_archive(&name, &bytes);
    }
    if idx::detect(path) {
        return idx::open_dir(path);
    }
    if cifar::detect_dir(path) {
        return cifar::open_dir(path);
    }
    for inner in CIFAR_NAMES.iter().map(|n| path.join(n)) {
        if inner.is_file() || (inner.is_dir() && cifar::detect_dir(&inner)) {
            return open_with(&inner, options);
        }
    }
    if folder::detect(path) {
        return folder::open_dir(path, &options);
    }
    Err(DataError::new(
        name,
        "IDX files, CIFAR files or archives, or class folders of images",
        "none of them",
    ))
}
