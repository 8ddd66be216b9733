//! Training on your own images: a flat folder split three ways, images resized on load
//! (and `eval` and `predict` resizing the same way), a model file without `input`, a zoo
//! model fitted to the class count, and fine-tuning with frozen layers.

mod common;

use std::path::{Path, PathBuf};

use common::{arg, ember, ember_ok, eval_json, fails_with, json_of, show};
use ember::TrainConfig;
use ember::checkpoint;
use ember::trainer::{Output, train};

fn tiny(dir: &Path, dataset: &Path) -> TrainConfig {
    let spec = common::write_spec(dir, "tiny.toml", common::TINY_SPEC);
    TrainConfig {
        dataset: dataset.display().to_string(),
        model: spec.display().to_string(),
        epochs: 3,
        batch_size: 16,
        val_split: 0.2,
        threads: 2,
        out: dir.join("run"),
        ..TrainConfig::default()
    }
}

/// One epoch of the model file `spec` on a fresh tiny IDX set of `n_train` images in
/// folder `name`: the folder and the configuration (run folder `run`).
fn one_epoch(name: &str, n_train: usize, spec: &str) -> (PathBuf, TrainConfig) {
    let dir = common::temp_dir(name);
    let data = dir.join("data");
    common::write_tiny_idx(&data, n_train, 20);
    let mut cfg = tiny(&dir, &data);
    std::fs::write(&cfg.model, spec).unwrap();
    cfg.epochs = 1;
    train(&cfg, None, Output::Quiet).unwrap();
    (dir, cfg)
}

