//! `ember export --onnx` checked by ONNX Runtime: the zoo models, a spec that uses every
//! layer and option Ember has, and a briefly trained fmnist-bn give the logits Ember gives
//! within 1e-4, relative to the largest logit of each image (|ort - ember| <= 1e-4 *
//! max|ember|), with the class names and normalisation in the model's metadata.
//!
//! Needs a Python with onnxruntime, onnx (its checker validates every file) and numpy: `$EMBER_PYTHON`,
//! `~/torch-venv/bin/python3` or `python3`. Without one the tests are skipped with a note,
//! except under CI, where they fail (`.ci/run` installs them).

mod deploy_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use deploy_common::{python_with, random_checkpoint, temp_dir};
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
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["export", "--onnx"])
        .arg(&onnx)
        .arg("--checkpoint")
        .arg(ckpt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export of {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
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
    let run = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_run.py"))
        .arg(&onnx)
        .arg(&input)
        .arg(&output)
        .arg(format!("{n},{c},{h},{w}"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "ONNX Runtime on {name} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        report["checked"], true,
        "onnx.checker did not run: {report}"
    );
    let got: Vec<f32> = std::fs::read(&output)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
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
const EVERY_LAYER: &str = r#"
name = "every-layer"
input = [3, 20, 18]
[[layer]]
type = "conv2d"
out = 8
kernel = [3, 5]
stride = [1, 2]
padding = [2, 1]
dilation = [2, 1]
[[layer]]
type = "batch_norm2d"
eps = 1e-3
[[layer]]
type = "relu"
[[layer]]
type = "conv2d"
out = 8
kernel = 3
padding = 1
groups = 4
bias = false
[[layer]]
type = "relu"
[[layer]]
type = "leaky_relu"
slope = 0.1
[[layer]]
type = "max_pool2d"
kernel = 3
stride = 2
padding = 1
[[layer]]
type = "residual"
[[layer.block]]
type = "conv2d"
out = 8
kernel = 3
padding = 1
[[layer.block]]
type = "gelu"
[[layer.block]]
type = "conv2d"
out = 8
kernel = 1
[[layer]]
type = "avg_pool2d"
kernel = 3
stride = 1
padding = 1
count_include_pad = false
[[layer]]
type = "residual"
[[layer.block]]
type = "conv2d"
out = 16
kernel = 3
stride = 2
padding = 1
[[layer.block]]
type = "batch_norm2d"
[[layer.block]]
type = "relu"
[[layer.shortcut]]
type = "conv2d"
out = 16
kernel = 1
stride = 2
[[layer]]
type = "avg_pool2d"
kernel = 2
stride = 1
padding = 1
[[layer]]
type = "dropout"
p = 0.3
[[layer]]
type = "relu"
[[layer]]
type = "max_pool2d"
kernel = 2
[[layer]]
type = "global_avg_pool2d"
[[layer]]
type = "flatten"
[[layer]]
type = "linear"
out = 12
bias = false
[[layer]]
type = "gelu"
[[layer]]
type = "linear"
out = 5
[[layer]]
type = "scale"
factor = 0.5
"#;

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
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", "--model"])
        .arg(&spec)
        .args([
            "--epochs",
            "1",
            "--limit",
            "1024",
            "--batch-size",
            "64",
            "--val-split",
            "0",
        ])
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "training failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Training moved the batch-norm statistics away from their initial values.
    let (meta, _) = ember::checkpoint::load(&run).unwrap();
    assert_eq!(meta.epoch, 1);
    let report = check_against_ort(&py, &run.join("best.safetensors"), 8, "fmnist-bn");
    assert_eq!(report["shape"], serde_json::json!([8, 10]));
}
