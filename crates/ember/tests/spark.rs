//! The Spark launcher, `scripts/spark_train.py`, in pyspark's local mode (`local[2]`): its
//! barrier stage's task 0 runs `mpirun -n 2 ember train --distributed` over the tasks'
//! hosts, and the run folder must equal that of `mpirun -n 2` started by hand with the same
//! arguments (the same processes doing the same sums: weights bit for bit, the same
//! metrics). A failing job must fail the stage and the script's exit status.
//!
//! Needs `mpirun` and an `ember` with the `mpi` feature (see `common::mpi`), Java and a
//! Python with pyspark (`$EMBER_PYTHON`, else `python3`). Without them the tests are
//! skipped with a note, except under CI, where they fail.

mod common;
#[path = "../../data/tests/common/pyspark.rs"]
mod pyspark;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use common::mpi::{bin, mpi_ember};
use common::{events, read_json, succeeded, words};
use ember::checkpoint;
use ember_layers::{Layer, Param};
use pyspark::pyspark_python;
use serde_json::Value;

/// What both the launcher and the hand-started job need (the Python with pyspark) and a
/// fresh folder `name`, or None where a tool is missing.
fn tools_and_dir(name: &str) -> Option<(String, PathBuf)> {
    mpi_ember()?;
    Some((pyspark_python()?, common::temp_dir(name)))
}

fn launcher() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/spark_train.py")
}

/// `ember train` arguments: 2 epochs of 9 steps of 2 x 64 images of the sample, validated.
fn train_args(out: &Path) -> Vec<String> {
    let mut args = words(
        "--dataset sample --limit 1280 --epochs 2 --batch-size 64 --lr 0.01 --seed 7 \
         --threads 1 --json --log-every 1 --out",
    );
    args.push(out.display().to_string());
    args
}

fn launch(python: &str, workdir: &Path, args: &[String]) -> Output {
    let start = Instant::now();
    let out = Command::new(python)
        .arg(launcher())
        .args(["--master", "local[2]", "--ember", bin(), "--workdir"])
        .arg(workdir)
        .arg("--")
        .args(args)
        .output()
        .unwrap();
    eprintln!("spark_train.py: {:.1} s", start.elapsed().as_secs_f64());
    out
}

/// Every tensor of a checkpoint, by name, as bits.
fn tensors(file: &Path) -> Vec<(String, Vec<u32>)> {
    let (_, mut model) = checkpoint::load(file).unwrap();
    let mut out = Vec::new();
    model.visit_params("", &mut |n, p: &mut Param| {
        out.push((
            n.to_string(),
            p.value.data().iter().map(|v| v.to_bits()).collect(),
        ))
    });
    model.visit_buffers("", &mut |n, t| {
        out.push((
            n.to_string(),
            t.data().iter().map(|v| v.to_bits()).collect(),
        ))
    });
    out
}

/// The metrics lines without their timings.
fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("images_per_s");
            m.remove("train_seconds");
            v
        })
        .collect()
}

#[test]
fn the_spark_launcher_trains_as_mpirun_does() {
    let Some((python, dir)) = tools_and_dir("spark-launch") else {
        return;
    };
    let (spark, manual) = (dir.join("spark"), dir.join("manual"));
    let out = succeeded(launch(&python, &dir, &train_args(Path::new("spark"))));
    let by_hand = Command::new("mpirun")
        .args(["-n", "2", bin(), "train", "--distributed"])
        .args(train_args(&manual))
        .output()
        .unwrap();
    assert!(by_hand.status.success());

    // The driver printed ember's stdout: every step's loss, as the job started by hand.
    let (a, b) = (events(&out.stdout, "step"), events(&by_hand.stdout, "step"));
    assert_eq!(a.len(), 18, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(a, b);
    let done = events(&out.stdout, "done");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["processes"], 2);
    // The run folders: the same weights bit for bit, the same metrics and config.
    for file in ["last.safetensors", "best.safetensors"] {
        assert_eq!(
            tensors(&spark.join(file)),
            tensors(&manual.join(file)),
            "{file}"
        );
    }
    assert_eq!(metrics(&spark).len(), 2);
    assert_eq!(metrics(&spark), metrics(&manual));
    let config = |run: &Path| {
        let mut v = read_json(&run.join("config.json"));
        v.as_object_mut().unwrap().remove("out");
        v
    };
    assert_eq!(config(&spark), config(&manual));
    assert_eq!(config(&spark)["world"], 2);
}

#[test]
fn a_failing_job_fails_the_stage_and_the_launcher() {
    let Some((python, dir)) = tools_and_dir("spark-fail") else {
        return;
    };
    let mut args = train_args(Path::new("run"));
    args[1] = "no-such-dataset".into();
    let out = launch(&python, &dir, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rank 0 of 2") || stderr.contains("rank 1 of 2"),
        "{stderr}"
    );
    assert!(stderr.contains("no-such-dataset"), "{stderr}");
    assert!(
        stderr.contains("ember-spark: the training stage failed (mpirun status 1)"),
        "{stderr}"
    );
    assert!(!dir.join("run").join("last.safetensors").exists());
}
