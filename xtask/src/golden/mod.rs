//! `cargo xtask golden DIR`: checks every golden-vector file in DIR against Ember.

/// Runs the task; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    eprintln!("xtask golden: not implemented yet ({args:?})");
    2
}
