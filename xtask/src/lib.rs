//! Ember's task runner as a library, so that its pieces are testable:
//! `download` (verified datasets), `bench` (benchmarks and report), `golden` (PyTorch golden vectors), `protos` (the ONNX protobuf code).

pub mod bench;
mod cli;
pub mod download;
pub mod golden;
pub mod protos;
