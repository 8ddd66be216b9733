//! `ember import`: a PyTorch `state_dict` in safetensors becomes a run folder that `eval`,
//! `predict`, `serve` and `export` take; every mismatch of names, shapes and dtypes is
//! named. The state_dicts are written in PyTorch's layout from Rust (always) and by
//! PyTorch itself where a Python with torch and safetensors is found (its logits must
//! then equal Ember's).

mod common;
mod deploy_common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use common::{arg, ember, ember_ok, show, temp_dir};
use deploy_common::{python_with, read_f32};
use ember::checkpoint::{StoredTensor, TensorData, TensorMap, write_safetensors};
use ember_layers::{Layer, Mode};
use ember_tensor::{Rng, Tensor};

fn f32_tensor(shape: &[usize], rng: &mut Rng) -> StoredTensor {
    let n = shape.iter().product();
    StoredTensor {
        shape: shape.to_vec(),
        data: TensorData::F32((0..n).map(|_| rng.uniform(-0.1, 0.1)).collect()),
    }
}

/// fmnist-cnn's `state_dict` as PyTorch names and lays it out (`nn.Sequential` indices,
/// OIHW convolution weights, `[out, in]` linear weights).
fn fmnist_cnn_state(rng: &mut Rng) -> TensorMap {
    common::FMNIST_CNN_STATE
        .into_iter()
        .map(|(n, s)| (n.to_string(), f32_tensor(s, rng)))
        .collect()
}

const CLASSES: &str = "T-shirt,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Boot";

/// Fashion-MNIST's normalisation: mean and standard deviation.
const NORM: [&str; 2] = ["0.286", "0.353"];

/// `ember import` of `state` as `model` with `classes` and normalisation `[mean, std]`
/// into `out`, with `extra` flags.
fn import_as(
    state: &Path,
    model: &str,
    classes: &str,
    [mean, std]: [&str; 2],
    out: &Path,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "import",
        "--state-dict",
        arg(state),
        "--model",
        model,
        "--classes",
        classes,
        "--mean",
        mean,
        "--std",
        std,
        "--out",
        arg(out),
    ];
    args.extend(extra);
    ember(&args)
}

/// `ember import` of an fmnist-cnn `state` with Fashion-MNIST's classes.
fn import(state: &Path, out: &Path, extra: &[&str]) -> Output {
    import_as(state, "fmnist-cnn", CLASSES, NORM, out, extra)
}

