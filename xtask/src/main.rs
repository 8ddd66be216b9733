//! `cargo xtask`: Ember's task runner.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(other) => {
            eprintln!("xtask: unknown task {other:?}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("usage: cargo xtask <download|bench|golden> ...");
            ExitCode::from(2)
        }
    }
}
