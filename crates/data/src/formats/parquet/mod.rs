//! Spark image DataFrames saved as Parquet: what `spark.read.format("image").load(...)`
//! gives, with a label column added, after `.write.parquet(...)`.
//!
//! Each row holds Spark's image struct (`origin`, `height`, `width`, `nChannels`, `mode`,
//! `data`: rows of pixels with interleaved channels in BGR(A) order, `mode` an OpenCV type
//! code, as Spark's `ImageSchema` documents) and a label: integers (class indices, also as
//! whole floating-point values such as `StringIndexer` writes) or strings (class names,
//! sorted). The images become RGB (or grayscale) planes, as image files are read.
//!
//! A dataset is a `.parquet` file or a folder of them as Spark writes it (part files, found
//! recursively; `_SUCCESS`, `.crc` and other files starting with `_` or `.` are skipped).
//! Its test part is, in this order: the rows whose split column (if one is named) says
//! `test` (the others must say `train`); or the files under `test/` (or `test.parquet`)
//! beside `train/` (or `train.parquet`); or none. A label or split column missing from the
//! files is taken from `column=value` folders, as `.write.partitionBy(column)` writes them.
//!
//! ```
//! use ember_data::formats::parquet::{self, ParquetOptions};
//!
//! // A Parquet file as Spark writes it (here from the embedded sample, string labels).
//! let sample = ember_data::sample()?;
//! let dir = std::env::temp_dir().join(format!("ember-doc-parquet-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("train"))?;
//! let file = std::fs::File::create(dir.join("train/part-0.parquet"))?;
//! let first = sample.train.subset(&[0, 1, 2]);
//! parquet::write_spark_images(file, &first, &parquet::WriteOptions::default())?;
//!
//! let (splits, summary) = parquet::open(&dir, &ParquetOptions::default(), None, None)?;
//! assert_eq!(splits.format, "spark-parquet");
//! assert_eq!(splits.train.pixels(), first.pixels());
//! assert!(splits.test.is_empty());
//! println!("{summary}");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod columns;
mod convert;
mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use columns::{IMAGE_FIELDS, Label, SparkImage};
pub use convert::{CV_8UC1, CV_8UC3, CV_8UC4, MAX_CLASSES, mode_for};
pub use write::{WriteOptions, write_spark_images};

use crate::formats::folder::{ImageSize, MAX_FOLDER_BYTES};
use crate::formats::read_file;
use crate::{DataError, Dataset, Splits};

/// The format name [`Splits::format`] holds for these datasets.
pub const FORMAT: &str = "spark-parquet";

/// The deepest folder nesting searched for Parquet files below a dataset's root.
pub const MAX_DEPTH: usize = 8;

/// Which columns hold what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    /// The struct column of Spark's image schema (`image` as Spark names it).
    pub image_column: String,
    /// The label column (`label` by default).
    pub label_column: String,
    /// A column whose values, `train` or `test`, say which part each row is in.
    pub split_column: Option<String>,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            image_column: "image".into(),
            label_column: "label".into(),
            split_column: None,
        }
    }
}

/// What [`open`] read: for `ember dataset info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetSummary {
    /// Parquet files read.
    pub files: usize,
    /// Rows (images) read.
    pub rows: usize,
    /// The label column and whether it held class indices or names.
    pub labels: String,
    /// Where the test part came from.
    pub test_part: String,
    /// The images as stored, `HxWxC mode M`, with their counts.
    pub stored: Vec<(String, usize)>,
}

impl fmt::Display for ParquetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stored: Vec<String> = self
            .stored
            .iter()
            .map(|(k, n)| format!("{n} x {k}"))
            .collect();
        write!(
            f,
            "{} Parquet file(s), {} rows (Spark image schema; stored: {})\nlabels: {}\ntest part: {}",
            self.files,
            self.rows,
            stored.join(", "),
            self.labels,
            self.test_part
        )
    }
}

/// True if the file starts with Parquet's magic bytes `PAR1`.
pub fn is_parquet_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"PAR1"
}

/// True if `path` is a Parquet file or a folder with `.parquet` files in it.
pub fn detect(path: &Path) -> bool {
    if path.is_file() {
        return is_parquet_file(path);
    }
    list_files(path).is_ok_and(|f| !f.is_empty())
}

/// The `.parquet` files under `root` (or `root` itself if it is a file), sorted, skipping
/// names that start with `_` or `.` (Spark's `_SUCCESS`, checksums, hidden files).
pub fn list_files(root: &Path) -> Result<Vec<PathBuf>, DataError> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, "a readable folder", &e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type();
            if kind.as_ref().is_ok_and(|k| k.is_dir()) && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if name.to_ascii_lowercase().ends_with(".parquet") && path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The `column=value` folders between `root` and `file`, values unescaped as Spark
