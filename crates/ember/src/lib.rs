//! # ember
//!
//! The whole workflow on top of the Ember crates: model zoo, trainer, checkpoints,
//! evaluation, inference and the `ember` command line.
