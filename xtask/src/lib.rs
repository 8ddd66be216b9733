//! Ember's task runner as a library, so that its pieces are testable:
//! `download` (verified datasets), `bench` (benchmarks and report), `golden` (PyTorch golden vectors).

pub mod bench;
mod cli;
pub mod download;
pub mod golden;
