//! CIFAR-10 and CIFAR-100, binary and python versions, from a folder or a `.tar.gz`.
//!
//! Binary records are `<label> <3072 pixels>` (CIFAR-10) or `<coarse> <fine> <3072 pixels>`
//! (CIFAR-100), pixels as 1024 red, 1024 green, 1024 blue bytes of a 32x32 image. The
//! record count comes from the file size; no file is assumed to hold 10,000 images.
//! CIFAR-100 is read with its 100 fine labels.

use std::path::Path;

use crate::formats::archive::{Members, read_tar};
use crate::formats::{pickle, read_file};
use crate::{DataError, Dataset, Splits};

/// The image shape of every CIFAR file.
pub const SHAPE: [usize; 3] = [3, 32, 32];
const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10 or CIFAR-100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 10 classes, one label byte per record.
    Cifar10,
    /// 100 fine classes (and 20 coarse ones), two label bytes per record.
    Cifar100,
}

impl Kind {
    /// The number of (fine) classes.
    pub fn classes(self) -> usize {
        match self {
            Kind::Cifar10 => 10,
            Kind::Cifar100 => 100,
        }
    }

    /// The size of one binary record in bytes.
    pub fn record_len(self) -> usize {
        match self {
            Kind::Cifar10 => 1 + PIXELS,
            Kind::Cifar100 => 2 + PIXELS,
        }
    }

    /// The built-in class names, used when the archive has no metadata file.
    pub fn default_class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            Kind::Cifar10 => &CIFAR10_CLASSES,
            Kind::Cifar100 => &CIFAR100_CLASSES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// CIFAR-10 class names (as in `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// CIFAR-100 fine class names (as in `fine_label_names.txt`).
pub const CIFAR100_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// Images and labels read from one file: pixels (N x 3072) and N labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// N * 3072 pixels, CHW per image.
    pub pixels: Vec<u8>,
    /// N labels (fine labels for CIFAR-100).
    pub labels: Vec<usize>,
}

impl Batch {
    fn append(&mut self, other: Batch) {
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
    }

    fn into_dataset(self, name: &str, classes: Vec<String>) -> Result<Dataset, DataError> {
        Dataset::new(SHAPE, self.pixels, self.labels, classes).map_err(|e| DataError {
            file: name.into(),
            ..e
        })
    }
}

/// Parses one CIFAR binary file. Its size must be a non-zero multiple of the record size
/// and every label must be in range (coarse labels of CIFAR-100 below 20).
pub fn parse_binary(name: &str, bytes: &[u8], kind: Kind) -> Result<Batch, DataError> {
    let rec = kind.record_len();
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        return Err(DataError::new(
            name,
            format!("a non-zero multiple of {rec} bytes ({kind:?} records)"),
            format!("{} bytes", bytes.len()),
        ));
    }
    let n = bytes.len() / rec;
    let mut out = Batch {
        pixels: Vec::with_capacity(n * PIXELS),
        labels: Vec::with_capacity(n),
    };
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let (label, pixels) = match kind {
            Kind::Cifar10 => (r[0], &r[1..]),
            Kind::Cifar100 => {
                if r[0] >= 20 {
                    return Err(DataError::new(
                        name,
                        "a coarse label below 20",
                        format!("{} in record {i}", r[0]),
                    ));
                }
                (r[1], &r[2..])
            }
        };
        if label as usize >= kind.classes() {
            return Err(DataError::new(
                name,
                format!("a label below {}", kind.classes()),
                format!("{label} in record {i}"),
            ));
        }
        out.labels.push(label as usize);
        out.pixels.extend_from_slice(pixels);
    }
    Ok(out)
}

/// Parses one CIFAR python batch (a pickled dict with `data`, an N x 3072 uint8 array, and
/// `labels` (CIFAR-10) or `fine_labels` (CIFAR-100), a list of N ints).
pub fn parse_python(name: &str, bytes: &[u8], kind: Kind) -> Result<Batch, DataError> {
    let v = pickle::parse(name, bytes)?;
    let key = match kind {
        Kind::Cifar10 => "labels",
        Kind::Cifar100 => "fine_labels",
    };
    let Some(pickle::Value::Array { shape, data }) = v.get("data") else {
        return Err(DataError::new(
            name,
            "a dict with a uint8 array under 'data'",
            describe(&v, "data"),
        ));
    };
    let Some(pickle::Value::List(labels)) = v.get(key) else {
        return Err(DataError::new(
            name,
            format!("a dict with a list under '{key}'"),
            describe(&v, key),
        ));
    };
    if shape.len() != 2 || shape[1] != PIXELS || shape[0] != labels.len() {
        return Err(DataError::new(
            name,
            format!("'data' of shape [{}, {PIXELS}]", labels.len()),
            format!("shape {shape:?}"),
        ));
    }
    let mut out = Batch {
        pixels: data.to_vec(),
        labels: Vec::with_capacity(labels.len()),
    };
    for (i, l) in labels.iter().enumerate() {
        match l {
            pickle::Value::Int(l) if (0..kind.classes() as i64).contains(l) => {
                out.labels.push(*l as usize)
            }
            other => {
                return Err(DataError::new(
                    name,
                    format!("labels from 0 to {}", kind.classes() - 1),
                    format!("{other:?} at index {i}"),
                ));
            }
        }
    }
    Ok(out)
}

