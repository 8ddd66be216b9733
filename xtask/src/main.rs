//! `cargo xtask`: Ember's task runner. One clap parser, like `ember`'s: `--help` on any
//! task prints its help on stdout and exits 0; a usage error exits 2 on stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Ember's task runner: datasets, benchmarks, golden vectors, generated code"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Fetch or import a dataset, verified against its published checksums.
    Download(xtask::download::Args),
    /// Kernel benches, end-to-end images/s and the report (optionally against PyTorch).
    Bench(xtask::bench::Args),
    /// Check the PyTorch golden vectors of a folder.
    Golden(xtask::golden::Args),
    /// Regenerate the ONNX protobuf code of `ember export` from the vendored onnx.proto.
    Protos(xtask::protos::Args),
}

fn main() -> ExitCode {
    let code = match Cli::parse().task {
        Task::Download(a) => xtask::download::run_args(a),
        Task::Bench(a) => xtask::bench::run_args(a),
        Task::Golden(a) => xtask::golden::run_args(a),
        Task::Protos(a) => xtask::protos::run_args(a),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
