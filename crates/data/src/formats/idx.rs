//! IDX files (MNIST, Fashion-MNIST): a big-endian header `00 00 <type> <ndims>`, one u32
//! per dimension, then the values. Only unsigned bytes (type 0x08) occur in these datasets.

use std::path::{Path, PathBuf};

use crate::formats::{maybe_gunzip, read_file};
use crate::{DataError, Dataset, Splits};

/// A parsed IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions from the header, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Parses an uncompressed IDX file of u8 values. The header's dimensions must multiply to
/// exactly the number of bytes that follow it.
pub fn parse(name: &str, bytes: &[u8]) -> Result<IdxArray, DataError> {
    if bytes.len() < 4 {
        return Err(DataError::new(
            name,
            "an IDX header (at least 4 bytes)",
            format!("{} bytes", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::new(
            name,
            "IDX magic starting with two zero bytes",
            format!("{:02x} {:02x}", bytes[0], bytes[1]),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::new(
            name,
            "IDX type 0x08 (unsigned byte)",
            format!("type 0x{:02x}", bytes[2]),
        ));
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 {
        return Err(DataError::new(name, "at least one IDX dimension", "0"));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::new(
            name,
            format!("a {header}-byte header for {ndims} dimensions"),
            format!("{} bytes", bytes.len()),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let body = bytes.len() - header;
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count != Some(body) {
        return Err(DataError::new(
            name,
            format!(
                "{dims:?} = {} bytes of data after the header",
                count.map_or("too many".to_string(), |c| c.to_string())
            ),
            format!("{body} bytes"),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Builds a dataset from an images file (N, H, W) and a labels file (N), as parsed by
/// [`parse`]. Labels must be below `classes.len()`.
pub fn to_dataset(
    images_name: &str,
    images: IdxArray,
    labels_name: &str,
    labels: IdxArray,
    classes: &[String],
) -> Result<Dataset, DataError> {
    if images.dims.len() != 3 {
        return Err(DataError::new(
            images_name,
            "3 dimensions (images, rows, columns)",
            format!("{:?}", images.dims),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(DataError::new(
            labels_name,
            "1 dimension (labels)",
            format!("{:?}", labels.dims),
        ));
    }
    let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
    if labels.dims[0] != n {
        return Err(DataError::new(
            labels_name,
            format!("{n} labels, one per image in {images_name}"),
            format!("{}", labels.dims[0]),
        ));
    }
    if h == 0 || w == 0 {
        return Err(DataError::new(
            images_name,
            "non-zero image size",
            format!("{h}x{w}"),
        ));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= classes.len())
    {
        return Err(DataError::new(
            labels_name,
            format!("labels below {}", classes.len()),
            format!("label {l} at index {i}"),
        ));
    }
    let labels = labels.data.iter().map(|&l| l as usize).collect();
    Dataset::new([1, h, w], images.data, labels, classes.to_vec()).map_err(|e| DataError {
        file: images_name.to_string(),
        ..e
    })
}

/// Class names of Fashion-MNIST, label 0 to 9.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Finds `<prefix>-<kind>-idx<N>-ubyte` (or `.idx<N>-ubyte`), optionally `.gz`, in `dir`.
fn find(dir: &Path, prefix: &str, kind: &str, n: u8) -> Option<PathBuf> {
    for sep in ["-", "."] {
        for gz in ["", ".gz"] {
            let p = dir.join(format!("{prefix}-{kind}{sep}idx{n}-ubyte{gz}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// True if `dir` holds the four IDX files of an MNIST-style dataset.
pub fn detect(dir: &Path) -> bool {
    find(dir, "train", "images", 3).is_some()
        && find(dir, "train", "labels", 1).is_some()
        && find(dir, "t10k", "images", 3).is_some()
        && find(dir, "t10k", "labels", 1).is_some()
}

fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let name = path.display().to_string();
    let bytes = maybe_gunzip(&name, read_file(path)?)?;
    parse(&name, &bytes)
}

/// Reads an MNIST-style folder (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte`,
/// `t10k-…`). Class names: Fashion-MNIST's if the folder's path mentions "fashion", else
/// the digits "0" to "9".
pub fn open_dir(dir: &Path) -> Result<Splits, DataError> {
    let missing = |what: &str| {
        DataError::new(
            dir.display().to_string(),
            format!("an IDX file {what}"),
            "none",
        )
    };
    let classes: Vec<String> = if dir.to_string_lossy().to_lowercase().contains("fashion") {
        FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        (0..10).map(|d| d.to_string()).collect()
    };
    let part = |prefix: &str| -> Result<Dataset, DataError> {
        let ip = find(dir, prefix, "images", 3)
            .ok_or_else(|| missing(&format!("{prefix}-images-idx3-ubyte[.gz]")))?;
        let lp = find(dir, prefix, "labels", 1)
            .ok_or_else(|| missing(&format!("{prefix}-labels-idx1-ubyte[.gz]")))?;
        to_dataset(
            &ip.display().to_string(),
            read_idx(&ip)?,
            &lp.display().to_string(),
            read_idx(&lp)?,
            &classes,
        )
    };
    Ok(Splits {
        format: "idx".into(),
        train: part("train")?,
        test: part("t10k")?,
    })
}

/// Writes an IDX file of u8 values (the inverse of [`parse`]); used by the sample generator and tests.
pub fn write(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = write(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let a = parse("x", &bytes).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn bad_headers_are_errors() {
        assert!(parse("x", &[]).is_err());
        assert!(parse("x", &[0, 0, 8]).is_err());
        assert!(parse("x", &[1, 0, 8, 1, 0, 0, 0, 0]).is_err());
        assert!(parse("x", &[0, 0, 0x0d, 1, 0, 0, 0, 0]).is_err());
        assert!(parse("x", &[0, 0, 8, 0]).is_err());
        assert!(parse("x", &[0, 0, 8, 3, 0, 0, 0, 1]).is_err());
        // A billion images of 28x28 in a few bytes.
        let mut lying = write(&[1_000_000_000, 28, 28], &[]);
        lying.extend_from_slice(&[0; 2000]);
        let e = parse("lying", &lying).unwrap_err();
        assert_eq!(e.file, "lying");
        assert!(e.found.contains("2000 bytes"), "{e}");
        // Dimensions whose product overflows usize.
        let huge = write(&[u32::MAX as usize; 4], &[]);
        assert!(parse("x", &huge).is_err());
    }

    #[test]
    fn dataset_checks_counts_and_labels() {
        let classes: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        let img = || parse("i", &write(&[2, 1, 2], &[1, 2, 3, 4])).unwrap();
        // The two images with `labels`.
        let with_labels = |labels: &[u8]| {
            let l = parse("l", &write(&[labels.len()], labels)).unwrap();
            to_dataset("i", img(), "l", l, &classes)
        };
        let ok = with_labels(&[3, 9]).unwrap();
        assert_eq!(ok.shape(), [1, 1, 2]);
        assert_eq!(ok.image(1), &[3, 4]);
        assert!(with_labels(&[3, 9, 1]).is_err());
        let e = with_labels(&[3, 10]).unwrap_err();
        assert_eq!(e.file, "l");
    }
}
