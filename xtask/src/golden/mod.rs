//! `cargo xtask golden DIR`: checks every golden-vector file (`*.json`, format
//! `ember-golden/1`, see `testdata/golden/README.md`) in DIR against Ember.
//!
//! Every value a case needs (sizes, hyper-parameters, shapes) is read from the file, so any
//! directory in this format works, not only the public set. For each case one line is
//! printed: status, case name, the largest absolute error and the largest relative error
//! `|got - want| / (1 + |want|)`, which must stay within 1e-4 for layers and 1e-5 for
//! optimizers. A file that cannot be understood (bad JSON, unknown kind, missing key, shape
//! that does not fit) is reported as an error and counts as a failure. Kinds whose
//! implementation is not available in this build are reported as skipped, never passed.
//!
//! ```no_run
//! let reports = xtask::golden::check_dir(std::path::Path::new("testdata/golden")).unwrap();
//! assert!(reports.iter().all(|r| !r.status.is_failure()));
//! ```

mod compare;
mod conv;
pub mod json;
mod layers;
mod optim;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ember_layers::Mode;

use compare::Comparison;
use json::Golden;

/// Tolerance on `max |got - want| / (1 + |want|)` for layer, loss and training-step cases.
pub const LAYER_TOL: f64 = 1e-4;
/// Tolerance for optimizer trajectories (their weight-decay terms are ~3e-4).
pub const OPTIMIZER_TOL: f64 = 1e-5;

/// Every kind of the format, in the order of its README.
pub const KINDS: [&str; 12] = [
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "global_avgpool",
    "linear",
    "relu",
    "leaky_relu",
    "batchnorm2d_train",
    "batchnorm2d_eval",
    "cross_entropy",
    "optimizer",
    "train_step",
];

/// How one case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Every expected tensor within tolerance.
    Pass,
    /// Computed, but outside tolerance or of the wrong shape (the reason).
    Fail(String),
    /// Not checked in this build (the reason).
    Skipped(String),
    /// The file could not be understood or run (the reason).
    Error(String),
}

impl Status {
    /// True for `Fail` and `Error`: what makes the command exit non-zero.
    pub fn is_failure(&self) -> bool {
        matches!(self, Status::Fail(_) | Status::Error(_))
    }
}

/// The result of one golden file.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The file.
    pub file: PathBuf,
    /// The case name (or the file name when the file could not be read).
    pub case: String,
    /// The kind, when known.
    pub kind: String,
    /// What happened.
    pub status: Status,
    /// Largest `|got - want|`.
    pub max_abs: f64,
    /// Largest `|got - want| / (1 + |want|)`.
    pub max_rel: f64,
}

impl fmt::Display for CaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = format!("max_abs {:.2e}  max_rel {:.2e}", self.max_abs, self.max_rel);
        match &self.status {
            Status::Pass => write!(f, "pass     {:<36} {errors}", self.case),
            Status::Fail(why) => write!(f, "FAIL     {:<36} {errors}  {why}", self.case),
            Status::Skipped(why) => write!(f, "skipped  {:<36} ({why})", self.case),
            Status::Error(why) => write!(
                f,
                "ERROR    {:<36} {}: {why}",
                self.case,
                self.file.display()
            ),
        }
    }
}

/// The tolerance for a kind.
pub fn tolerance(kind: &str) -> f64 {
    if kind == "optimizer" {
        OPTIMIZER_TOL
    } else {
        LAYER_TOL
    }
}

/// What running a case gave: a comparison, or a reason it was not run.
enum Outcome {
    Compared(Comparison),
    Skipped(String),
}

fn needs_conv(g: &Golden, cmp: &mut Comparison) -> Result<Option<String>, String> {
    match g.kind.as_str() {
        "conv2d" => conv::conv2d(g, cmp)?,
        "maxpool2d" => conv::maxpool2d(g, cmp)?,
        "avgpool2d" => conv::avgpool2d(g, cmp)?,
        "global_avgpool" => conv::global_avgpool(g, cmp)?,
        "train_step" => conv::train_step(g, cmp)?,
        other => return Err(format!("internal: {other} is not a conv kind")),
    }
    Ok(None)
}

fn needs_optim(g: &Golden, cmp: &mut Comparison) -> Result<Option<String>, String> {
    optim::optimizer(g, cmp)?;
    Ok(None)
}

