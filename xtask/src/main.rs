//! `cargo xtask`: Ember's task runner.

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task> [args]
tasks:
  download DATASET [--dir D] [--from PATH]   fetch or import a dataset, verified
  bench [--quick] [--compare-torch] [--baseline OLD.json]
  golden DIR                                 check PyTorch golden vectors";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    let code = match args.first().map(String::as_str) {
        Some("download") => xtask::download::main(rest),
        Some("bench") => xtask::bench::main(rest),
        Some("golden") => xtask::golden::main(rest),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("xtask: unknown task {other:?}\n{USAGE}");
            2
        }
        None => {
            eprintln!("{USAGE}");
            2
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
