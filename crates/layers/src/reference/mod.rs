//! Plain f64 scalar versions of every layer: obvious loops, the oracle of the tests.

pub mod conv;
pub mod dense;
pub mod norm;
pub mod pool;
