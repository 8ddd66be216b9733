//! Training end to end on a tiny dataset: it learns, keeps the best model, writes its
//! files, and a run stopped and resumed ends with the same weights as one that was not.

mod common;

use ember::TrainConfig;
use ember::checkpoint;
use ember::trainer::{Output, train};

fn config(data: &std::path::Path, spec: &std::path::Path, out: &std::path::Path) -> TrainConfig {
    TrainConfig {
        dataset: data.display().to_string(),
        model: spec.display().to_string(),
        epochs: 3,
        batch_size: 16,
        lr: 0.05,
        val_split: 0.2,
        augment: "flip".into(),
        threads: 2,
        out: out.to_path_buf(),
        ..TrainConfig::default()
    }
}

#[test]
fn trains_and_resumes_exactly() {
    let dir = common::temp_dir("resume");
    let data = dir.join("data");
    common::write_tiny_idx(&data, 400, 100);
    let spec = dir.join("tiny.toml");
    std::fs::write(&spec, common::TINY_SPEC).unwrap();

    let full_dir = dir.join("full");
    let full = train(&config(&data, &spec, &full_dir), None, Output::Quiet).unwrap();
    assert_eq!(full.epochs, 3);
    assert!(
        full.test_accuracy > 0.5,
        "tiny task should be learnt: {}",
        full.test_accuracy
    );
    for f in [
        "best.safetensors",
        "best.json",
        "last.safetensors",
        "last.json",
        "last.state.safetensors",
        "metrics.jsonl",
        "metrics.csv",
        "config.json",
        "loss.png",
        "accuracy.png",
    ] {
        assert!(full_dir.join(f).exists(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(full_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3);

    // Stop mid-epoch 2 (20 batches per epoch), then resume to the end.
    let part_dir = dir.join("part");
    let mut cfg = config(&data, &spec, &part_dir);
    cfg.max_steps = 27;
    let stopped = train(&cfg, None, Output::Quiet).unwrap();
    assert!(stopped.interrupted);
    assert_eq!(stopped.steps, 27);
    let mut again = cfg.clone();
    again.max_steps = 0;
    let resumed = train(&again, Some(&part_dir), Output::Quiet).unwrap();
    assert_eq!(resumed.steps, full.steps);

    let (a, _) = checkpoint::read_safetensors(&full_dir.join("last.safetensors")).unwrap();
    let (b, _) = checkpoint::read_safetensors(&part_dir.join("last.safetensors")).unwrap();
    assert_eq!(a, b, "resumed weights differ from the uninterrupted run");
    assert_eq!(
        std::fs::read_to_string(full_dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        std::fs::read_to_string(part_dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count()
    );
    assert_eq!(full.test_accuracy, resumed.test_accuracy);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_configurations_fail_clearly() {
    let dir = common::temp_dir("badcfg");
    let data = dir.join("data");
    common::write_tiny_idx(&data, 50, 20);
    let spec = dir.join("tiny.toml");
    std::fs::write(&spec, common::TINY_SPEC).unwrap();
    let base = config(&data, &spec, &dir.join("run"));

    let e = train(
        &TrainConfig {
            model: "fmnist-cnn".into(),
            ..base.clone()
        },
        None,
        Output::Quiet,
    )
    .unwrap_err();
    assert!(e.to_string().contains("expects input"), "{e}");
    let e = train(
        &TrainConfig {
            optimizer: "lbfgs".into(),
            ..base.clone()
        },
        None,
        Output::Quiet,
    )
    .unwrap_err();
    assert!(e.to_string().contains("lbfgs"), "{e}");
    let e = train(
        &TrainConfig {
            schedule: "sometimes".into(),
            ..base.clone()
        },
        None,
        Output::Quiet,
    )
    .unwrap_err();
    assert!(e.to_string().contains("schedule"), "{e}");
    let e = train(
        &TrainConfig {
            dataset: dir.join("nope").display().to_string(),
            ..base.clone()
        },
        None,
        Output::Quiet,
    )
    .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = train(&base, Some(&dir.join("never-ran")), Output::Quiet).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_run_stops_with_a_clear_message() {
    let dir = common::temp_dir("nan");
    let data = dir.join("data");
    common::write_tiny_idx(&data, 200, 20);
    let spec = dir.join("tiny.toml");
    std::fs::write(&spec, common::TINY_SPEC).unwrap();
    let cfg = TrainConfig {
        lr: 1e12,
        momentum: 0.0,
        nesterov: false,
        ..config(&data, &spec, &dir.join("run"))
    };
    let e = train(&cfg, None, Output::Quiet).unwrap_err().to_string();
    assert!(e.contains("loss became"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The fast recipe's training options (lookahead, alternating flips and shifts, a warm-up
/// from a start factor, batch-norm parameters at a scaled rate, test-time augmentation) on
/// a model with batch norm: it learns, and a run stopped between two lookahead updates and
/// resumed ends with the same weights as one that was not (the averaged weights are saved).
#[test]
fn the_fast_recipe_options_train_and_resume_exactly() {
    let dir = common::temp_dir("resume-recipe");
    let data = dir.join("data");
    common::write_tiny_idx(&data, 400, 100);
    let spec = dir.join("tiny-bn.toml");
    std::fs::write(&spec, common::TINY_BN_SPEC).unwrap();
    let recipe = |out: &std::path::Path| TrainConfig {
        lookahead: 4,
        norm_lr_scale: 8.0,
        schedule: "linear:warmup=20%:start=0.2:end=0".into(),
        augment: "alt-flip,translate".into(),
        label_smoothing: 0.2,
        tta: ember::config::Tta::FlipTranslate,
        momentum: 0.85,
        ..config(&data, &spec, out)
    };
    let full_dir = dir.join("full");
    let full = train(&recipe(&full_dir), None, Output::Quiet).unwrap();
    assert!(full.test_accuracy > 0.5, "{}", full.test_accuracy);
    let part_dir = dir.join("part");
    let mut cfg = recipe(&part_dir);
    cfg.max_steps = 26; // two steps past a lookahead update
    assert!(train(&cfg, None, Output::Quiet).unwrap().interrupted);
    cfg.max_steps = 0;
    let resumed = train(&cfg, Some(&part_dir), Output::Quiet).unwrap();
    assert_eq!(resumed.steps, full.steps);
    let (a, _) = checkpoint::read_safetensors(&full_dir.join("last.safetensors")).unwrap();
    let (b, _) = checkpoint::read_safetensors(&part_dir.join("last.safetensors")).unwrap();
    assert_eq!(a, b, "resumed weights differ from the uninterrupted run");
    assert_eq!(resumed.test_accuracy, full.test_accuracy);
    // The batch norm's scale is held fixed at its initial 1.
    let scale = a["1.weight"].to_f32();
    assert!(scale.iter().all(|&v| v == 1.0), "{scale:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
