//! What can go wrong while fetching, importing, verifying or unpacking a dataset.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A download or import failure; every variant names the file and the problem.
#[derive(Debug)]
pub enum Error {
    /// A filesystem operation failed.
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What was being done ("create", "read", "rename", ...).
        action: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A file's checksum differs from the catalog's; the bad copy was deleted if it was ours.
    Checksum {
        /// Where the bad copy was.
        path: PathBuf,
        /// The catalog's file name.
        file_name: String,
        /// "MD5" or "SHA-256".
        algo: &'static str,
        /// The expected digest.
        expected: String,
        /// The digest of the file.
        actual: String,
        /// Whether the bad copy was a download and has been deleted.
        deleted: bool,
    },
    /// No URL of a file could be downloaded (for example, no network).
    Network {
        /// The dataset being fetched.
        dataset: String,
        /// The file that could not be fetched.
        file_name: String,
        /// Each URL tried with its error.
        attempts: Vec<(String, String)>,
        /// Every file the dataset needs (what `--from` must provide).
        needed: Vec<String>,
    },
    /// A file is not what it should be (bad gzip or tar, unsafe path, missing member).
    Corrupt {
        /// The file or folder concerned.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `--from` does not hold what the dataset needs.
    Source {
        /// The `--from` path.
        path: PathBuf,
        /// What is missing or wrong.
        problem: String,
    },
    /// The dataset folder exists but is not a verified dataset; it is left untouched.
    NotVerified {
        /// The dataset folder.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                path,
                action,
                source,
            } => {
                write!(f, "{}: cannot {action}: {source}", path.display())
            }
            Error::Checksum {
                path,
                file_name,
                algo,
                expected,
                actual,
                deleted,
            } => {
                write!(
                    f,
                    "{}: {algo} checksum mismatch for {file_name}: expected {expected}, got {actual}",
                    path.display()
                )?;
                if *deleted {
                    write!(f, " (the download was deleted; nothing was installed)")?;
                }
                Ok(())
            }
            Error::Network {
                dataset,
                file_name,
                attempts,
                needed,
            } => {
                writeln!(f, "could not download {file_name}:")?;
                for (url, err) in attempts {
                    writeln!(f, "  {url}: {err}")?;
                }
                write!(
                    f,
                    "If this machine has no network, fetch {} on a machine that has, copy it here \
                     and import it:\n  cargo xtask download {dataset} --from PATH\n\
                     where PATH is the file or a folder holding it; the same checksums are verified.\n\
                     (A partial download is kept and resumed by the next run.)",
                    needed.join(", ")
                )
            }
            Error::Corrupt { path, problem } => write!(f, "{}: {problem}", path.display()),
            Error::Source { path, problem } => write!(f, "--from {}: {problem}", path.display()),
            Error::NotVerified { path } => write!(
                f,
                "{}: exists but is not a verified dataset (no valid ember-manifest.txt); \
                 remove it or choose another --dir",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
