//! The one error type of the data crate.

use std::fmt;
use std::path::Path;

/// A dataset that cannot be read: which file (or input), what was expected and what was found.
///
/// Every reader in this crate reports bad input through this type and never panics:
/// `DataError` is what a truncated file, a wrong magic number, a header that promises more
/// data than the file holds or a label out of range turn into.
///
/// ```
/// use ember_data::DataError;
/// let e = DataError::new("train-labels-idx1-ubyte", "magic 0x00000801", "0x00000803");
/// assert_eq!(
///     e.to_string(),
///     "train-labels-idx1-ubyte: expected magic 0x00000801, found 0x00000803"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    /// The file or input at fault (a path, or `archive.tar.gz:member`).
    pub file: String,
    /// What the reader expected.
    pub expected: String,
    /// What it found instead.
    pub found: String,
}

impl DataError {
    /// An error about `file`: `expected` what, `found` what.
    pub fn new(
        file: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        DataError {
            file: file.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// An I/O failure on `path` while doing `what` (for example "a readable file").
    pub fn io(path: &Path, what: &str, err: &std::io::Error) -> Self {
        DataError::new(
            path.display().to_string(),
            what,
            format!("I/O error: {err}"),
        )
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, found {}",
            self.file, self.expected, self.found
        )
    }
}

impl std::error::Error for DataError {}
