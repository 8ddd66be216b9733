//! `cargo xtask bench`: the kernel benches (criterion), the end-to-end throughput of the zoo
//! models (`ember bench`), `ember serve` under 1, 8 and 32 loopback clients (`ember bench
//! --serve`), optionally Fashion-MNIST time-to-accuracy and a side-by-side run of
//! PyTorch on the same cores; writes `target/ember-bench/report.{md,json}` and prints a table.
//!
//! ```text
//! cargo xtask bench [--quick] [--compare-torch] [--baseline OLD.json] [--threads N]
//!                   [--python PY] [--torch-script PATH] [--fmnist DIR]
//! ```
//! `--quick` is a one-minute smoke (CI runs it): short timings, small benches, no
//! time-to-accuracy. `--compare-torch` alternates Ember and PyTorch runs of the same nets
//! (PyTorch in both its NCHW and channels-last layouts; the faster one is the reference) and
//! prints Ember/PyTorch ratios. `--baseline` flags figures that fell by more than the noise
//! allowance against an earlier `report.json`.

mod criterion_results;
mod report;
mod torch;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

pub use report::{Figure, Report};

/// Options of `cargo xtask bench`.
#[derive(Clone, Debug)]
pub struct Options {
    /// One-minute smoke.
    pub quick: bool,
    /// Also run PyTorch side by side.
    pub compare_torch: bool,
    /// An earlier report.json to compare against.
    pub baseline: Option<PathBuf>,
    /// Worker threads for both Ember and PyTorch.
    pub threads: usize,
    /// The Python interpreter with torch.
    pub python: Option<PathBuf>,
    /// PyTorch reference script.
    pub torch_script: PathBuf,
    /// Fashion-MNIST folder for time-to-accuracy (full mode only).
    pub fmnist: PathBuf,
}

/// Allowed drop before a figure is flagged as a regression (the machines are shared).
pub const NOISE: f64 = 0.10;

/// The arguments of `cargo xtask bench`.
#[derive(clap::Parser, Debug)]
pub struct Args {
    /// One-minute smoke: short timings, small benches, no time-to-accuracy.
    #[arg(long)]
    pub quick: bool,
    /// Also run PyTorch side by side (alternating) and print Ember/PyTorch ratios.
    #[arg(long)]
    pub compare_torch: bool,
    /// Flag figures that fell by more than the noise allowance against this earlier
    /// report.json.
    #[arg(long, value_name = "OLD.json")]
    pub baseline: Option<PathBuf>,
    /// Worker threads for both Ember and PyTorch.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// The Python interpreter with torch.
    #[arg(long, value_name = "PY")]
    pub python: Option<PathBuf>,
    /// The PyTorch reference script [default: benches/torch/reference.py].
    #[arg(long, value_name = "PATH")]
    pub torch_script: Option<PathBuf>,
    /// Fashion-MNIST folder for time-to-accuracy (full mode only).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/usr/share/datasets/fashion-mnist"
    )]
    pub fmnist: PathBuf,
}

impl Args {
    /// The options these arguments give, with defaults relative to workspace `root`.
    pub fn options(self, root: &Path) -> Options {
        Options {
            quick: self.quick,
            compare_torch: self.compare_torch,
            baseline: self.baseline,
            threads: self.threads,
            python: self.python,
            torch_script: self
                .torch_script
                .unwrap_or_else(|| root.join("benches/torch/reference.py")),
            fmnist: self.fmnist,
        }
    }
}

/// The workspace root (xtask's parent folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs the task with `args` as on the command line (without `bench`); returns the
/// process exit code.
pub fn main(args: &[String]) -> i32 {
    match crate::cli::parse::<Args>("bench", args) {
        Ok(a) => run_args(a),
        Err(code) => code,
    }
}

