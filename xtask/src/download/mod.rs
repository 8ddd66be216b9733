//! `cargo xtask download`: verified dataset download and import.
//!
//! ```text
//! cargo xtask download cifar10 | cifar10-python | cifar100 | mnist | fashion-mnist [--dir D] [--from PATH] [--quiet]
//! cargo xtask download list
//! ```
//!
//! # Where datasets go
//! Dataset `NAME` is installed in `<data_dir>/NAME`, where `<data_dir>` is `--dir D` or
//! [`default_data_dir`]: `$EMBER_DATA` when set and not empty, else `./data` (relative to
//! the current folder). `ember train` looks there first.
//!
//! # Layout of a dataset folder
//! Every folder holds [`MANIFEST`] (`ember-manifest.txt`: the verified digests and every file with its size) plus:
//! - `mnist`, `fashion-mnist`: the four uncompressed IDX files `train-images-idx3-ubyte`,
//!   `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
//! - `cifar10`: the content of `cifar-10-batches-bin/`: `data_batch_1.bin` ..
//!   `data_batch_5.bin`, `test_batch.bin`, `batches.meta.txt`, `readme.html`.
//! - `cifar10-python`: the content of `cifar-10-batches-py/`: `data_batch_1` ..
//!   `data_batch_5`, `test_batch`, `batches.meta`, `readme.html`.
//! - `cifar100`: the content of `cifar-100-binary/`: `train.bin`, `test.bin`,
//!   `fine_label_names.txt`, `coarse_label_names.txt`.
//!
//! # What happens
//! 1. If `<data_dir>/NAME` holds a manifest matching the catalog and every recorded file
//!    has its recorded size, nothing is done (no network request).
//! 2. Each archive is downloaded into `<data_dir>/.downloads/FILE.part` (first mirror that
//!    answers; an existing `.part` is resumed with an HTTP `Range` request, and a transfer
//!    cut mid-way is resumed up to 3 times), then its MD5/SHA-256 are checked. A mismatch
//!    deletes the dataset's downloads and fails; nothing is left behind.
//! 3. With `--from PATH` nothing is downloaded: PATH is the archive or a folder holding the
//!    archives (for example `/usr/share/datasets/fashion-mnist`), checked the same way and
//!    never modified. Gzip files whose header was rewritten (Debian re-compresses them) are
//!    accepted when their decompressed content matches the recorded SHA-256.
//! 4. The archives are unpacked into `<data_dir>/.NAME.tmp-PID`, the manifest is written
//!    last, and the folder is renamed to `<data_dir>/NAME` in one step.
//!
//! # Example
//! ```no_run
//! use xtask::download::{Dataset, Options, default_data_dir, install};
//!
//! let ds = Dataset::find("fashion-mnist").expect("in the catalog");
//! let mut opts = Options::new(default_data_dir());
//! opts.from = Some("/usr/share/datasets/fashion-mnist".into());
//! let outcome = install(ds, &opts)?;
//! println!("{outcome:?}");
//! # Ok::<(), xtask::download::Error>(())
//! ```

mod catalog;
mod error;
mod extract;
mod fetch;
mod install;
mod manifest;
mod verify;

use std::io::IsTerminal;
use std::path::PathBuf;

pub use catalog::{Archive, DATA_DIR_ENV, DATASETS, Dataset, Unpack, default_data_dir};
pub use error::Error;
pub use install::{DOWNLOADS, Options, Outcome, install, is_installed};
pub use manifest::MANIFEST;
pub use verify::{Digests, digest_file};

/// The arguments of `cargo xtask download`.
#[derive(clap::Parser, Debug)]
#[command(after_help = "`list` prints the datasets and the data directory in use.")]
pub struct Args {
    /// The dataset to install, or `list`.
    #[arg(value_name = "DATASET", help = dataset_help())]
    pub name: String,
    /// Data directory [default: $EMBER_DATA, else ./data].
    #[arg(long, value_name = "D")]
    pub dir: Option<PathBuf>,
    /// Import a local copy (the archive, or a folder holding the archives) instead of
    /// downloading.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The help line of the dataset argument: the catalog's names and `list`.
fn dataset_help() -> String {
    let names: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
    format!("The dataset to install ({}), or `list`", names.join(", "))
}

/// Runs the task with `args` as on the command line (without `download`); returns the
/// process exit code (0 done, 1 failed, 2 bad usage).
pub fn main(args: &[String]) -> i32 {
    match crate::cli::parse::<Args>("download", args) {
        Ok(a) => run_args(a),
        Err(code) => code,
    }
}

/// Runs the task; returns the process exit code (0 done, 1 failed, 2 bad usage).
pub fn run_args(args: Args) -> i32 {
    let Args {
        name,
        dir,
        from,
        quiet,
    } = args;
    let data_dir = dir.unwrap_or_else(default_data_dir);
    if name == "list" {
        print_list();
        println!("data directory: {}", data_dir.display());
        return 0;
    }
    let Some(ds) = Dataset::find(&name) else {
        let names: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
        eprintln!(
            "xtask download: unknown dataset {name:?}; known: {} (see --help)",
            names.join(", ")
        );
        return 2;
    };
    let opts = Options {
        data_dir,
        from,
        progress: !quiet && std::io::stderr().is_terminal(),
        retries: 3,
    };
    match install(ds, &opts) {
        Ok(Outcome::AlreadyPresent(dir)) => {
            println!("{name}: already present and verified in {}", dir.display());
            0
        }
        Ok(Outcome::Installed {
            dir,
            content_verified,
        }) => {
            for file in content_verified {
                println!(
                    "{name}: {file} differs from the published file only in its compression; \
                     its content matches the recorded SHA-256"
                );
            }
            println!("{name}: verified and installed in {}", dir.display());
            0
        }
        Err(e) => {
            eprintln!("xtask download {name}: {e}");
            1
        }
    }
}

fn print_list() {
    for d in DATASETS {
        println!("  {:<15} {}", d.name, d.description);
    }
}
