//! The golden runner over the repository's PyTorch vectors, and its handling of files it
//! cannot understand.

use std::path::{Path, PathBuf};

use xtask::golden::{Status, check_dir, check_file};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden")
}

/// A fresh scratch directory in the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-golden-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn every_checked_case_in_testdata_passes() {
    let reports = check_dir(&golden_dir()).expect("testdata/golden is readable");
    assert!(reports.len() >= 32, "only {} cases", reports.len());
    let mut passed = Vec::new();
    for r in &reports {
        assert!(!r.status.is_failure(), "{r}");
        if r.status == Status::Pass {
            passed.push(r.kind.clone());
        }
    }
    let kinds = "linear relu leaky_relu batchnorm2d_train batchnorm2d_eval cross_entropy optimizer";
    for kind in kinds.split(' ') {
        assert!(passed.iter().any(|k| k == kind), "no {kind} case passed");
    }
    for kind in [
        "conv2d",
        "maxpool2d",
        "avgpool2d",
        "global_avgpool",
        "train_step",
    ] {
        assert!(passed.iter().any(|k| k == kind), "no {kind} case passed");
    }
}

fn linear_case() -> serde_json::Value {
    let text = std::fs::read_to_string(golden_dir().join("linear.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The error of the linear case with `edit` done to it, written to `dir/name`.
fn error_of_edited(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut case = linear_case();
    edit(&mut case);
    error_of(&write(dir, name, &case.to_string()))
}

fn error_of(path: &Path) -> String {
    match check_file(path).status {
        Status::Error(e) => e,
        other => panic!("expected an error for {}, got {other:?}", path.display()),
    }
}

#[test]
fn malformed_files_are_clean_errors() {
    let dir = scratch("malformed");
    let e = error_of(&write(
        &dir,
        "broken.json",
        "{\"format\": \"ember-golden/1\", ",
    ));
    assert!(e.contains("not valid JSON"), "{e}");
    let e = error_of(&write(&dir, "list.json", "[1, 2]"));
    assert!(e.contains("not a JSON object"), "{e}");
    let e = error_of(&write(
        &dir,
        "format.json",
        r#"{"format": "other/2", "kind": "relu"}"#,
    ));
    assert!(e.contains("other/2"), "{e}");
}

#[test]
fn unknown_kind_is_an_error() {
    let dir = scratch("kind");
    let e = error_of_edited(&dir, "k.json", |case| case["kind"] = "conv3d".into());
    assert!(e.contains("unknown kind \"conv3d\""), "{e}");
}

#[test]
fn missing_or_wrong_keys_are_named() {
    let dir = scratch("keys");
    let e = error_of_edited(&dir, "a.json", |case| {
        case["inputs"].as_object_mut().unwrap().remove("weight");
    });
    assert!(e.contains("inputs.weight"), "{e}");

    let e = error_of_edited(&dir, "b.json", |case| {
        case["params"]
            .as_object_mut()
            .unwrap()
            .remove("in_features");
    });
    assert!(e.contains("params.in_features"), "{e}");

    let e = error_of_edited(&dir, "c.json", |case| {
        case["params"]["in_features"] = 3.into()
    });
    assert!(e.contains("inputs.input") && e.contains("[4, 3]"), "{e}");

    let e = error_of_edited(&dir, "d.json", |case| {
        case["expected"]["grad_input"]["data"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert!(e.contains("expected.grad_input"), "{e}");

    let e = error_of_edited(&dir, "e.json", |case| {
        case["expected"]["grad_extra"] = case["expected"]["grad_bias"].clone();
    });
    assert!(e.contains("grad_extra"), "{e}");
}

#[test]
fn wrong_values_fail_and_are_measured() {
    let dir = scratch("values");
    let mut case = linear_case();
    let v = case["expected"]["grad_weight"]["data"][3].as_f64().unwrap();
    case["expected"]["grad_weight"]["data"][3] = (v + 0.01).into();
    let r = check_file(&write(&dir, "w.json", &case.to_string()));
    match &r.status {
        Status::Fail(why) => assert!(why.contains("grad_weight"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!((r.max_abs - 0.01).abs() < 1e-4, "{}", r.max_abs);
    let shown = r.to_string();
    assert!(
        shown.starts_with("FAIL") && shown.contains("linear"),
        "{shown}"
    );
}

#[test]
fn a_directory_with_a_bad_file_fails_as_a_whole() {
    let dir = scratch("dir");
    std::fs::copy(golden_dir().join("relu.json"), dir.join("relu.json")).unwrap();
    write(&dir, "zz_bad.json", "{}");
    let reports = check_dir(&dir).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].status, Status::Pass);
    assert!(reports[1].status.is_failure());
    let code = xtask::golden::main(&[dir.display().to_string()]);
    assert_eq!(code, 1);
    let empty = scratch("empty");
    assert!(check_dir(&empty).is_err());
    assert_eq!(xtask::golden::main(&[empty.display().to_string()]), 2);
}

fn json_tensor(shape: &[usize], data: &[f64]) -> serde_json::Value {
    serde_json::json!({ "shape": shape, "data": data })
}

/// f32-representable pseudo-random values.
fn vals(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ember_tensor::Rng::new(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0) as f64).collect()
}

#[test]
fn shapes_come_from_the_file_not_the_public_set() {
    use ember_layers::reference::{dense, norm};
    let dir = scratch("shapes");
    // Linear without bias, other sizes than the public case.
    let (n, din, dout) = (5, 3, 2);
    let (x, w, g) = (vals(n * din, 1), vals(dout * din, 2), vals(n * dout, 3));
    let y = dense::linear_forward(&x, &w, None, n, din, dout);
    let (dx, dw, _) = dense::linear_backward(&x, &w, &g, n, din, dout);
    let case = serde_json::json!({
        "format": "ember-golden/1", "case": "linear_nobias_held", "kind": "linear",
        "params": { "in_features": din, "out_features": dout, "bias": false },
        "inputs": { "input": json_tensor(&[n, din], &x), "weight": json_tensor(&[dout, din], &w),
                    "grad_output": json_tensor(&[n, dout], &g) },
        "expected": { "output": json_tensor(&[n, dout], &y), "grad_input": json_tensor(&[n, din], &dx),
                      "grad_weight": json_tensor(&[dout, din], &dw) }
    });
    let r = check_file(&write(&dir, "linear_nobias_held.json", &case.to_string()));
    assert_eq!(r.status, Status::Pass, "{r}");

    // Batch norm in training with 5 channels, eps and momentum other than the defaults.
    let (n, c, hw) = (3, 5, 6);
    let x = vals(n * c * hw, 4);
    let (gamma, beta, rm) = (vals(c, 5), vals(c, 6), vals(c, 7));
    let rv: Vec<f64> = vals(c, 8).iter().map(|v| v.abs() + 0.5).collect();
    let g = vals(n * c * hw, 9);
    let shape = norm::Batch { n, c, hw };
    let params = norm::BatchNormParams {
        gamma: &gamma,
        beta: &beta,
        running_mean: &rm,
        running_var: &rv,
        eps: 1e-3,
    };
    let fwd = norm::batchnorm_train_forward(&x, shape, &params, 0.3);
    let (dx, dgamma, dbeta) = norm::batchnorm_train_backward(&x, &g, shape, &gamma, 1e-3);
    let s4 = [n, c, 2, 3];
    let case = serde_json::json!({
        "format": "ember-golden/1", "case": "bn_held", "kind": "batchnorm2d_train",
        "params": { "num_features": c, "eps": 1e-3, "momentum": 0.3, "affine": true },
        "inputs": { "input": json_tensor(&s4, &x), "weight": json_tensor(&[c], &gamma),
                    "bias": json_tensor(&[c], &beta), "running_mean": json_tensor(&[c], &rm),
                    "running_var": json_tensor(&[c], &rv), "grad_output": json_tensor(&s4, &g) },
        "expected": { "output": json_tensor(&s4, &fwd.output), "grad_input": json_tensor(&s4, &dx),
                      "grad_weight": json_tensor(&[c], &dgamma), "grad_bias": json_tensor(&[c], &dbeta),
                      "running_mean": json_tensor(&[c], &fwd.running_mean),
                      "running_var": json_tensor(&[c], &fwd.running_var) }
    });
    let r = check_file(&write(&dir, "bn_held.json", &case.to_string()));
    assert_eq!(r.status, Status::Pass, "{r}");
}