fn run(g: &Golden) -> Result<Outcome, String> {
    let mut cmp = Comparison::default();
    match g.kind.as_str() {
        "linear" => layers::linear(g, &mut cmp)?,
        "relu" => layers::relu(g, &mut cmp)?,
        "leaky_relu" => layers::leaky_relu(g, &mut cmp)?,
        "batchnorm2d_train" => layers::batchnorm2d(g, Mode::Train, &mut cmp)?,
        "batchnorm2d_eval" => layers::batchnorm2d(g, Mode::Eval, &mut cmp)?,
        "cross_entropy" => layers::cross_entropy(g, &mut cmp)?,
        "conv2d" | "maxpool2d" | "avgpool2d" | "global_avgpool" | "train_step" => {
            if let Some(reason) = needs_conv(g, &mut cmp)? {
                return Ok(Outcome::Skipped(reason));
            }
        }
        "optimizer" => {
            if let Some(reason) = needs_optim(g, &mut cmp)? {
                return Ok(Outcome::Skipped(reason));
            }
        }
        other => {
            return Err(format!(
                "unknown kind {other:?} (known: {})",
                KINDS.join(", ")
            ));
        }
    }
    let unchecked: Vec<String> = g
        .expected_names()
        .into_iter()
        .filter(|n| !cmp.checked.contains(n))
        .collect();
    if !unchecked.is_empty() {
        return Err(format!(
            "expected {} not understood by the {} runner",
            unchecked
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", "),
            g.kind
        ));
    }
    Ok(Outcome::Compared(cmp))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Checks one golden file.
pub fn check_file(path: &Path) -> CaseReport {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut report = CaseReport {
        file: path.to_path_buf(),
        case: stem.clone(),
        kind: String::new(),
        status: Status::Error(String::new()),
        max_abs: 0.0,
        max_rel: 0.0,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.status = Status::Error(format!("cannot read: {e}"));
            return report;
        }
    };
    let golden = match Golden::parse(&text, &stem) {
        Ok(g) => g,
        Err(e) => {
            report.status = Status::Error(e);
            return report;
        }
    };
    report.case = golden.case.clone();
    report.kind = golden.kind.clone();
    // The runners validate what they read; a panic here would be a bug in a layer, and is
    // reported as this case's error rather than ending the whole run.
    let outcome = catch_unwind(AssertUnwindSafe(|| run(&golden)))
        .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&*p))));
    report.status = match outcome {
        Err(e) => Status::Error(e),
        Ok(Outcome::Skipped(why)) => Status::Skipped(why),
        Ok(Outcome::Compared(cmp)) => {
            report.max_abs = cmp.max_abs;
            report.max_rel = cmp.max_rel;
            let tol = tolerance(&golden.kind);
            if !cmp.problems.is_empty() {
                Status::Fail(cmp.problems.join("; "))
            } else if cmp.max_rel > tol {
                Status::Fail(format!(
                    "worst: {} (tolerance {tol:e})",
                    cmp.worst.unwrap_or_default()
                ))
            } else {
                Status::Pass
            }
        }
    };
    report
}

/// Checks every `*.json` file in `dir` (sorted by name). Fails only if the directory
/// cannot be listed or holds no golden files.
pub fn check_dir(dir: &Path) -> Result<Vec<CaseReport>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.json golden files in {}", dir.display()));
    }
    Ok(files.iter().map(|f| check_file(f)).collect())
}

/// Runs the task with `args` as on the command line (without `golden`); returns the
/// process exit code (0 all good, 1 a case failed or could not be understood, 2 usage
/// error or unreadable directory).
pub fn main(args: &[String]) -> i32 {
    match crate::cli::parse::<Args>("golden", args) {
        Ok(a) => run_args(a),
        Err(code) => code,
    }
}

/// The arguments of `cargo xtask golden`.
#[derive(clap::Parser, Debug)]
pub struct Args {
    /// The folder whose `*.json` golden files are checked (e.g. testdata/golden).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Checks every golden file of `args.dir`, prints a line per case and a summary; returns
/// the process exit code (0 all pass, 1 a case failed, 2 the folder cannot be read).
pub fn run_args(args: Args) -> i32 {
    let dir = args.dir;
    let reports = match check_dir(&dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xtask golden: {e}");
            return 2;
        }
    };
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    for r in &reports {
        println!("{r}");
        match r.status {
            Status::Pass => pass += 1,
            Status::Skipped(_) => skip += 1,
            _ => fail += 1,
        }
    }
    println!(
        "golden: {pass} passed, {fail} failed, {skip} skipped of {} cases in {} (tolerance {LAYER_TOL:e} layers, {OPTIMIZER_TOL:e} optimizers)",
        reports.len(),
        dir.display()
    );
    if fail > 0 { 1 } else { 0 }
}
