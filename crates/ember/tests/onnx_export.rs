//! `ember export --onnx` checked by ONNX Runtime: the zoo models, a spec that uses every
//! layer and option Ember has, and a briefly trained fmnist-bn give the logits Ember gives
//! within 1e-4, relative to the largest logit of each image (|ort - ember| <= 1e-4 *
//! max|ember|), with the class names and normalisation in the model's metadata.
//!
//! Needs a Python with onnxruntime, onnx (its checker validates every file) and numpy: `$EMBER_PYTHON`,
//! `~/torch-venv/bin/python3` or `python3`. Without one the tests are skipped with a note,
//! except under CI, where they fail (`.ci/run` installs them).

mod common;
mod deploy_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run_ok, temp_dir};
use deploy_common::{python_with, random_checkpoint, read_f32};
use ember_layers::{Layer, Mode};
use ember_tensor::{Rng, Tensor};
use serde_json::Value;

/// Relative tolerance (see the module docs).
const TOL: f32 = 1e-4;

fn python() -> Option<PathBuf> {
    python_with(&["onnxruntime", "onnx", "numpy"], true)
}

/// Exports checkpoint `ckpt` with the `ember` binary, runs it with ONNX Runtime on `n`
/// random normalised images and compares with Ember's forward pass; returns the JSON the
/// runner printed.
fn check_against_ort(py: &Path, ckpt: &Path, n: usize, name: &str) -> Value {
    let dir = ckpt.parent().unwrap();
    let onnx = dir.join(format!("{name}.onnx"));
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["export", "--onnx"])
            .arg(&onnx)
            .arg("--checkpoint")
            .arg(ckpt),
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("opset 13") && printed.contains(&onnx.display().to_string()),
        "{printed}"
    );

    let (meta, mut model) = ember::checkpoint::load(ckpt).unwrap();
    let [c, h, w] = meta.input_shape;
    let x = Tensor::normal([n, c, h, w], 0.0, 1.0, &mut Rng::new(42));
    let want = model.forward(&x, Mode::Eval).clone();
    let input = dir.join(format!("{name}.in.f32"));
    let output = dir.join(format!("{name}.out.f32"));
    let bytes: Vec<u8> = x.data().iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input, bytes).unwrap();
    // ONNX Runtime on the model.
    let run = run_ok(
        Command::new(py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_run.py"))
            .arg(&onnx)
            .arg(&input)
            .arg(&output)
            .arg(format!("{n},{c},{h},{w}")),
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        report["checked"], true,
        "onnx.checker did not run: {report}"
    );
    let got = read_f32(&output);
    assert_eq!(got.len(), want.len(), "{name}: {report}");
    let k = want.len() / n;
    let mut worst = 0.0f32;
    for (i, (g, e)) in got.chunks(k).zip(want.data().chunks(k)).enumerate() {
        let scale = e
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()))
            .max(f32::MIN_POSITIVE);
        for (j, (a, b)) in g.iter().zip(e).enumerate() {
            let rel = (a - b).abs() / scale;
            worst = worst.max(rel);
            assert!(
                rel <= TOL,
                "{name}: image {i} logit {j}: onnxruntime {a}, ember {b} ({rel:.2e} of {scale})"
            );
        }
    }
    eprintln!("{name}: largest difference {worst:.2e} of the largest logit");
    let md = &report["metadata"];
    let classes: Vec<String> = serde_json::from_str(md["classes"].as_str().unwrap()).unwrap();
    assert_eq!(classes, meta.classes, "{name}");
    let norm: Value = serde_json::from_str(md["normalization"].as_str().unwrap()).unwrap();
    assert_eq!(
        norm["mean"].as_array().unwrap().len(),
        meta.normalization.mean.len()
    );
    assert_eq!(
        md["checkpoint_sha256"].as_str().unwrap(),
        ember::checkpoint::file_sha256(&ember::checkpoint::resolve(ckpt).unwrap()).unwrap()
    );
    report
}

#[test]
fn zoo_models_match_onnx_runtime() {
    let Some(py) = python() else { return };
    for name in ember::zoo::NAMES {
        let dir = temp_dir(&format!("onnx-{name}"));
        let ckpt = random_checkpoint(&dir, name, 3);
        let n = if *name == "resnet9" { 2 } else { 3 };
        check_against_ort(&py, &ckpt, n, name);
    }
}

/// Every layer type and option: rectangular kernels, strides, padding and dilation, grouped
/// and bias-free convolutions, ReLUs Ember fuses into a convolution and into a max pool,
/// padded max and average pools with and without count_include_pad, leaky ReLU, GELU,
/// batch norm, residual blocks with identity and projection shortcuts, dropout, global
/// average pooling, linear layers with and without bias, and a scale.
const EVERY_LAYER: &str = include_str!("specs/every-layer.toml");

#[test]
fn every_layer_and_option_matches_onnx_runtime() {
    let Some(py) = python() else { return };
    // The spec exercises both ReLU fusions (into the first conv's epilogue, into a max pool).
    let spec = ember::ModelSpec::from_toml(EVERY_LAYER, "every-layer").unwrap();
    let net = spec.build().unwrap();
    assert!(
        net.is_fused(4) && net.is_fused(12),
        "the ReLUs are not fused as intended"
    );
    let dir = temp_dir("onnx-every-layer");
    let ckpt = random_checkpoint(&dir, EVERY_LAYER, 5);
    check_against_ort(&py, &ckpt, 4, "every-layer");
}

#[test]
fn a_trained_fmnist_bn_matches_onnx_runtime() {
    let Some(py) = python() else { return };
    let dir = temp_dir("onnx-fmnist-bn");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fmnist-bn.toml");
    let run = dir.join("run");
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["train", "--model"])
            .arg(&spec)
            .args(["--epochs", "1", "--limit", "1024", "--batch-size", "64"])
            .args(["--val-split", "0", "--out"])
            .arg(&run),
    );
    // Training moved the batch-norm statistics away from their initial values.
    let (meta, _) = ember::checkpoint::load(&run).unwrap();
    assert_eq!(meta.epoch, 1);
    let report = check_against_ort(&py, &run.join("best.safetensors"), 8, "fmnist-bn");
    assert_eq!(report["shape"], serde_json::json!([8, 10]));
}
