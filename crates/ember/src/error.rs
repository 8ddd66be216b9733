//! The ember crate's error: a message that says which file or input failed and why.

use std::fmt;

/// An error of the workflow (training, checkpoints, evaluation, prediction), with a message
/// that names the file or option concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error with this message.
    pub fn msg(m: impl Into<String>) -> Self {
        Error(m.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

macro_rules! from_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error(e.to_string())
            }
        }
    )*};
}

from_error!(
    ember_data::DataError,
    ember_optim::OptimError,
    ember_optim::ScheduleError,
    crate::spec::SpecError,
    crate::spec::BuildError,
    ember_layers::LayerError,
    ember_tensor::ShapeError
);

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an I/O error: `"<path>: <what>: <error>"`.
pub fn io_error(path: &std::path::Path, what: &str, e: std::io::Error) -> Error {
    Error(format!("{}: {what}: {e}", path.display()))
}
