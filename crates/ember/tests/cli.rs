//! The `ember` command line end to end on a tiny dataset: train, eval, predict, summary,
//! info, dataset info, bench, and clean failures.

mod common;

use std::path::Path;

use common::{arg, ember, ember_in, ember_ok, json_lines, read_json, succeeded};

fn write_png(path: &Path, pixels: &[u8], w: u32, h: u32) {
    image::GrayImage::from_raw(w, h, pixels.to_vec())
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn the_whole_workflow_from_the_command_line() {
    let common::Tiny { dir, data, spec } = common::tiny("cli", 300, 60);
    let run = dir.join("run");
    let (data_s, spec_s, run_s) = (arg(&data), arg(&spec), arg(&run));

    let out = ember_ok(&[
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
    let lines = json_lines(&out.stdout);
    let last = lines.last().expect("a final JSON line");
    assert!(last["test_accuracy"].as_f64().unwrap() > 0.3, "{last}");
    assert_eq!(last["epochs"], 2);
    assert!(last["train_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(lines.iter().filter(|l| l["event"] == "epoch").count(), 2);

    let out = ember_ok(&[
        "eval",
        "--checkpoint",
        run_s,
        "--dataset",
        data_s,
        "--json",
        "--heatmap",
        dir.join("confusion.png").to_str().unwrap(),
    ]);
    let e = &json_lines(&out.stdout)[0];
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
    let out = ember_ok(&args);
    let preds = json_lines(&out.stdout);
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

    let out = ember_ok(&["dataset", "info", data_s, "--json"]);
    let info = &json_lines(&out.stdout)[0];
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

    let out = ember_ok(&["summary", "fmnist-cnn"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3136"));

    let out = ember_ok(&["info"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("simd"));

    let bench = |flags: &[&str]| {
        let mut args = vec![
            "bench",
            "--model",
            spec_s,
            "--batch",
            "8",
            "--seconds",
            "0.2",
            "--threads",
            "1",
        ];
        args.extend_from_slice(flags);
        ember(&args)
    };
    let out = succeeded(bench(&["--json"]));
    let b = &json_lines(&out.stdout)[0];
    assert!(
        b["train_images_per_s"].as_f64().unwrap() > 0.0
            && b["infer_images_per_s"].as_f64().unwrap() > 0.0
    );
    assert_eq!(b["processes"], 1);
    assert_eq!(b["params"], 4 * 9 + 4 + 64 * 10 + 10);
    assert!(b.get("layers").is_none(), "layers only with --layers: {b}");
    let out = succeeded(bench(&["--layers"]));
    let text = String::from_utf8_lossy(&out.stdout);
    common::assert_contains(
        &text,
        &["training step by layer", "Conv2d(1->4", "Linear", "step"],
    );
    let out = succeeded(bench(&["--layers", "--json"]));
    let b = &json_lines(&out.stdout)[0];
    let layers = b["layers"].as_array().expect("a layers array");
    assert!(layers.len() >= 2, "{b}");
    let share: f64 = layers.iter().map(|l| l["share"].as_f64().unwrap()).sum();
    assert!(
        share > 0.0 && share <= 1.0 + 1e-9,
        "layer shares sum to {share}"
    );
    assert!(
        layers
            .iter()
            .all(|l| l["forward_ms"].as_f64().unwrap() >= 0.0)
    );
    let out = succeeded(bench(&["--scaling"]));
    let text = String::from_utf8_lossy(&out.stdout);
    common::assert_contains(&text, &["| nodes | 1 Gbit/s", "| 64 |"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_inputs_fail_with_the_file_named() {
    let common::Tiny { dir, data, .. } = common::tiny("cli-bad", 30, 10);
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

/// The long flags `--help` of `ember <command>` lists (aliases included), without
/// `--help` and `--version`.
fn flags_in_help(command: &[&str]) -> std::collections::BTreeSet<String> {
    let mut args = command.to_vec();
    args.push("--help");
    let out = ember_ok(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    long_flags(&text)
        .into_iter()
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

/// Every `--word` in `text`.
fn long_flags(text: &str) -> std::collections::BTreeSet<String> {
    let mut flags = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("--") {
        let tail = &rest[i + 2..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
            .unwrap_or(tail.len());
        if end > 0 && tail.as_bytes()[0].is_ascii_lowercase() {
            flags.insert(format!("--{}", &tail[..end]));
        }
        rest = &tail[end..];
    }
    flags
}

#[test]
fn the_readme_lists_exactly_the_train_options() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("## `ember train` options")
        .expect("the section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    let documented = long_flags(&section[..end]);
    assert_eq!(documented, flags_in_help(&["train"]));
}

#[test]
fn every_command_speaks_the_same_language() {
    // --batch-size everywhere, --batch as its alias; --threads wherever work is parallel.
    let (train, eval, predict, summary) = (
        &["train"][..],
        &["eval"][..],
        &["predict"][..],
        &["summary"][..],
    );
    let (bench, info, dataset_info) = (&["bench"][..], &["info"][..], &["dataset", "info"][..]);
    let serve = &["serve"][..];
    for (flags, commands) in [
        (
            &["--batch-size", "--batch"][..],
            &[train, eval, predict, summary, bench][..],
        ),
        (
            &["--threads"][..],
            &[train, eval, predict, bench, dataset_info, serve][..],
        ),
        (
            &["--json"][..],
            &[info, summary, eval, predict, dataset_info][..],
        ),
    ] {
        for command in commands {
            let have = flags_in_help(command);
            for flag in flags {
                assert!(have.contains(*flag), "{command:?}: {flag} not in {have:?}");
            }
        }
    }
    // Closed sets are listed in the help; every flag has a line of help (clap puts it on
    // the line after the flag).
    for command in [train, eval, predict, summary, info, bench, dataset_info] {
        let mut args = command.to_vec();
        args.push("-h");
        let out = ember_ok(&args);
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = help.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.starts_with('-')) {
            let next = lines.get(i + 1).copied().unwrap_or("");
            let inline = line.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            assert!(
                inline || !(next.is_empty() || next.starts_with('-')),
                "{command:?}: {line} has no help"
            );
        }
        if command == ["train"] {
            assert!(
                help.contains("[possible values: sgd, adam, adamw]"),
                "{help}"
            );
            assert!(
                help.contains("[possible values: crop, flip, alt-flip, translate, cutout, none]"),
                "{help}"
            );
        }
    }
    let out = ember_ok(&["info", "--json"]);
    let info = &json_lines(&out.stdout)[0];
    assert!(info["simd"].is_string() && info["threads"].as_u64().unwrap() > 0);
    let out = ember_ok(&["summary", "fmnist-cnn", "--json", "--batch", "4"]);
    let s = &json_lines(&out.stdout)[0];
    assert_eq!(s["total_params"], 421_642);
    assert_eq!(s["input"], serde_json::json!([4, 1, 28, 28]));
}

#[test]
fn results_go_to_stdout_and_progress_to_stderr() {
    let common::Tiny { dir, data, spec } = common::tiny("cli-streams", 100, 20);
    let run = |out_dir: &str, nesterov: &[&str]| {
        let mut args = vec![
            "train",
            "--dataset",
            arg(&data),
            "--model",
            arg(&spec),
            "--epochs",
            "2",
            "--batch",
            "16",
            "--threads",
            "1",
            "--out",
            out_dir,
        ];
        args.extend_from_slice(nesterov);
        ember_in(Some(&dir), &args)
    };
    let out = succeeded(run("a", &["--nesterov"]));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("val_acc") && stdout.contains("2/2") && stdout.contains("test accuracy"),
        "{stdout}"
    );
    assert!(!stderr.contains("test accuracy"), "{stderr}");
    // The epoch table fits 80 columns (the last line ends with the run folder's path).
    for line in stdout.lines().filter(|l| !l.starts_with("test accuracy")) {
        assert!(line.len() <= 80, "{line}");
    }
    // The old spelling still works, and --no-nesterov is its opposite.
    succeeded(run("b", &["--nesterov", "false"]));
    succeeded(run("c", &["--no-nesterov"]));
    for (name, nesterov) in [("a", true), ("b", false), ("c", false)] {
        let cfg = read_json(&dir.join(name).join("config.json"));
        assert_eq!(cfg["nesterov"], nesterov, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
