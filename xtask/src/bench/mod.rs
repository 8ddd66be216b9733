//! `cargo xtask bench`: kernel benches, end-to-end throughput, report, PyTorch comparison.

/// Runs the task; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    eprintln!("xtask bench: not implemented yet ({args:?})");
    2
}