/// escapes them (`%2F` for `/`).
fn partition_values(root: &Path, file: &Path) -> Vec<(String, String)> {
    let Ok(rel) = file.strip_prefix(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(parent) = rel.parent() {
        for part in parent.components() {
            let part = part.as_os_str().to_string_lossy();
            if let Some((k, v)) = part.split_once('=') {
                out.push((k.to_string(), unescape(v)));
            }
        }
    }
    out
}

/// Undoes the `%XX` escapes of a Spark partition folder name.
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a file's rows go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Train,
    Test,
    /// The split column says, row by row.
    ByColumn,
}

/// One file read: its name, its rows, the part each row is in.
struct Read {
    name: String,
    rows: columns::FileRows,
    shapes: Vec<[usize; 3]>,
    part: Part,
}

/// Reads a Parquet dataset (see the module documentation) into training and test parts.
/// Images are converted to `size` if given, else to `resize` as height and width, else to
/// the first training image's size (at most [`folder::MAX_INFERRED_SIDE`] a side), with 1
/// channel if that image is grayscale and 3 otherwise.
///
/// [`folder::MAX_INFERRED_SIDE`]: crate::formats::folder::MAX_INFERRED_SIDE
pub fn open(
    path: &Path,
    options: &ParquetOptions,
    size: Option<ImageSize>,
    resize: Option<[usize; 2]>,
) -> Result<(Splits, ParquetSummary), DataError> {
    let name = |p: &Path| p.display().to_string();
    let mut files: Vec<(PathBuf, PathBuf, Part)> = Vec::new();
    let part_root = |part: &str| {
        [path.join(part), path.join(format!("{part}.parquet"))]
            .into_iter()
            .find(|p| p.exists())
    };
    let test_part;
    match (
        &options.split_column,
        path.is_dir().then(|| part_root("train")).flatten(),
    ) {
        (Some(col), _) => {
            test_part = format!("rows whose `{col}` is test");
            for f in list_files(path)? {
                files.push((path.to_path_buf(), f, Part::ByColumn));
            }
        }
        (None, Some(train)) => {
            for f in list_files(&train)? {
                files.push((train.clone(), f, Part::Train));
            }
            let test = part_root("test");
            test_part = match &test {
                Some(t) => format!("{}", t.display()),
                None => "none (no test/ beside train/)".into(),
            };
            if let Some(test) = test {
                for f in list_files(&test)? {
                    files.push((test.clone(), f, Part::Test));
                }
            }
        }
        (None, None) => {
            test_part = "none (no split column, no train/ and test/ parts)".into();
            for f in list_files(path)? {
                files.push((path.to_path_buf(), f, Part::Train));
            }
        }
    }
    if files.is_empty() {
        return Err(DataError::new(
            name(path),
            "Parquet files (*.parquet)",
            "none",
        ));
    }
    // Every file is read before the first error (in file order) is reported, so that the
    // error does not depend on which thread finished first.
    let read: Vec<Result<Read, DataError>> = files
        .par_iter()
        .map(|(root, file, part)| {
            let bytes = read_file(file)?;
            read_one(
                &name(file),
                bytes,
                options,
                &partition_values(root, file),
                *part,
            )
        })
        .collect();
    let read: Vec<Read> = read.into_iter().collect::<Result<_, _>>()?;
    let summary = ParquetSummary {
        files: read.len(),
        rows: read.iter().map(|r| r.rows.images.len()).sum(),
        labels: String::new(),
        test_part,
        stored: stored_shapes(&read),
    };
    assemble(&name(path), read, options, size, resize, summary)
}

/// Reads one Parquet file held in memory as a whole dataset: its rows are the training
/// part, or split by `options.split_column`. The fuzz target's entry point.
pub fn parse(name: &str, bytes: Vec<u8>, options: &ParquetOptions) -> Result<Splits, DataError> {
    let part = if options.split_column.is_some() {
        Part::ByColumn
    } else {
        Part::Train
    };
    let read = read_one(name, bytes, options, &[], part)?;
    let summary = ParquetSummary {
        files: 1,
        rows: read.rows.images.len(),
        labels: String::new(),
        test_part: String::new(),
        stored: Vec::new(),
    };
    Ok(assemble(name, vec![read], options, None, None, summary)?.0)
}

