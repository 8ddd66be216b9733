//! Finding a dataset from what the user typed: `sample`, a path, or the name of a dataset
//! fetched by `cargo xtask download` into the data folder.

use std::path::{Path, PathBuf};

use ember_data::{Augment, OpenOptions, ParquetOptions, Splits};

use crate::error::{Error, Result};

/// Names `cargo xtask download` knows, and the folder each lands in under the data folder.
pub const DOWNLOADABLE: &[&str] = &[
    "fashion-mnist",
    "mnist",
    "cifar10",
    "cifar10-python",
    "cifar100",
];

/// The folder where downloaded datasets live: `$EMBER_DATA` if set, else `data/` in the
/// current folder (the same rule as `cargo xtask download`).
pub fn data_dir() -> PathBuf {
    std::env::var_os("EMBER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// Opens `sample`, a dataset path, or a downloaded dataset by name.
pub fn open(what: &str) -> Result<Splits> {
    open_with(what, OpenOptions::default())
}

/// [`open`] with options for image folders and Parquet files (the size images are resized
/// to, the label and split columns).
pub fn open_with(what: &str, options: OpenOptions) -> Result<Splits> {
    match locate(what)? {
        None => Ok(ember_data::sample()?),
        Some(path) => Ok(ember_data::open_with(&path, options)?),
    }
}

/// The columns `--label-column` and `--split-column` name (`label` and none by default).
pub fn parquet_options(label: Option<&str>, split: Option<&str>) -> ParquetOptions {
    let defaults = ParquetOptions::default();
    ParquetOptions {
        label_column: label.map_or(defaults.label_column.clone(), str::to_string),
        split_column: split.map(str::to_string),
        ..defaults
    }
}

/// Checks that `--label-column` and `--split-column` were given only for a Parquet dataset
/// (`format`, as [`Splits::format`] names it), where they mean something.
pub fn check_columns_apply(
    format: &str,
    dataset: &str,
    label: Option<&str>,
    split: Option<&str>,
) -> Result<()> {
    let given: Vec<&str> = [("--label-column", label), ("--split-column", split)]
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(flag, _)| *flag)
        .collect();
    if given.is_empty() || format == ember_data::formats::parquet::FORMAT {
        return Ok(());
    }
    Err(Error(format!(
        "{}: dataset {dataset} is {format}, not Parquet files, and has no columns",
        given.join(" and ")
    )))
}

/// Where a dataset named on the command line is: None for `sample`, else the path as given
/// or under the data folder.
pub fn locate(what: &str) -> Result<Option<PathBuf>> {
    if what == "sample" {
        return Ok(None);
    }
    let path = Path::new(what);
    if path.exists() {
        return Ok(Some(path.to_path_buf()));
    }
    let in_data_dir = data_dir().join(what);
    if in_data_dir.exists() {
        return Ok(Some(in_data_dir));
    }
    let hint = if DOWNLOADABLE.contains(&what) {
        format!("fetch it with `cargo xtask download {what}` (or import a copy with --from)")
    } else {
        format!(
            "give a dataset folder, archive or Parquet file, `sample`, or one of {DOWNLOADABLE:?}"
        )
    };
    Err(Error(format!(
        "dataset {what:?}: no such file or folder (looked in . and {}); {hint}",
        data_dir().display()
    )))
}

/// Parses `--augment`: comma-separated `crop`, `flip`, `cutout` (empty or `none`: none).
pub fn augment_from(list: &str) -> Augment {
    let mut a = Augment::default();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "crop" => a.crop_padding = 4,
            "flip" => a.hflip = true,
            "cutout" => a.cutout = 8,
            _ => {}
        }
    }
    a
}

/// Checks an `--augment` list, naming the first unknown item.
pub fn check_augment(list: &str) -> Result<()> {
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !["crop", "flip", "cutout", "none"].contains(&item) {
            return Err(Error(format!(
                "--augment: unknown augmentation {item:?} (use crop, flip, cutout)"
            )));
        }
    }
    Ok(())
}
