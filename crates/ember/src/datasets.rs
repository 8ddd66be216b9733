//! Finding a dataset from what the user typed: `sample`, a path, or the name of a dataset
//! fetched by `cargo xtask download` into the data folder.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ember_data::formats::folder_cache::CacheState;
use ember_data::{Augment, OpenOptions, Splits};
use indicatif::{ProgressBar, ProgressStyle};

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

/// The folder where decoded image folders are cached ([`ember_data::formats::folder_cache`]):
/// `$EMBER_CACHE` if set (`off` for no cache), else `$XDG_CACHE_HOME/ember`, else
/// `$HOME/.cache/ember`.
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("EMBER_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("ember")),
    }
}

/// Opens `sample`, a dataset path, or a downloaded dataset by name.
pub fn open(what: &str) -> Result<Splits> {
    open_with(what, OpenOptions::default())
}

/// Where `what` is: the embedded sample, or a path.
enum Location {
    Sample,
    Path(PathBuf),
}

fn locate(what: &str) -> Result<Location> {
    if what == "sample" {
        return Ok(Location::Sample);
    }
    let path = Path::new(what);
    if path.exists() {
        return Ok(Location::Path(path.to_path_buf()));
    }
    let in_data_dir = data_dir().join(what);
    if in_data_dir.exists() {
        return Ok(Location::Path(in_data_dir));
    }
    let hint = if DOWNLOADABLE.contains(&what) {
        format!("fetch it with `cargo xtask download {what}` (or import a copy with --from)")
    } else {
        format!("give a dataset folder or archive, `sample`, or one of {DOWNLOADABLE:?}")
    };
    Err(Error(format!(
        "dataset {what:?}: no such file or folder (looked in . and {}); {hint}",
        data_dir().display()
    )))
}

/// [`open`] with options for image folders (the size images are resized to). Image folders
/// are cached in [`cache_dir`] unless `options` name another folder, and their decoding
/// shows a progress bar when standard error is a terminal.
pub fn open_with(what: &str, options: OpenOptions) -> Result<Splits> {
    match locate(what)? {
        Location::Sample => Ok(ember_data::sample()?),
        Location::Path(path) => Ok(ember_data::open_with(&path, with_defaults(options))?),
    }
}

/// The cache of `what` (an image folder) for `options`; `None` for other datasets or without
/// a cache folder.
pub fn cache_state(what: &str, options: OpenOptions) -> Result<Option<CacheState>> {
    match locate(what)? {
        Location::Path(path) if ember_data::formats::folder::detect(&path) && path.is_dir() => {
            let options = with_defaults(options);
            Ok(ember_data::formats::folder::cache_state(&path, &options)?)
        }
        _ => Ok(None),
    }
}

fn with_defaults(mut options: OpenOptions) -> OpenOptions {
    if options.cache_dir.is_none() {
        options.cache_dir = cache_dir();
    }
    if options.progress.is_none() && std::io::stderr().is_terminal() {
        // Made on the first report, so a folder read from the cache draws nothing.
        let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
        options.progress = Some(Arc::new(move |done, total| {
            let Ok(mut bar) = bar.lock() else { return };
            let pb = bar.get_or_insert_with(|| {
                let pb = ProgressBar::new(total as u64);
                if let Ok(style) =
                    ProgressStyle::with_template("decoding images {bar:30} {pos}/{len} {eta}")
                {
                    pb.set_style(style);
                }
                pb
            });
            pb.set_position(done as u64);
            if done >= total {
                pb.finish_and_clear();
            }
        }));
    }
    options
}

/// The names `--augment` takes.
pub const AUGMENTATIONS: [&str; 6] = ["crop", "flip", "alt-flip", "translate", "cutout", "none"];

/// Parses `--augment`: comma-separated `crop`, `flip`, `cutout` (empty or `none`: none).
pub fn augment_from(list: &str) -> Augment {
    let mut a = Augment::default();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "crop" => a.crop_padding = 4,
            "flip" => a.hflip = true,
            "alt-flip" => (a.hflip, a.alternate_flip) = (true, true),
            "translate" => a.translate = 2,
            "cutout" => a.cutout = 8,
            _ => {}
        }
    }
    a
}

/// Checks an `--augment` list, naming the first unknown item.
pub fn check_augment(list: &str) -> Result<()> {
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !AUGMENTATIONS.contains(&item) {
            return Err(Error(format!(
                "--augment: unknown augmentation {item:?} (use {})",
                AUGMENTATIONS.join(", ")
            )));
        }
    }
    Ok(())
}