/// Runs the task; returns the process exit code (0, 1 on failure or regression).
pub fn run_args(args: Args) -> i32 {
    let root = workspace_root();
    let opts = args.options(&root);
    match run(&opts, &root) {
        Ok(0) => 0,
        Ok(n) => {
            eprintln!(
                "xtask bench: {n} figure(s) regressed beyond {:.0}% against the baseline",
                NOISE * 100.0
            );
            1
        }
        Err(e) => {
            eprintln!("xtask bench: {e}");
            1
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn check(status: std::io::Result<std::process::ExitStatus>, what: &str) -> Result<(), String> {
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed ({s})")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Runs everything and writes the report; returns the number of regressions.
pub fn run(opts: &Options, root: &Path) -> Result<usize, String> {
    let out_dir = root.join("target/ember-bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    eprintln!("== building release binaries");
    check(
        cargo()
            .current_dir(root)
            .args(["build", "--release", "-p", "ember"])
            .status(),
        "cargo build",
    )?;
    let ember = root.join("target/release/ember");
    let mut report = Report::new(root, opts.threads, opts.quick);

    eprintln!("== criterion kernel benches");
    let mut bench = cargo();
    bench
        .current_dir(root)
        .args(["bench", "-p", "ember-benches", "--benches"]);
    if opts.quick {
        bench.env("EMBER_BENCH_QUICK", "1");
        bench.args(["--", "--warm-up-time", "0.2", "--measurement-time", "0.5"]);
    }
    check(bench.status(), "cargo bench")?;
    report
        .figures
        .extend(criterion_results::collect(&root.join("target/criterion")));

    eprintln!("== end-to-end throughput");
    let seconds = if opts.quick { 1.5 } else { 10.0 };
    let nets: &[&str] = if opts.quick {
        &["fmnist-cnn", "cifar-cnn"]
    } else {
        &["fmnist-cnn", "cifar-cnn", "resnet9"]
    };
    let torch = if opts.compare_torch {
        torch::Torch::find(opts)?
    } else {
        None
    };
    for net in nets {
        // Alternate Ember and PyTorch so both see the same machine conditions.
        let e = ember_bench(&ember, net, seconds, opts.threads)?;
        report.add_throughput("ember", net, &e);
        if let Some(t) = torch.as_ref().filter(|t| t.knows(net)) {
            for (layout, who) in [(false, "torch-nchw"), (true, "torch-channels-last")] {
                let r = t.throughput(net, seconds, opts.threads, layout)?;
                report.add_throughput(who, net, &r);
            }
        }
    }

    eprintln!("== ember serve on loopback (1, 8, 32 clients)");
    let serve_seconds = if opts.quick { 1.0 } else { 8.0 };
    let served = ember_serve_bench(&ember, "fmnist-cnn", serve_seconds, opts.threads)?;
    report.add_serving("fmnist-cnn", &served);

    if !opts.quick && opts.fmnist.join("train-images-idx3-ubyte.gz").exists() {
        eprintln!("== Fashion-MNIST time-to-accuracy (NETS.md recipe)");
        report.fmnist = Some(fmnist_time_to_accuracy(
            &ember,
            &opts.fmnist,
            opts.threads,
            &out_dir,
        )?);
    }

    let regressions = match &opts.baseline {
        Some(path) => report.compare_baseline(path)?,
        None => 0,
    };
    report.write(&out_dir)?;
    println!("{}", report.table());
    println!("report: {}", out_dir.join("report.md").display());
    Ok(regressions)
}

fn ember_bench(ember: &Path, net: &str, seconds: f64, threads: usize) -> Result<Value, String> {
    let v = ember_bench_json(ember, &[], net, seconds, threads)?;
    Ok(json!({"train": v["train_images_per_s"], "infer": v["infer_images_per_s"]}))
}

/// `ember bench --serve --json`: the server under 1, 8 and 32 concurrent clients.
fn ember_serve_bench(
    ember: &Path,
    net: &str,
    seconds: f64,
    threads: usize,
) -> Result<Value, String> {
    ember_bench_json(ember, &["--serve"], net, seconds, threads)
}

/// The last line `ember bench FLAGS --model NET --seconds S --threads T --json` prints.
fn ember_bench_json(
    ember: &Path,
    flags: &[&str],
    net: &str,
    seconds: f64,
    threads: usize,
) -> Result<Value, String> {
    let what = ["ember bench"]
        .iter()
        .chain(flags)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let out = run_ember(
        Command::new(ember)
            .arg("bench")
            .args(flags)
            .args(["--model", net, "--seconds", &seconds.to_string()])
            .args(["--threads", &threads.to_string(), "--json"]),
        &format!("{what} {net}"),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .map_err(|e| format!("{what} {net}: {e}"))
}

/// Runs `cmd` (an `ember` command); its output if it succeeded, else its stderr after
/// `what`.
fn run_ember(cmd: &mut Command, what: &str) -> Result<std::process::Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", cmd.get_program().to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out)
}

fn fmnist_time_to_accuracy(
    ember: &Path,
    data: &Path,
    threads: usize,
    out_dir: &Path,
) -> Result<Value, String> {
    let run_dir = out_dir.join("fmnist-run");
    let mut train = Command::new(ember);
    train.args([
        "train",
        "--dataset",
        &data.display().to_string(),
        "--model",
        "fmnist-cnn",
        "--epochs",
        "8",
        "--batch-size",
        "128",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--momentum",
        "0.9",
        "--nesterov",
        "true",
        "--weight-decay",
        "5e-4",
        "--val-split",
        "0",
        "--threads",
        &threads.to_string(),
        "--out",
        &run_dir.display().to_string(),
        "--json",
    ]);
    let out = run_ember(&mut train, "fmnist training")?;
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok(
        json!({"epochs": lines.iter().filter(|l| l["event"] == "epoch").map(|l| &l["record"]).collect::<Vec<_>>(),
              "final": lines.last().cloned().unwrap_or(Value::Null)}),
    )
}