#[test]
fn a_flat_folder_is_split_into_training_validation_and_test_images() {
    let (dir, flat) = common::flat_folder("flat-split", 10, 30, 1);
    let report = train(&tiny(&dir, &flat), None, Output::Quiet).unwrap();
    // 10% of 300 held out for testing (stratified), 20% of the rest for validation.
    assert_eq!(report.test.count, 30);
    assert!(report.test_accuracy > 0.3, "{}", report.test_accuracy);
    // eval holds out the same test images.
    let e = eval_json(&dir.join("run"), arg(&flat));
    assert_eq!(e["count"], 30);
    assert_eq!(e["accuracy"].as_f64().unwrap(), report.test_accuracy);
    // A dataset with a test part of its own takes no --test-split.
    let idx = dir.join("idx");
    common::write_tiny_idx(&idx, 50, 10);
    let cfg = TrainConfig {
        test_split: Some(0.2),
        out: dir.join("run2"),
        ..tiny(&dir, &idx)
    };
    let e = train(&cfg, None, Output::Quiet).unwrap_err().to_string();
    assert!(e.contains("--test-split") && e.contains("test part"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn images_are_resized_on_load_and_the_size_is_recorded() {
    let (dir, flat) = common::flat_folder("image-size", 10, 12, 4); // 32x32 images
    let e = train(&tiny(&dir, &flat), None, Output::Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expects input") && e.contains("--image-size 8x8"),
        "{e}"
    );
    let cfg = TrainConfig {
        image_size: Some([8, 8]),
        ..tiny(&dir, &flat)
    };
    train(&cfg, None, Output::Quiet).unwrap();
    let meta = checkpoint::read_meta(&dir.join("run")).unwrap();
    assert_eq!(meta.input_shape, [1, 8, 8]);
    assert_eq!(meta.data.as_ref().unwrap().image_size, Some([8, 8]));
    // predict and eval resize 32x32 images to the checkpoint's 8x8.
    let img = flat.join("class5/0.png");
    ember_ok(&["predict", "--checkpoint", arg(&dir.join("run")), arg(&img)]);
    assert_eq!(eval_json(&dir.join("run"), arg(&flat))["count"], 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_model_file_without_input_takes_the_datasets() {
    let no_input = common::TINY_SPEC.replace("input = [1, 8, 8]\n", "");
    let (dir, cfg) = one_epoch("no-input", 100, &no_input);
    let meta = checkpoint::read_meta(&dir.join("run")).unwrap();
    assert_eq!(meta.model.input, [1, 8, 8]);
    // Without a dataset there is nothing to take it from: summary says what is missing.
    let out = ember(&["summary", &cfg.model]);
    fails_with(&out, &["tiny.toml", "no input shape"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tensors of a checkpoint file.
fn tensors(path: &Path) -> checkpoint::TensorMap {
    checkpoint::read_safetensors(&checkpoint::resolve(path).unwrap())
        .unwrap()
        .0
}

#[test]
fn a_zoo_model_is_fitted_to_the_classes_and_fine_tuned_with_frozen_layers() {
    let dir = common::temp_dir("fine-tune");
    // A 10-class base: fmnist-cnn on 256 images of the embedded sample.
    let base = TrainConfig {
        epochs: 1,
        limit: 256,
        val_split: 0.0,
        threads: 2,
        out: dir.join("base"),
        ..TrainConfig::default()
    };
    train(&base, None, Output::Quiet).unwrap();
    // Three classes of 32x32 images, resized to fmnist-cnn's 28x28.
    let flat = dir.join("flat");
    common::write_flat_folder(&flat, 3, 16, 4);
    let run = dir.join("tuned");
    let out = ember_ok(&[
        "train",
        "--dataset",
        arg(&flat),
        "--image-size",
        "28x28",
        "--init-from",
        arg(&dir.join("base")),
        "--freeze",
        "0,3",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--threads",
        "2",
        "--out",
        arg(&run),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("last layer resized from 10 to 3 outputs"),
        "{err}"
    );
    assert!(
        err.contains("loaded 6 tensors")
            && err.contains("9.weight ([10, 128] in the file, [3, 128] in the model)"),
        "{err}"
    );
    let (before, after) = (
        tensors(&dir.join("base")),
        tensors(&run.join("last.safetensors")),
    );
    for frozen in ["0.weight", "0.bias", "3.weight", "3.bias"] {
        assert_eq!(before[frozen], after[frozen], "{frozen} moved");
    }
    assert_ne!(
        before["7.weight"], after["7.weight"],
        "7.weight did not train"
    );
    assert_eq!(after["9.weight"].shape, vec![3, 128]);
    std::fs::remove_dir_all(&dir).unwrap();
}

const TINY_BN: &str = include_str!("specs/tiny8-bn-plain.toml");

#[test]
fn frozen_batch_norm_keeps_its_running_statistics_bit_for_bit() {
    let (dir, cfg) = one_epoch("freeze-bn", 200, TINY_BN);
    let tuned = TrainConfig {
        init_from: Some(dir.join("run")),
        freeze: vec!["0".into(), "1.".into()],
        epochs: 2,
        seed: 9,
        out: dir.join("tuned"),
        ..cfg.clone()
    };
    train(&tuned, None, Output::Quiet).unwrap();
    let (before, after) = (
        tensors(&dir.join("run")),
        tensors(&dir.join("tuned/last.safetensors")),
    );
    for name in [
        "0.weight",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ] {
        assert_eq!(before[name], after[name], "{name} moved");
    }
    assert_ne!(before["4.weight"], after["4.weight"]);
    // A prefix that names nothing is refused.
    let e = train(
        &TrainConfig {
            freeze: vec!["7".into()],
            out: dir.join("none"),
            ..tuned
        },
        None,
        Output::Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--freeze 7") && e.contains("4.weight"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ember dataset info` on an image folder says where its decoded copy is cached and whether
/// it is up to date; `EMBER_CACHE=off` turns the cache off.
#[test]
fn dataset_info_reports_the_cache() {
    let (dir, flat) = common::flat_folder("cache-info", 3, 4, 1);
    let cache = dir.join("cache");
    let info = |cache_env: &str, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["dataset", "info", arg(&flat)])
            .args(extra)
            .env("EMBER_CACHE", cache_env)
            .output()
            .unwrap()
    };
    let j = json_of(&info(arg(&cache), &["--json"]));
    let path = j["cache"]["path"].as_str().unwrap().to_string();
    assert!(path.starts_with(cache.to_str().unwrap()), "{j}");
    assert_eq!(j["cache"]["valid"], true, "{j}");
    assert!(Path::new(&path).is_file());
    // The text form says it too.
    let out = info(arg(&cache), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("decoded copy") && text.contains("up to date"),
        "{}",
        show(&out)
    );
    assert!(json_of(&info("off", &["--json"]))["cache"].is_null());
    std::fs::remove_dir_all(&dir).unwrap();
}
