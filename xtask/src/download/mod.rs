//! `cargo xtask download`: verified dataset download and import.

/// Runs the task; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    eprintln!("xtask download: not implemented yet ({args:?})");
    2
}
