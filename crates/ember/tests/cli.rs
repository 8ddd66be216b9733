//! The `ember` command line end to end on a tiny dataset: train, eval, predict, summary,
//! info, dataset info, bench, and clean failures.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .output()
        .expect("running ember")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_png(path: &Path, pixels: &[u8], w: u32, h: u32) {
    image::GrayImage::from_raw(w, h, pixels.to_vec())
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn the_whole_workflow_from_the_command_line() {
    let dir = common::temp_dir("cli");
    let data = dir.join("data");
    common::write_tiny_idx(&data, 300, 60);
    let spec = dir.join("tiny.toml");
    std::fs::write(&spec, common::TINY_SPEC).unwrap();
    let run = dir.join("run");
    let (data_s, spec_s, run_s) = (
        data.to_str().unwrap(),
        spec.to_str().unwrap(),
        run.to_str().unwrap(),
    );

    let out = ember(&[
        "train",
        "--dataset",
        data_s,
        "--model",
        spec_s,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--threads",
        "2",
        "--out",
        run_s,
        "--json",
    ]);
    ok(&out);
    let lines = json_lines(&out);
    let last = lines.last().expect("a final JSON line");
    assert!(last["test_accuracy"].as_f64().unwrap() > 0.3, "{last}");
    assert_eq!(last["epochs"], 2);
    assert!(last["train_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(lines.iter().filter(|l| l["event"] == "epoch").count(), 2);

    let out = ember(&[
        "eval",
        "--checkpoint",
        run_s,
        "--dataset",
        data_s,
        "--json",
        "--heatmap",
        dir.join("confusion.png").to_str().unwrap(),
    ]);
    ok(&out);
    let e = &json_lines(&out)[0];
    assert!(e["accuracy"].as_f64().is_some());
    assert_eq!(e["per_class"].as_array().unwrap().len(), 10);
    assert_eq!(e["confusion"].as_array().unwrap().len(), 10);
    assert!(dir.join("confusion.png").exists());

    // Two images drawn like classes 0 and 5.
    let mut imgs = Vec::new();
    for k in [0usize, 5] {
        let px: Vec<u8> = (0..64)
            .map(|p| {
                let (y, x) = (p / 8, p % 8);
                if y / 2 == k / 4 + (k % 2) && x / 2 == k % 4 {
                    230
                } else {
                    10
                }
            })
            .collect();
        let path = dir.join(format!("img{k}.png"));
        write_png(&path, &px, 8, 8);
        imgs.push(path.to_str().unwrap().to_string());
    }
    let mut args = vec!["predict", "--checkpoint", run_s, "--json", "--top-k", "2"];
    args.extend(imgs.iter().map(String::as_str));
    let out = ember(&args);
    ok(&out);
    let preds = json_lines(&out);
    assert_eq!(preds.len(), 2);
    for p in &preds {
        assert!(p["path"].is_string() && p["class"].is_string() && p["index"].is_u64());
        let probs: f64 = p["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((probs - 1.0).abs() < 1e-4);
    }

    let out = ember(&["dataset", "info", data_s, "--json"]);
    ok(&out);
    let info = &json_lines(&out)[0];
    assert_eq!(info["shape"], serde_json::json!([1, 8, 8]));
    assert_eq!(info["train"]["count"], 300);
    assert_eq!(
        info["test"]["class_counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        60
    );

    let out = ember(&["summary", "fmnist-cnn"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3136"));

    let out = ember(&["info"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("simd"));

    let bench = |flag: &str| {
        ember(&[
            "bench",
            "--model",
            spec_s,
            "--batch",
            "8",
            "--seconds",
            "0.2",
            "--threads",
            "1",
            flag,
        ])
    };
    let out = bench("--json");
    ok(&out);
    let b = &json_lines(&out)[0];
    assert!(
        b["train_images_per_s"].as_f64().unwrap() > 0.0
            && b["infer_images_per_s"].as_f64().unwrap() > 0.0
    );
    assert_eq!(b["processes"], 1);
    assert_eq!(b["params"], 4 * 9 + 4 + 64 * 10 + 10);
    let out = bench("--scaling");
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("| nodes | 1 Gbit/s") && text.contains("| 64 |"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_inputs_fail_with_the_file_named() {
    let dir = common::temp_dir("cli-bad");
    let data = dir.join("data");
    common::write_tiny_idx(&data, 30, 10);
    let labels = data.join("train-labels-idx1-ubyte");
    let bytes = std::fs::read(&labels).unwrap();
    std::fs::write(&labels, &bytes[..bytes.len() - 5]).unwrap();
    let out = ember(&["dataset", "info", data.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("train-labels-idx1-ubyte"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bogus = dir.join("bogus.safetensors");
    std::fs::write(&bogus, b"not a checkpoint").unwrap();
    let out = ember(&["predict", "--checkpoint", bogus.to_str().unwrap(), "x.png"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus.safetensors"));

    let out = ember(&["train", "--model", "nonet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonet"));
    // Built without the `mpi` feature, --distributed says what it needs.
    #[cfg(not(feature = "mpi"))]
    {
        let out = ember(&["train", "--distributed"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("`mpi` feature"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
