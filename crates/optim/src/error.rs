//! The one error type of the optimizer crate.

use std::fmt;

/// What went wrong in an update, a state load or a hyper-parameter check. Every variant
/// names the parameter or state entry involved.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimError {
    /// A hyper-parameter outside its valid range (`lr < 0`, `beta >= 1`, Nesterov without
    /// momentum, ...).
    InvalidHyperParameter {
        /// The optimizer (`"sgd"`, `"adam"`, `"adamw"`).
        optimizer: &'static str,
        /// Which value and why.
        message: String,
    },
    /// The gradient of a parameter has another length than its value.
    GradLength {
        /// The parameter name.
        name: String,
        /// The value's length.
        value: usize,
        /// The gradient's length.
        grad: usize,
    },
    /// A parameter's length differs from the length its optimizer state was created with
    /// (the model changed under the optimizer, or a loaded state belongs to another model).
    LengthChanged {
        /// The parameter name.
        name: String,
        /// The length of the stored state.
        state: usize,
        /// The length passed now.
        now: usize,
    },
    /// A saved state from another optimizer (`"adam"` state loaded into SGD, ...).
    WrongOptimizer {
        /// This optimizer.
        expected: String,
        /// The optimizer named in the state.
        found: String,
    },
    /// A saved state lacks a buffer this optimizer needs (e.g. `max_exp_avg_sq` when
    /// AMSGrad is on).
    MissingBuffer {
        /// The missing key.
        key: String,
    },
    /// A saved state has a buffer or counter this optimizer does not know.
    UnexpectedEntry {
        /// The unknown key.
        key: String,
    },
    /// Two buffers of one parameter have different lengths.
    BufferLength {
        /// The key of the odd buffer.
        key: String,
        /// The length of the parameter's other buffers.
        expected: usize,
        /// Its length.
        found: usize,
    },
}

impl fmt::Display for OptimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptimError::InvalidHyperParameter { optimizer, message } => {
                write!(f, "{optimizer}: invalid hyper-parameter: {message}")
            }
            OptimError::GradLength { name, value, grad } => write!(
                f,
                "parameter `{name}`: value has {value} elements but its gradient has {grad}"
            ),
            OptimError::LengthChanged { name, state, now } => write!(
                f,
                "parameter `{name}`: optimizer state has {state} elements but the parameter \
                 now has {now} (model and optimizer state do not match)"
            ),
            OptimError::WrongOptimizer { expected, found } => write!(
                f,
                "optimizer state was saved by `{found}` and cannot be loaded into `{expected}`"
            ),
            OptimError::MissingBuffer { key } => {
                write!(f, "optimizer state: missing buffer `{key}`")
            }
            OptimError::UnexpectedEntry { key } => {
                write!(f, "optimizer state: unexpected entry `{key}`")
            }
            OptimError::BufferLength {
                key,
                expected,
                found,
            } => write!(
                f,
                "optimizer state: buffer `{key}` has {found} elements, expected {expected}"
            ),
        }
    }
}

impl std::error::Error for OptimError {}
