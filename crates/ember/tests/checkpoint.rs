//! Checkpoints: PyTorch state_dict interop on the golden end-to-end case, atomic files,
//! damaged or mismatched checkpoints rejected with clear errors.

mod common;

use std::collections::HashMap;
use std::path::Path;

use ember::checkpoint::{self, CheckpointMeta, Normalization, StoredTensor, TensorData, TensorMap};
use ember::optimizer::TrainOptimizer;
use ember::spec::ModelSpec;
use ember_layers::loss::softmax_cross_entropy;
use ember_layers::{Layer, Mode};
use ember_tensor::Tensor;
use serde_json::Value;

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden/train_step.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tensor(v: &Value) -> (Vec<usize>, Vec<f64>) {
    let shape = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect();
    (shape, data)
}

/// The golden case's network as a spec: conv(1->4, k3, p1) relu maxpool2 flatten linear(->3).
fn golden_spec(g: &Value) -> ModelSpec {
    let (shape, _) = tensor(&g["inputs"]["input"]);
    let text = format!(
        "input = [{}, {}, {}]\n[[layer]]\ntype = \"conv2d\"\nout = 4\nkernel = 3\npadding = 1\n[[layer]]\ntype = \"relu\"\n\
         [[layer]]\ntype = \"max_pool2d\"\nkernel = 2\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"linear\"\nout = 3\n",
        shape[1], shape[2], shape[3]
    );
    ModelSpec::from_toml(&text, "golden").unwrap()
}

/// A checkpoint description for the golden network (three classes).
fn meta_for(spec: &ModelSpec) -> CheckpointMeta {
    CheckpointMeta {
        format: checkpoint::FORMAT.into(),
        ember_version: "test".into(),
        zoo: None,
        model: spec.clone(),
        input_shape: spec.input,
        normalization: Normalization {
            mean: vec![0.5],
            std: vec![0.5],
        },
        classes: vec!["a".into(), "b".into(), "c".into()],
        epoch: 1,
        step: 1,
        metrics: Default::default(),
        content_sha256: String::new(),
        data: None,
    }
}

fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (*g as f64 - w).abs() / (1.0 + w.abs()) <= tol,
            "{what}: {g} vs {w}"
        );
    }
}

#[test]
fn pytorch_state_dict_loads_trains_and_saves_back() {
    let g = golden();
    let spec = golden_spec(&g);
    let mut model = spec.build().unwrap();
    // A file as `safetensors.torch.save_file(model.state_dict())` writes it.
    let mut state = TensorMap::new();
    for name in ["0.weight", "0.bias", "4.weight", "4.bias"] {
        let (shape, data) = tensor(&g["inputs"][name]);
        state.insert(
            name.into(),
            StoredTensor {
                shape,
                data: TensorData::F32(data.iter().map(|&x| x as f32).collect()),
            },
        );
    }
    let dir = common::temp_dir("interop");
    let torch_file = dir.join("torch.safetensors");
    checkpoint::write_safetensors(
        &torch_file,
        &state,
        HashMap::from([("format".into(), "pt".into())]),
    )
    .unwrap();
    let (read, _) = checkpoint::read_safetensors(&torch_file).unwrap();
    checkpoint::load_model_state(&mut model, &read, &torch_file).unwrap();

    // Same logits, loss and SGD update as PyTorch.
    let (xs, xd) = tensor(&g["inputs"]["input"]);
    let x = Tensor::from_vec(
        [xs[0], xs[1], xs[2], xs[3]],
        xd.iter().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let labels: Vec<usize> = g["inputs"]["labels"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let mut grad = Tensor::zeros([1]);
    let logits = model.forward(&x, Mode::Train);
    close(
        logits.data(),
        &tensor(&g["expected"]["logits"]).1,
        1e-4,
        "logits",
    );
    let loss = softmax_cross_entropy(logits, &labels, 0.0, &mut grad);
    close(&[loss], &tensor(&g["expected"]["loss"]).1, 1e-4, "loss");
    model.zero_grad();
    model.backward(&x, &grad, false);
    let lr = g["params"]["optimizer"]["lr"].as_f64().unwrap() as f32;
    let momentum = g["params"]["optimizer"]["momentum"].as_f64().unwrap() as f32;
    TrainOptimizer::sgd(lr, momentum)
        .unwrap()
        .step(&mut model, 0)
        .unwrap();
    model.visit_params("", &mut |name, p| {
        close(
            p.value.data(),
            &tensor(&g["expected"][format!("updated.{name}")]).1,
            1e-4,
            name,
        );
    });

    // Back: an Ember checkpoint is a plain state_dict with exactly PyTorch's keys.
    let mut meta = meta_for(&spec);
    let ours = dir.join("ember.safetensors");
    checkpoint::save(&ours, &mut model, &mut meta).unwrap();
    let (back, md) = checkpoint::read_safetensors(&ours).unwrap();
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        state.keys().collect::<Vec<_>>()
    );
    assert_eq!(md.get("format").map(String::as_str), Some("pt"));
    for (name, t) in &back {
        assert_eq!(t.shape, state[name].shape);
    }
    let (meta2, mut reloaded) = checkpoint::load(&ours).unwrap();
    assert_eq!(meta2, meta);
    assert_eq!(checkpoint::model_state(&mut reloaded), back);
    assert!(dir.join("ember.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn saved_checkpoint(dir: &Path) -> std::path::PathBuf {
    let g = golden();
    let spec = golden_spec(&g);
    let mut model = spec.build().unwrap();
    let mut meta = meta_for(&spec);
    let path = dir.join("c.safetensors");
    checkpoint::save(&path, &mut model, &mut meta).unwrap();
    path
}

#[test]
fn damaged_checkpoints_are_refused_with_the_file_named() {
    let dir = common::temp_dir("damaged");
    let path = saved_checkpoint(&dir);
    let bytes = std::fs::read(&path).unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 7]).unwrap();
    let e = checkpoint::load(&truncated).unwrap_err().to_string();
    assert!(e.contains("truncated.safetensors"), "{e}");

    let flipped = dir.join("flipped.safetensors");
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    std::fs::write(&flipped, &b).unwrap();
    let e = checkpoint::load(&flipped).unwrap_err().to_string();
    assert!(
        e.contains("hash mismatch") && e.contains("flipped.safetensors"),
        "{e}"
    );

    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    assert!(
        checkpoint::load(&empty)
            .unwrap_err()
            .to_string()
            .contains("empty.safetensors")
    );

    let e = checkpoint::load(&dir.join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_of_another_architecture_does_not_load() {
    let dir = common::temp_dir("otherarch");
    let path = saved_checkpoint(&dir);
    let (state, _) = checkpoint::read_safetensors(&path).unwrap();
    let mut other = ember::zoo::fmnist_cnn().build().unwrap();
    let e = checkpoint::load_model_state(&mut other, &state, &path)
        .unwrap_err()
        .to_string();
    common::assert_contains(&e, &["does not fit", "c.safetensors"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writes_are_atomic_and_leave_no_temp_files() {
    let dir = common::temp_dir("atomic");
    let path = saved_checkpoint(&dir);
    checkpoint::write_atomic(&path, b"replaced").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"replaced");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    // Writing into a path whose folder is a file fails cleanly, naming the path.
    let e = checkpoint::write_atomic(&path.join("sub"), b"x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