fn read_one(
    name: &str,
    bytes: Vec<u8>,
    options: &ParquetOptions,
    partition: &[(String, String)],
    part: Part,
) -> Result<Read, DataError> {
    let rows = columns::read_rows(
        name,
        bytes.into(),
        &options.image_column,
        &options.label_column,
        options.split_column.as_deref(),
        partition,
    )?;
    let shapes = rows
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| convert::check(name, i, img))
        .collect::<Result<_, _>>()?;
    Ok(Read {
        name: name.to_string(),
        rows,
        shapes,
        part,
    })
}

/// `HxWxC mode M` of every stored image, counted.
fn stored_shapes(read: &[Read]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<(usize, usize, usize, i32), usize> = BTreeMap::new();
    for r in read {
        for (s, img) in r.shapes.iter().zip(&r.rows.images) {
            *counts.entry((s[1], s[2], s[0], img.mode)).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|((h, w, c, m), n)| (format!("{h}x{w}x{c} mode {m}"), n))
        .collect()
}

/// Rows in one part: (file, row) pairs.
type Rows = Vec<(usize, usize)>;

/// Puts every row in its part, builds the classes and converts the pixels.
fn assemble(
    name: &str,
    read: Vec<Read>,
    options: &ParquetOptions,
    size: Option<ImageSize>,
    resize: Option<[usize; 2]>,
    mut summary: ParquetSummary,
) -> Result<(Splits, ParquetSummary), DataError> {
    let (mut train, mut test): (Rows, Rows) = (Vec::new(), Vec::new());
    for (f, r) in read.iter().enumerate() {
        for row in 0..r.rows.images.len() {
            let part = match (r.part, &r.rows.splits) {
                (Part::ByColumn, Some(s)) => match s[row].trim().to_ascii_lowercase().as_str() {
                    "train" => Part::Train,
                    "test" => Part::Test,
                    other => {
                        let col = options.split_column.as_deref().unwrap_or("split");
                        return Err(DataError::new(
                            columns::row_name(&r.name, row, r.rows.images[row].origin.as_deref()),
                            format!(
                                "`train` or `test` in `{col}` (validation images are taken out \
                                 of train with --val-split)"
                            ),
                            format!("{other:?}"),
                        ));
                    }
                },
                (p, _) => p,
            };
            if part == Part::Test {
                test.push((f, row));
            } else {
                train.push((f, row));
            }
        }
    }
    let at = |rows: &Rows, i: usize| {
        let (f, row) = rows[i];
        let r = &read[f];
        columns::row_name(&r.name, row, r.rows.images[row].origin.as_deref())
    };
    let Some(&(f0, r0)) = train.first() else {
        return Err(DataError::new(name, "training images", "none"));
    };
    let target = convert::target_size(&at(&train, 0), read[f0].shapes[r0], size, resize)?;
    let label = |rows: &Rows| -> Vec<Label> {
        rows.iter()
            .map(|&(f, r)| read[f].rows.labels[r].clone())
            .collect()
    };
    let convert::Classes {
        names: classes,
        train: train_labels,
        test: test_labels,
    } = convert::classes(
        &label(&train),
        &label(&test),
        &options.label_column,
        &|is_test, i| at(if is_test { &test } else { &train }, i),
    )?;
    let kind = match read[f0].rows.labels[r0] {
        Label::Index(_) => "integers (class indices)",
        Label::Name(_) => "strings (class names, sorted)",
    };
    summary.labels = format!(
        "`{}`: {kind}, {} classes",
        options.label_column,
        classes.len()
    );
    let item: usize = target.iter().product();
    let total = (train.len() + test.len()).checked_mul(item);
    if total.is_none_or(|t| t > MAX_FOLDER_BYTES) {
        return Err(DataError::new(
            name,
            format!(
                "at most {MAX_FOLDER_BYTES} bytes of pixels (16 GiB); use a smaller image size"
            ),
            format!("{} images of {target:?}", train.len() + test.len()),
        ));
    }
    let pixels = |rows: &Rows| {
        let mut px = vec![0u8; rows.len() * item];
        px.par_chunks_mut(item)
            .zip(rows)
            .for_each(|(out, &(f, r))| {
                convert::to_chw(&read[f].rows.images[r], read[f].shapes[r], target, out)
            });
        px
    };
    let train_ds = Dataset::new(target, pixels(&train), train_labels, classes.clone())?;
    let test_ds = Dataset::new(target, pixels(&test), test_labels, classes)?;
    Ok((
        Splits {
            format: FORMAT.into(),
            train: train_ds,
            test: test_ds,
        },
        summary,
    ))
}
