//! Nothing a run wrote is lost: a new run does not write over another, a save cut short
//! (full disk, a crash between two renames) leaves a pair `--resume` continues from
//! exactly, the best model is the run's own, and metrics that are not numbers neither
//! keep a run going nor make its checkpoints unreadable.

mod common;

use std::path::Path;

use common::{Tiny, ember_in, fails_with, read_json, show, succeeded};
use ember::TrainConfig;
use ember::checkpoint;
use ember::config::{ExistingRun, Tta};
use ember::trainer::{Output, train};

fn setup(name: &str) -> Tiny {
    common::tiny(name, 400, 100)
}

/// 3 epochs of 20 steps (batch 16, 80 of the 400 images for validation).
fn config(s: &Tiny, out: &str) -> TrainConfig {
    s.config(&s.dir.join(out))
}

fn weights(path: &Path) -> checkpoint::TensorMap {
    checkpoint::read_safetensors(path).unwrap().0
}

#[test]
fn a_folder_holding_another_run_is_refused_replaced_or_moved_aside() {
    let s = setup("other-run");
    let (data, spec) = (s.data.to_str().unwrap(), s.spec.to_str().unwrap());
    let base = [
        "train",
        "--dataset",
        data,
        "--model",
        spec,
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--threads",
        "2",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        ember_in(Some(&s.dir), &args)
    };
    succeeded(run(&["--out", "mine"]));
    let metrics = std::fs::read(s.dir.join("mine/metrics.jsonl")).unwrap();
    let best = std::fs::read(s.dir.join("mine/best.safetensors")).unwrap();
    // Again into the same folder: refused, and the first run is untouched.
    let out = run(&["--out", "mine", "--seed", "5"]);
    fails_with(
        &out,
        &[
            "--out mine",
            "already holds a run",
            "--resume mine",
            "--force",
        ],
    );
    assert_eq!(
        std::fs::read(s.dir.join("mine/metrics.jsonl")).unwrap(),
        metrics
    );
    assert_eq!(
        std::fs::read(s.dir.join("mine/best.safetensors")).unwrap(),
        best
    );
    // --force replaces it.
    let out = succeeded(run(&["--out", "mine", "--seed", "5", "--force"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force: removed"));
    assert_ne!(
        std::fs::read(s.dir.join("mine/best.safetensors")).unwrap(),
        best
    );
    // The default folder moves an earlier run aside instead.
    for _ in 0..2 {
        succeeded(run(&[]));
    }
    let aside = s.dir.join("runs/run-1");
    assert!(
        aside.join("best.safetensors").exists(),
        "{}",
        show(&out_listing(&s.dir))
    );
    assert!(s.dir.join("runs/latest/best.safetensors").exists());
    std::fs::remove_dir_all(&s.dir).unwrap();
}

fn out_listing(dir: &Path) -> std::process::Output {
    std::process::Command::new("ls")
        .args(["-R", dir.to_str().unwrap()])
        .output()
        .unwrap()
}

/// The uninterrupted run's last weights, and a run of the same configuration stopped at
/// step 27 (mid-epoch 2) in folder `part`.
fn reference_and_stopped(s: &Tiny) -> (checkpoint::TensorMap, TrainConfig) {
    let full = config(s, "full");
    train(&full, None, Output::Quiet).unwrap();
    let mut part = config(s, "part");
    part.max_steps = 27;
    assert!(train(&part, None, Output::Quiet).unwrap().interrupted);
    part.max_steps = 0;
    (weights(&s.dir.join("full/last.safetensors")), part)
}

/// Stops a run at step 27 in folder `part`, does `cut` to that folder (with the run's
/// configuration), resumes the run and checks that it ends where the uninterrupted run
/// ended; returns the test's folder.
fn cut_then_resumed(name: &str, cut: impl FnOnce(&Path, &TrainConfig)) -> Tiny {
    let s = setup(name);
    let (want, part) = reference_and_stopped(&s);
    let dir = s.dir.join("part");
    cut(&dir, &part);
    let resumed = train(&part, Some(&dir), Output::Quiet).unwrap();
    assert_eq!(resumed.steps, 60);
    assert_eq!(weights(&dir.join("last.safetensors")), want);
    s
}

#[test]
fn a_save_that_fails_between_the_two_files_leaves_a_resumable_pair() {
    let s = cut_then_resumed("cut-save", |dir, part| {
        // The state's temporary file cannot be created (as on a full disk): the save at
        // step 34 fails after the weights' temporary file was written.
        let blocker = dir.join(format!(
            ".last.state.safetensors.{}.tmp",
            std::process::id()
        ));
        std::fs::create_dir_all(&blocker).unwrap();
        let mut cut = part.clone();
        cut.max_steps = 34;
        let e = train(&cut, Some(dir), Output::Quiet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("last.state.safetensors"), "{e}");
        std::fs::remove_dir(&blocker).unwrap();
    });
    std::fs::remove_dir_all(&s.dir).unwrap();
}

#[test]
fn a_save_cut_between_its_renames_resumes_from_the_consistent_pair() {
    let s = cut_then_resumed("cut-rename", |dir, _| {
        let at = |n: &str| dir.join(n);
        // As a save stopped after the current pair was set aside and the new weights put
        // in place (here: other weights), but before the new state landed.
        std::fs::rename(at("last.safetensors"), at("last.prev.safetensors")).unwrap();
        std::fs::rename(
            at("last.state.safetensors"),
            at("last.prev.state.safetensors"),
        )
        .unwrap();
        std::fs::copy(at("best.safetensors"), at("last.safetensors")).unwrap();
    });
    let at = |n: &str| s.dir.join("part").join(n);
    assert!(!at("last.prev.safetensors").exists() && !at("last.prev.state.safetensors").exists());
    std::fs::remove_dir_all(&s.dir).unwrap();
}

#[test]
fn weights_and_a_state_that_do_not_belong_together_fall_back_to_the_set_aside_pair() {
    let s = cut_then_resumed("cut-half", |dir, _| {
        let at = |n: &str| dir.join(n);
        // Stopped after the state was set aside: the weights in place, the state beside
        // them under the .prev name, and a newer state of other weights where the state
        // belongs.
        std::fs::copy(
            at("last.state.safetensors"),
            at("last.prev.state.safetensors"),
        )
        .unwrap();
        std::fs::copy(at("last.safetensors"), at("last.prev.safetensors")).unwrap();
        std::fs::copy(at("best.safetensors"), at("last.safetensors")).unwrap();
    });
    std::fs::remove_dir_all(&s.dir).unwrap();
}

#[test]
fn the_test_score_is_of_this_runs_best_model_or_its_current_weights() {
    let s = setup("own-best");
    train(&config(&s, "run"), None, Output::Quiet).unwrap();
    // A new run in the same folder, stopped before its first validation: it has no best
    // model, whatever the folder held, and scores its own weights.
    let again = TrainConfig {
        seed: 3,
        max_steps: 5,
        existing_run: ExistingRun::Replace,
        ..config(&s, "run")
    };
    let report = train(&again, None, Output::Quiet).unwrap();
    let dir = s.dir.join("run");
    assert!(!dir.join("best.safetensors").exists());
    let (meta, mut model) = checkpoint::load(&dir.join("last.safetensors")).unwrap();
    let test = ember_data::open(&s.data).unwrap().test;
    let e = ember::evaluate(
        &mut model,
        &std::sync::Arc::new(test),
        &meta.normalize(),
        &meta.classes,
    )
    .unwrap();
    assert_eq!(report.test, e);
    std::fs::remove_dir_all(&s.dir).unwrap();
}

/// [`config`] for one epoch.
fn one_epoch(s: &Tiny) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        ..config(s, "run")
    }
}

#[test]
fn best_json_records_the_epochs_completed() {
    let s = setup("best-epoch");
    train(&one_epoch(&s), None, Output::Quiet).unwrap();
    let best = read_json(&s.dir.join("run/best.json"));
    assert_eq!(best["epoch"], 1, "{best}");
    assert_eq!(best["step"], 20, "{best}");
    std::fs::remove_dir_all(&s.dir).unwrap();
}

/// A network whose batch norm, in eval mode, passes on a 1e20 scale that training
/// normalises away: the training loss is finite, the validation loss is not.
const EXPLODES_IN_EVAL: &str = include_str!("specs/explodes-in-eval.toml");

#[test]
fn a_validation_loss_that_is_not_finite_stops_the_run() {
    let s = setup("nan-val");
    std::fs::write(&s.spec, EXPLODES_IN_EVAL).unwrap();
    // Everything frozen: the weights (and running statistics) never move, so only the
    // validation, which uses the running statistics, sees the blow-up.
    let cfg = TrainConfig {
        freeze: vec!["0".into(), "2".into(), "4".into()],
        ..config(&s, "run")
    };
    let e = train(&cfg, None, Output::Quiet).unwrap_err().to_string();
    assert!(
        e.contains("validation loss became NaN") && e.contains("No checkpoint was written"),
        "{e}"
    );
    assert!(!s.dir.join("run/best.safetensors").exists());
    std::fs::remove_dir_all(&s.dir).unwrap();
}

#[test]
fn test_json_records_the_final_score_and_its_test_time_augmentation() {
    let s = setup("test-json");
    let cfg = TrainConfig {
        tta: Tta::Flip,
        ..one_epoch(&s)
    };
    let report = train(&cfg, None, Output::Quiet).unwrap();
    let score = read_json(&s.dir.join("run/test.json"));
    assert_eq!(score["model"], "best", "{score}");
    assert_eq!(score["tta"], "flip", "{score}");
    assert_eq!(score["accuracy"], report.test.accuracy, "{score}");
    assert_eq!(score["images"], 100, "{score}");
    assert_eq!(score["epochs"], 1, "{score}");
    assert_eq!(score["confusion"], serde_json::json!(report.test.confusion));
    // The score is of the flipped-and-mirrored logits, not the plain ones.
    let (meta, mut model) = checkpoint::load(&s.dir.join("run/best.safetensors")).unwrap();
    let test = std::sync::Arc::new(ember_data::open(&s.data).unwrap().test);
    let plain = ember::evaluate(&mut model, &test, &meta.normalize(), &meta.classes).unwrap();
    let flipped = ember::evaluate_checkpoint(
        &ember::Classifier::load(&s.dir.join("run")).unwrap(),
        &s.data.display().to_string(),
        64,
        Tta::Flip,
    )
    .unwrap();
    assert_eq!(report.test.confusion, flipped.confusion);
    assert!((report.test.loss - flipped.loss).abs() < 1e-5, "{score}");
    assert!((plain.loss - flipped.loss).abs() > 1e-5, "{score}");
    // A run stopped before its first validation is scored with its last weights.
    let early = TrainConfig {
        max_steps: 3,
        existing_run: ExistingRun::Replace,
        ..cfg
    };
    train(&early, None, Output::Quiet).unwrap();
    let score = read_json(&s.dir.join("run/test.json"));
    assert_eq!(score["model"], "last", "{score}");
    std::fs::remove_dir_all(&s.dir).unwrap();
}
