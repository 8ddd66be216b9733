//! The embedded sample: a class-balanced subset of Fashion-MNIST (MIT licence), 600
//! training and 100 test images per class, stored as gzip'd IDX files in `sample/`.
//! `tests/sample.rs` regenerates the files from the Debian package and checks them.

use crate::formats::{gunzip, idx};
use crate::{DataError, Splits};

/// Training images per class in the sample.
pub const SAMPLE_TRAIN_PER_CLASS: usize = 600;
/// Test images per class in the sample.
pub const SAMPLE_TEST_PER_CLASS: usize = 100;

const TRAIN_IMAGES: &[u8] = include_bytes!("../sample/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../sample/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../sample/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../sample/t10k-labels-idx1-ubyte.gz");

/// The compressed size of the embedded sample in bytes.
pub const SAMPLE_BYTES: usize =
    TRAIN_IMAGES.len() + TRAIN_LABELS.len() + TEST_IMAGES.len() + TEST_LABELS.len();

// The sample must stay a few MB: checked at compile time.
const _: () = assert!(SAMPLE_BYTES < 4 << 20);

/// The embedded Fashion-MNIST sample (6,000 training and 1,000 test 28x28 grayscale images,
/// balanced over the 10 classes), with format `"sample"`. No file access.
///
/// ```
/// let s = ember_data::sample()?;
/// assert_eq!((s.train.len(), s.test.len()), (6000, 1000));
/// assert_eq!(s.train.classes()[9], "Ankle boot");
/// # Ok::<(), ember_data::DataError>(())
/// ```
pub fn sample() -> Result<Splits, DataError> {
    let classes: Vec<String> = idx::FASHION_MNIST_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let part = |images: &[u8], labels: &[u8], prefix: &str| {
        let iname = format!("sample/{prefix}-images-idx3-ubyte.gz");
        let lname = format!("sample/{prefix}-labels-idx1-ubyte.gz");
        let i = idx::parse(&iname, &gunzip(&iname, images)?)?;
        let l = idx::parse(&lname, &gunzip(&lname, labels)?)?;
        idx::to_dataset(&iname, i, &lname, l, &classes)
    };
    Ok(Splits {
        format: "sample".into(),
        train: part(TRAIN_IMAGES, TRAIN_LABELS, "train")?,
        test: part(TEST_IMAGES, TEST_LABELS, "t10k")?,
    })
}
