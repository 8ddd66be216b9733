//! Training end to end on a tiny dataset: it learns, keeps the best model, writes its
//! files, and a run stopped and resumed ends with the same weights as one that was not.

mod common;

use std::path::Path;

use common::Tiny;
use ember::TrainConfig;
use ember::checkpoint;
use ember::trainer::{Output, TrainReport, train};

fn config(t: &Tiny, out: &Path) -> TrainConfig {
    TrainConfig {
        lr: 0.05,
        ..t.config(out)
    }
}

/// Runs `cfg` stopped after `stop` steps, then resumed to its end; checks that it ends with
/// the steps of `full` and the weights of `full_dir`, `full`'s run folder. The weights,
/// and the reports of the stopped and the resumed run.
fn stopped_and_resumed(
    mut cfg: TrainConfig,
    stop: u64,
    full: &TrainReport,
    full_dir: &Path,
) -> (checkpoint::TensorMap, TrainReport, TrainReport) {
    let part_dir = cfg.out.clone();
    cfg.max_steps = stop;
    let stopped = train(&cfg, None, Output::Quiet).unwrap();
    assert!(stopped.interrupted);
    cfg.max_steps = 0;
    let resumed = train(&cfg, Some(&part_dir), Output::Quiet).unwrap();
    assert_eq!(resumed.steps, full.steps);
    let (a, _) = checkpoint::read_safetensors(&full_dir.join("last.safetensors")).unwrap();
    let (b, _) = checkpoint::read_safetensors(&part_dir.join("last.safetensors")).unwrap();
    assert_eq!(a, b, "resumed weights differ from the uninterrupted run");
    (a, stopped, resumed)
}

#[test]
fn trains_and_resumes_exactly() {
    let t = common::tiny("resume", 400, 100);
    let dir = &t.dir;

    let full_dir = dir.join("full");
    let full = train(&config(&t, &full_dir), None, Output::Quiet).unwrap();
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
    let (_, stopped, resumed) = stopped_and_resumed(config(&t, &part_dir), 27, &full, &full_dir);
    assert_eq!(stopped.steps, 27);
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
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_configurations_fail_clearly() {
    let t = common::tiny("badcfg", 50, 20);
    let dir = &t.dir;
    let base = config(&t, &dir.join("run"));
    for (cfg, word) in [
        (
            TrainConfig {
                model: "fmnist-cnn".into(),
                ..base.clone()
            },
            "expects input",
        ),
        (
            TrainConfig {
                optimizer: "lbfgs".into(),
                ..base.clone()
            },
            "lbfgs",
        ),
        (
            TrainConfig {
                schedule: "sometimes".into(),
                ..base.clone()
            },
            "schedule",
        ),
        (
            TrainConfig {
                dataset: dir.join("nope").display().to_string(),
                ..base.clone()
            },
            "nope",
        ),
    ] {
        let e = train(&cfg, None, Output::Quiet).unwrap_err();
        assert!(e.to_string().contains(word), "{e}");
    }
    let e = train(&base, Some(&dir.join("never-ran")), Output::Quiet).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_diverging_run_stops_with_a_clear_message() {
    let t = common::tiny("nan", 200, 20);
    let cfg = TrainConfig {
        lr: 1e12,
        momentum: 0.0,
        nesterov: false,
        ..config(&t, &t.dir.join("run"))
    };
    let e = train(&cfg, None, Output::Quiet).unwrap_err().to_string();
    assert!(e.contains("loss became"), "{e}");
    std::fs::remove_dir_all(&t.dir).unwrap();
}

/// The fast recipe's training options (lookahead, alternating flips and shifts, a warm-up
/// from a start factor, batch-norm parameters at a scaled rate, test-time augmentation) on
/// a model with batch norm: it learns, and a run stopped between two lookahead updates and
/// resumed ends with the same weights as one that was not (the averaged weights are saved).
#[test]
fn the_fast_recipe_options_train_and_resume_exactly() {
    let mut t = common::tiny("resume-recipe", 400, 100);
    t.spec = common::write_spec(&t.dir, "tiny-bn.toml", common::TINY_BN_SPEC);
    let dir = &t.dir;
    let recipe = |out: &Path| TrainConfig {
        lookahead: 4,
        norm_lr_scale: 8.0,
        schedule: "linear:warmup=20%:start=0.2:end=0".into(),
        augment: "alt-flip,translate".into(),
        label_smoothing: 0.2,
        tta: ember::config::Tta::FlipTranslate,
        momentum: 0.85,
        ..config(&t, out)
    };
    let full_dir = dir.join("full");
    let full = train(&recipe(&full_dir), None, Output::Quiet).unwrap();
    assert!(full.test_accuracy > 0.5, "{}", full.test_accuracy);
    // Stopped two steps past a lookahead update.
    let (a, _, resumed) = stopped_and_resumed(recipe(&dir.join("part")), 26, &full, &full_dir);
    assert_eq!(resumed.test_accuracy, full.test_accuracy);
    // The batch norm's scale is held fixed at its initial 1.
    let scale = a["1.weight"].to_f32();
    assert!(scale.iter().all(|&v| v == 1.0), "{scale:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