fn describe(v: &pickle::Value, key: &str) -> String {
    match v {
        pickle::Value::Dict(_) => match v.get(key) {
            Some(x) => format!("'{key}' holding {}", short(x)),
            None => format!("no '{key}' key"),
        },
        other => short(other),
    }
}

/// The start of `v`'s debug form: at most [`SHORT`] characters are ever formatted, so a
/// 16 MB value in an error message costs no more than a small one.
fn short(v: &pickle::Value) -> String {
    use std::fmt::Write;
    /// Keeps the first `SHORT` characters and stops the formatter after them.
    struct Capped(String, usize);
    impl Write for Capped {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for ch in s.chars() {
                if self.1 == SHORT {
                    return Err(std::fmt::Error);
                }
                self.0.push(ch);
                self.1 += 1;
            }
            Ok(())
        }
    }
    let mut out = Capped(String::new(), 0);
    match write!(out, "{v:?}") {
        Ok(()) => out.0,
        Err(_) => out.0 + "...",
    }
}

/// How many characters of a value an error message shows.
const SHORT: usize = 60;

/// Class names from a python `batches.meta` / `meta` pickle (`label_names` or `fine_label_names`).
pub fn parse_python_meta(name: &str, bytes: &[u8], kind: Kind) -> Result<Vec<String>, DataError> {
    let v = pickle::parse(name, bytes)?;
    let key = match kind {
        Kind::Cifar10 => "label_names",
        Kind::Cifar100 => "fine_label_names",
    };
    let names: Option<Vec<String>> = match v.get(key) {
        Some(pickle::Value::List(items)) => items.iter().map(pickle::Value::as_text).collect(),
        _ => None,
    };
    check_names(name, names.unwrap_or_default(), kind)
}

/// Class names from a text metadata file: one per line, blank lines ignored.
pub fn parse_names_txt(name: &str, bytes: &[u8], kind: Kind) -> Result<Vec<String>, DataError> {
    let text = String::from_utf8_lossy(bytes);
    let names = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    check_names(name, names, kind)
}

fn check_names(name: &str, names: Vec<String>, kind: Kind) -> Result<Vec<String>, DataError> {
    if names.len() != kind.classes() {
        return Err(DataError::new(
            name,
            format!("{} class names", kind.classes()),
            format!("{}", names.len()),
        ));
    }
    Ok(names)
}

/// The layout of a CIFAR folder or archive, recognised by its file names.
struct Layout {
    format: &'static str,
    kind: Kind,
    python: bool,
    train: Vec<String>,
    test: &'static str,
    meta: &'static str,
}

fn layouts() -> [Layout; 4] {
    let batches = |ext: &str| (1..=5).map(|i| format!("data_batch_{i}{ext}")).collect();
    [
        Layout {
            format: "cifar10-binary",
            kind: Kind::Cifar10,
            python: false,
            train: batches(".bin"),
            test: "test_batch.bin",
            meta: "batches.meta.txt",
        },
        Layout {
            format: "cifar100-binary",
            kind: Kind::Cifar100,
            python: false,
            train: vec!["train.bin".into()],
            test: "test.bin",
            meta: "fine_label_names.txt",
        },
        Layout {
            format: "cifar10-python",
            kind: Kind::Cifar10,
            python: true,
            train: batches(""),
            test: "test_batch",
            meta: "batches.meta",
        },
        Layout {
            format: "cifar100-python",
            kind: Kind::Cifar100,
            python: true,
            train: vec!["train".into()],
            test: "test",
            meta: "meta",
        },
    ]
}

/// Where the files come from: a folder on disk or the members of an archive.
enum Source<'a> {
    Dir(&'a Path),
    Archive(Members),
}

