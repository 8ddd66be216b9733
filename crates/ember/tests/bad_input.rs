//! Hostile input through the `ember` binary: damaged or inconsistent checkpoints, model
//! files with absurd sizes or stray keys, out-of-range options. Every one must end with
//! exit status 1 and a message naming the file or flag and the problem: no panic (101),
//! no allocation abort (a signal), no hang.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{arg, ember, fails_with, show};
use ember::TrainConfig;
use ember::checkpoint::{self, TensorData, TensorMap};
use ember::trainer::{Output, train};
use serde_json::{Value, json};

/// A fresh folder `name` with the tiny IDX set and spec, and a checkpoint of the spec
/// trained on the set for one epoch: the folder and the checkpoint.
fn trained(name: &str) -> (PathBuf, PathBuf) {
    let t = common::tiny(name, 100, 20);
    let cfg = TrainConfig {
        dataset: t.data.display().to_string(),
        model: t.spec.display().to_string(),
        epochs: 1,
        batch_size: 20,
        threads: 1,
        out: t.dir.join("run"),
        ..TrainConfig::default()
    };
    train(&cfg, None, Output::Quiet).unwrap();
    let best = t.dir.join("run").join("best.safetensors");
    (t.dir, best)
}

/// Copies checkpoint `src` to `name` in `dir` with its metadata and tensors edited, and
/// the content hash recomputed so that only the edit is wrong.
fn edited(
    src: &Path,
    dir: &Path,
    name: &str,
    meta: impl FnOnce(&mut Value),
    tensors: impl FnOnce(&mut TensorMap),
) -> String {
    let (mut t, md) = checkpoint::read_safetensors(src).unwrap();
    tensors(&mut t);
    let mut m: Value = serde_json::from_str(&md["ember"]).unwrap();
    meta(&mut m);
    m["content_sha256"] = checkpoint::content_hash(&t).into();
    let dst = dir.join(name);
    let md = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("ember".to_string(), m.to_string()),
    ]);
    checkpoint::write_safetensors(&dst, &t, md).unwrap();
    dst.display().to_string()
}

fn no_tensor_edit(_: &mut TensorMap) {}

/// A damaged copy of a checkpoint: its file name, the edits of its metadata and tensors,
/// and words the refusal must say besides the file name.
type EditCase = (
    &'static str,
    fn(&mut Value),
    fn(&mut TensorMap),
    &'static [&'static str],
);