#[test]
fn a_pytorch_layout_state_dict_becomes_a_run_folder_every_command_takes() {
    let dir = temp_dir("import-rust");
    let state = fmnist_cnn_state(&mut Rng::new(1));
    let file = dir.join("w.safetensors");
    write_safetensors(&file, &state, HashMap::new()).unwrap();
    let run = dir.join("run");
    let out = import(&file, &run, &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("8 tensors"),
        "{}",
        show(&out)
    );

    // The weights are the file's, the description the flags'.
    let (meta, mut model) = ember::checkpoint::load(&run).unwrap();
    assert_eq!(meta.classes[1], "Trouser");
    assert_eq!(meta.normalization.mean, vec![0.286]);
    let loaded = ember::checkpoint::model_state(&mut model);
    assert_eq!(loaded, state);

    // predict, eval, export and serve take it.
    let img = dir.join("x.png");
    std::fs::write(&img, deploy_common::png(1, 28, 28, 3)).unwrap();
    ember_ok(&["predict", "--checkpoint", arg(&run), arg(&img)]);
    ember_ok(&["eval", "--checkpoint", arg(&run), "--dataset", "sample"]);
    let onnx = dir.join("m.onnx");
    let out = ember(&["export", "--onnx", arg(&onnx), "--checkpoint", arg(&run)]);
    assert!(out.status.success() && onnx.exists(), "{}", show(&out));
    let server = deploy_common::ServeProcess::start(&run, &[]);
    let (s, body) = deploy_common::read(
        deploy_common::agent()
            .get(&server.url("/v1/model"))
            .call()
            .unwrap(),
    );
    assert_eq!(s, 200);
    assert!(body.contains("Trouser"), "{body}");

    // An existing checkpoint is kept unless --force.
    let again = import(&file, &run, &[]);
    assert_eq!(again.status.code(), Some(1), "{}", show(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(import(&file, &run, &["--force"]).status.success());
}

#[test]
fn every_mismatch_is_named() {
    let dir = temp_dir("import-mismatch");
    let mut rng = Rng::new(2);
    let mut state = fmnist_cnn_state(&mut rng);
    state.remove("3.bias");
    state.insert("7.weight".into(), f32_tensor(&[128, 3000], &mut rng));
    state.insert("10.weight".into(), f32_tensor(&[4], &mut rng));
    let file = dir.join("w.safetensors");
    write_safetensors(&file, &state, HashMap::new()).unwrap();
    let out = import(&file, &dir.join("run"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for w in [
        "w.safetensors",
        "3 problems",
        "missing tensor 3.bias (shape [64])",
        "tensor 7.weight has shape [128, 3000], the model needs [128, 3136]",
        "unexpected tensor 10.weight",
    ] {
        assert!(err.contains(w), "{w:?} not in\n{err}");
    }
    assert!(!dir.join("run/best.safetensors").exists());

    // A wrapped model's names (`module.0.weight`): the hint says what to save instead.
    let wrapped: TensorMap = fmnist_cnn_state(&mut rng)
        .into_iter()
        .map(|(n, t)| (format!("module.{n}"), t))
        .collect();
    write_safetensors(&file, &wrapped, HashMap::new()).unwrap();
    let err = String::from_utf8_lossy(&import(&file, &dir.join("run"), &[]).stderr).into_owned();
    assert!(
        err.contains("\"module.\"") && err.contains("missing tensor 0.weight"),
        "{err}"
    );

    // Integer weights, NaN weights.
    let mut ints = fmnist_cnn_state(&mut rng);
    ints.insert(
        "0.bias".into(),
        StoredTensor {
            shape: vec![32],
            data: TensorData::I64(vec![1; 32]),
        },
    );
    write_safetensors(&file, &ints, HashMap::new()).unwrap();
    let err = String::from_utf8_lossy(&import(&file, &dir.join("run"), &[]).stderr).into_owned();
    assert!(err.contains("0.bias") && err.contains("I64"), "{err}");
    let mut nan = fmnist_cnn_state(&mut rng);
    nan.insert(
        "9.bias".into(),
        StoredTensor {
            shape: vec![10],
            data: TensorData::F32(vec![f32::NAN; 10]),
        },
    );
    write_safetensors(&file, &nan, HashMap::new()).unwrap();
    let err = String::from_utf8_lossy(&import(&file, &dir.join("run"), &[]).stderr).into_owned();
    assert!(err.contains("9.bias") && err.contains("NaN"), "{err}");

    // Flags: class count, normalisation, the file itself.
    write_safetensors(&file, &fmnist_cnn_state(&mut rng), HashMap::new()).unwrap();
    let run = dir.join("run");
    let bad_classes = import_as(&file, "cifar-cnn", "a,b", ["0.5", "0.5"], &run, &[]);
    let err = String::from_utf8_lossy(&bad_classes.stderr);
    assert!(
        err.contains("0.weight") && err.contains("[32, 3, 3, 3]"),
        "{err}"
    );
    let bad_std = import(&file, &run, &["--std", "0"]);
    assert!(
        String::from_utf8_lossy(&bad_std.stderr).contains("--mean/--std"),
        "{}",
        show(&bad_std)
    );
    let missing = import(&dir.join("nope.safetensors"), &run, &[]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("nope.safetensors"),
        "{}",
        show(&missing)
    );
    std::fs::write(&file, b"not safetensors").unwrap();
    let garbage = import(&file, &run, &[]);
    assert_eq!(garbage.status.code(), Some(1), "{}", show(&garbage));
    assert!(
        String::from_utf8_lossy(&garbage.stderr).contains("not a valid safetensors"),
        "{}",
        show(&garbage)
    );
}

#[test]
fn a_class_count_that_does_not_fit_a_spec_file_is_refused() {
    let dir = temp_dir("import-classes");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fmnist-bn.toml");
    let out = import_as(
        Path::new("unused.safetensors"),
        arg(&spec),
        "a,b,c",
        ["0.5", "0.5"],
        &dir,
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--classes gives 3 names, the model has 10 outputs"),
        "{}",
        show(&out)
    );
}

/// PyTorch's fmnist-bn (models/fmnist-bn.toml) with random weights and batch-norm
/// statistics, in eval mode: its state_dict through `safetensors.torch.save_file`, an
/// input and its logits.
const TORCH_FMNIST_BN: &str = r#"
import sys, torch, numpy as np
from torch import nn
from safetensors.torch import save_file
out = sys.argv[1]
torch.manual_seed(0)
def block(i, o):
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
m = nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64),
                  nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.25), nn.Linear(3136, 256), nn.ReLU(),
                  nn.Linear(256, 10))
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.1, 0.1)
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
            mod.num_batches_tracked.fill_(123)
m.eval()
save_file(m.state_dict(), out + "/w.safetensors")
x = torch.randn(4, 1, 28, 28)
with torch.no_grad():
    y = m(x)
x.numpy().astype("<f4").tofile(out + "/x.f32")
y.numpy().astype("<f4").tofile(out + "/y.f32")
"#;

#[test]
fn a_state_dict_saved_by_pytorch_gives_pytorchs_logits() {
    // PyTorch is large and not installed by CI: this test runs where it is found.
    let Some(py) = python_with(&["torch", "safetensors", "numpy"], false) else {
        return;
    };
    let dir = temp_dir("import-torch");
    common::run_ok(Command::new(py).args(["-c", TORCH_FMNIST_BN]).arg(&dir));
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fmnist-bn.toml");
    let run = dir.join("run");
    common::succeeded(import_as(
        &dir.join("w.safetensors"),
        arg(&spec),
        CLASSES,
        NORM,
        &run,
        &[],
    ));
    let (_, mut model) = ember::checkpoint::load(&run).unwrap();
    let x = Tensor::from_vec([4, 1, 28, 28], read_f32(&dir.join("x.f32"))).unwrap();
    let got = model.forward(&x, Mode::Eval).to_vec();
    let want = read_f32(&dir.join("y.f32"));
    for (i, (g, w)) in got.chunks(10).zip(want.chunks(10)).enumerate() {
        let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "image {i}: ember {a}, PyTorch {b}"
            );
        }
    }
}