impl Source<'_> {
    fn has(&self, base: &str) -> bool {
        match self {
            Source::Dir(d) => d.join(base).is_file(),
            Source::Archive(m) => m.has(base),
        }
    }

    fn read(&mut self, base: &str) -> Result<(String, Vec<u8>), DataError> {
        match self {
            Source::Dir(d) => {
                let p = d.join(base);
                Ok((p.display().to_string(), read_file(&p)?))
            }
            Source::Archive(m) => {
                let archive = m.archive.clone();
                m.take(base)
                    .ok_or_else(|| DataError::new(archive, format!("a member {base}"), "none"))
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Source::Dir(d) => d.display().to_string(),
            Source::Archive(m) => m.archive.clone(),
        }
    }
}

/// The CIFAR layout present: the test file plus at least the first training file.
fn find_layout(src: &Source) -> Option<Layout> {
    layouts()
        .into_iter()
        .find(|l| src.has(l.test) && src.has(&l.train[0]))
}

/// True if `dir` holds a CIFAR binary or python folder.
pub fn detect_dir(dir: &Path) -> bool {
    find_layout(&Source::Dir(dir)).is_some()
}

/// Reads a CIFAR folder (binary or python, 10 or 100).
pub fn open_dir(dir: &Path) -> Result<Splits, DataError> {
    read(Source::Dir(dir))
}

/// Reads a CIFAR `.tar.gz` as distributed (or any tar holding one of the layouts).
pub fn open_archive(name: &str, bytes: &[u8]) -> Result<Splits, DataError> {
    let all: Vec<String> = layouts()
        .iter()
        .flat_map(|l| {
            l.train
                .iter()
                .cloned()
                .chain([l.test.to_string(), l.meta.to_string()])
        })
        .collect();
    let members = read_tar(name, bytes, |base| all.iter().any(|a| a == base))?;
    read(Source::Archive(members))
}

fn read(mut src: Source) -> Result<Splits, DataError> {
    let layout = find_layout(&src).ok_or_else(|| {
        DataError::new(
            src.name(),
            "CIFAR files (data_batch_1[.bin] and test_batch[.bin], or train[.bin] and test[.bin])",
            "none of them",
        )
    })?;
    let kind = layout.kind;
    let parse = |name: &str, bytes: &[u8]| {
        if layout.python {
            parse_python(name, bytes, kind)
        } else {
            parse_binary(name, bytes, kind)
        }
    };
    let classes = if src.has(layout.meta) {
        let (name, bytes) = src.read(layout.meta)?;
        if layout.python {
            parse_python_meta(&name, &bytes, kind)?
        } else {
            parse_names_txt(&name, &bytes, kind)?
        }
    } else {
        kind.default_class_names()
    };
    let mut train = Batch::default();
    let mut first_name = String::new();
    let present: Vec<&String> = layout.train.iter().filter(|b| src.has(b)).collect();
    for base in present {
        let (name, bytes) = src.read(base)?;
        if first_name.is_empty() {
            first_name = name.clone();
        }
        train.append(parse(&name, &bytes)?);
    }
    let (test_name, test_bytes) = src.read(layout.test)?;
    let test = parse(&test_name, &test_bytes)?;
    Ok(Splits {
        format: layout.format.to_string(),
        train: train.into_dataset(&first_name, classes.clone())?,
        test: test.into_dataset(&test_name, classes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_name_tables() {
        assert_eq!(CIFAR100_CLASSES.len(), 100);
        assert!(
            CIFAR100_CLASSES.windows(2).all(|w| w[0] < w[1]),
            "CIFAR-100 names are sorted"
        );
    }

    #[test]
    fn binary_record_counts_come_from_the_size() {
        let mut f = vec![3u8; 3073 * 3];
        f[3073] = 9;
        let b = parse_binary("f", &f, Kind::Cifar10).unwrap();
        assert_eq!(b.labels, vec![3, 9, 3]);
        assert_eq!(b.pixels.len(), 3 * 3072);
        assert!(parse_binary("f", &f[..3073 * 2 + 5], Kind::Cifar10).is_err());
        assert!(parse_binary("f", &[], Kind::Cifar10).is_err());
        f[0] = 12;
        let e = parse_binary("f", &f, Kind::Cifar10).unwrap_err();
        assert!(e.found.contains("12 in record 0"), "{e}");
        // The same bytes are 3 CIFAR-100 records only if the size fits: 3073*3 is not a multiple of 3074.
        assert!(parse_binary("f", &f, Kind::Cifar100).is_err());
    }
}