#[test]
fn inconsistent_checkpoints_are_refused_on_load() {
    let (dir, best) = trained("bad-ckpt");
    let img = dir.join("img.png");
    common::write_gray_png(&img, 8, 8, |x, y| (x * 30 + y) as u8);
    let img = img.to_str().unwrap();
    let predict = |ckpt: &str| ember(&["predict", "--checkpoint", ckpt, img]);

    // Each case: the file's name, its edits of the metadata and the tensors, and words of
    // the message besides the file's name.
    let cases: [EditCase; 7] = [
        (
            "mean",
            |m| m["normalization"]["mean"] = json!([]),
            no_tensor_edit,
            &["normalisation", "0 means"],
        ),
        (
            "std",
            |m| m["normalization"]["std"] = json!([0.0]),
            no_tensor_edit,
            &["standard deviations"],
        ),
        (
            "shape",
            |m| m["input_shape"] = json!([1, 16, 16]),
            no_tensor_edit,
            &["input_shape [1, 16, 16]"],
        ),
        // Absurd sizes in the architecture: refused before anything that size is allocated.
        (
            "huge-input",
            |m| {
                m["model"]["input"] = json!([1, 100_000, 100_000]);
                m["input_shape"] = json!([1, 100_000, 100_000]);
            },
            no_tensor_edit,
            &["2^31"],
        ),
        (
            "huge-linear",
            |m| m["model"]["layer"][4]["out"] = json!(1u64 << 62),
            no_tensor_edit,
            &["2^31"],
        ),
        // Weights: integers where floats belong, values that are not numbers.
        (
            "i64",
            |_| {},
            |t| {
                let w = t.get_mut("0.weight").unwrap();
                w.data = TensorData::I64(w.to_f32().iter().map(|&x| x as i64).collect());
            },
            &["0.weight", "I64"],
        ),
        (
            "nan",
            |_| {},
            |t| {
                if let TensorData::F32(v) = &mut t.get_mut("4.bias").unwrap().data {
                    v[3] = f32::NAN;
                }
            },
            &["4.bias", "NaN"],
        ),
    ];
    for (name, meta, tensors, words) in cases {
        let file = format!("{name}.safetensors");
        let c = edited(&best, &dir, &file, meta, tensors);
        let mut want = vec![file.as_str()];
        want.extend(words);
        fails_with(&predict(&c), &want);
    }
    for (n, names) in [(3, json!(["a", "b", "c"])), (0, json!([]))] {
        let c = edited(
            &best,
            &dir,
            &format!("classes{n}.safetensors"),
            |m| m["classes"] = names,
            no_tensor_edit,
        );
        fails_with(
            &predict(&c),
            &[
                &format!("classes{n}.safetensors"),
                &format!("{n} class names"),
            ],
        );
    }
    // Metrics that are not numbers (written as null) do not make a checkpoint unreadable.
    let c = edited(
        &best,
        &dir,
        "null.safetensors",
        |m| m["metrics"]["val_loss"] = Value::Null,
        no_tensor_edit,
    );
    let out = predict(&c);
    assert!(out.status.success(), "{}", show(&out));
    let meta = checkpoint::read_meta(Path::new(&c)).unwrap();
    assert!(meta.metrics["val_loss"].is_nan());
    std::fs::remove_dir_all(&dir).unwrap();
}

const HUGE_SPECS: [(&str, &str); 4] = [
    (
        "conv-out",
        "input = [1, 8, 8]\n[[layer]]\ntype = \"conv2d\"\nout = 100000000000\nkernel = 3\n",
    ),
    (
        "kernel",
        "input = [1, 28, 28]\n[[layer]]\ntype = \"conv2d\"\nout = 32\nkernel = 4000\npadding = 2000\n",
    ),
    (
        "linear-out",
        "input = [1, 8, 8]\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"linear\"\nout = 4611686018427387904\n",
    ),
    (
        "input",
        "input = [1, 100000, 100000]\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"linear\"\nout = 10\n",
    ),
];

#[test]
fn model_files_with_absurd_sizes_are_refused_before_allocating() {
    let dir = common::temp_dir("bad-spec");
    for (name, text) in HUGE_SPECS {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        fails_with(&ember(&["summary", p]), &[&format!("{name}.toml"), "2^"]);
        fails_with(
            &ember(&["bench", "--model", p, "--seconds", "0.1"]),
            &[&format!("{name}.toml"), "2^"],
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stray_keys_in_model_files_are_refused_with_the_line() {
    let dir = common::temp_dir("stray-keys");
    let cases = [
        (
            "slope",
            common::TINY_SPEC.replace("type = \"relu\"", "type = \"relu\"\nslope = 0.2"),
            "slope",
        ),
        (
            "typo",
            format!("inputs = [1, 8, 8]\n{}", common::TINY_SPEC),
            "inputs",
        ),
        (
            "flatten",
            common::TINY_SPEC.replace("type = \"flatten\"", "type = \"flatten\"\nstart_dim = 1"),
            "start_dim",
        ),
    ];
    for (name, text, key) in cases {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = ember(&["summary", path.to_str().unwrap()]);
        fails_with(&out, &[&format!("{name}.toml"), key]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `ember args` in `dir`, failing the test if it takes more than `limit`.
fn within(dir: &Path, args: &[&str], limit: Duration) -> std::process::Output {
    common::output_within(
        Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(args)
            .current_dir(dir),
        limit,
    )
}

#[test]
fn out_of_range_options_are_refused() {
    let limit = Duration::from_secs(60);
    for (args, words) in [
        (vec!["bench", "--seconds", "NaN"], vec!["--seconds", "NaN"]),
        (vec!["bench", "--seconds", "inf"], vec!["--seconds"]),
        (
            vec!["bench", "--batch", "4611686018427387904"],
            vec!["--batch-size", "2^31"],
        ),
        (
            vec!["bench", "--threads", "3000"],
            vec!["--threads 3000", "per core"],
        ),
        (vec!["train", "--threads", "3000"], vec!["--threads 3000"]),
        (
            vec!["train", "--label-smoothing", "2"],
            vec!["--label-smoothing 2"],
        ),
        (vec!["train", "--val-split", "1.5"], vec!["--val-split"]),
        (vec!["train", "--lr", "NaN"], vec!["--lr"]),
        (
            vec!["train", "--batch-size", "4611686018427387904"],
            vec!["--batch-size", "2^31"],
        ),
        (
            vec![
                "eval",
                "--checkpoint",
                "x",
                "--dataset",
                "sample",
                "--threads",
                "3000",
            ],
            vec!["--threads"],
        ),
        (
            vec!["train", "--distributed", "--collective-timeout", "NaN"],
            vec!["--collective-timeout"],
        ),
    ] {
        // In a folder of its own: a refusal that regressed would start a run there.
        let dir = common::temp_dir("out-of-range");
        let out = within(&dir, &args, limit);
        fails_with(&out, &words);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // Values outside a closed set are refused by the parser, which lists the set.
    let out = ember(&["train", "--optimizer", "lbfgs"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lbfgs") && err.contains("sgd, adam, adamw"),
        "{err}"
    );
    let out = ember(&["train", "--image-size", "0x9"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn eval_without_test_images_fails() {
    let (dir, best) = trained("empty-test");
    let flat = dir.join("flat");
    common::write_flat_folder(&flat, 10, 2, 1);
    let out = ember(&["eval", "--checkpoint", arg(&best), "--dataset", arg(&flat)]);
    fails_with(&out, &["flat", "no test images"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_goes_on_past_unreadable_images_and_fails_at_the_end() {
    let (dir, best) = trained("predict-some");
    let good = dir.join("good.png");
    common::write_gray_png(&good, 8, 8, |x, _| (x * 30) as u8);
    let broken = dir.join("broken.png");
    std::fs::write(&broken, b"\x89PNG not really").unwrap();
    let missing = dir.join("missing.png");
    let paths: Vec<String> = [&broken, &good, &missing]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["predict", "--checkpoint", best.to_str().unwrap()];
    args.extend(paths.iter().map(String::as_str));
    let out = ember(&args);
    fails_with(&out, &["broken.png", "missing.png", "2 of 3 images"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("good.png:") && !stdout.contains("broken.png"),
        "{}",
        show(&out)
    );
    // With --json every image gets a line, the unreadable ones an error.
    args.push("--json");
    let out = ember(&args);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", show(&out));
    assert_eq!(lines.iter().filter(|l| l["error"].is_string()).count(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_diverging_before_its_first_checkpoint_says_there_is_none() {
    let t = common::tiny("nan-first", 200, 20);
    let dir = t.dir;
    let cfg = TrainConfig {
        dataset: t.data.display().to_string(),
        model: t.spec.display().to_string(),
        lr: 1e12,
        momentum: 0.0,
        nesterov: false,
        batch_size: 16,
        threads: 1,
        out: dir.join("run"),
        ..TrainConfig::default()
    };
    let e = train(&cfg, None, Output::Quiet).unwrap_err().to_string();
    assert!(e.contains("loss became") && e.contains("epoch 1"), "{e}");
    assert!(
        e.contains("No checkpoint was written") && !e.contains("last.safetensors"),
        "{e}"
    );
    assert!(!dir.join("run").join("last.safetensors").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
