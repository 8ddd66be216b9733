//! The PyTorch optimizer trajectories in testdata/golden (`kind: "optimizer"`): every
//! hyper-parameter is read from the file's `params`. Set `EMBER_GOLDEN_DIR` to run another
//! directory of golden files (e.g. the held-out set).

mod common;

use std::path::PathBuf;

use common::{Hyper, Ref64, ref_update, rel_err};
use serde_json::Value;

const TOL: f64 = 1e-5;

fn golden_dir() -> PathBuf {
    match std::env::var_os("EMBER_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden"),
    }
}

fn f64s(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .expect("tensor data")
        .iter()
        .map(|x| x.as_f64().expect("float"))
        .collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .expect("tensor shape")
        .iter()
        .map(|x| x.as_u64().expect("dim") as usize)
        .collect()
}

fn hyper(p: &Value) -> Hyper {
    let num = |k: &str, default: f64| p.get(k).and_then(Value::as_f64).unwrap_or(default);
    let flag = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
    let betas = p
        .get("betas")
        .and_then(Value::as_array)
        .map(|b| (b[0].as_f64().unwrap(), b[1].as_f64().unwrap()))
        .unwrap_or((0.9, 0.999));
    Hyper {
        optimizer: p["optimizer"].as_str().expect("optimizer name").to_string(),
        lr: num("lr", f64::NAN),
        momentum: num("momentum", 0.0),
        dampening: num("dampening", 0.0),
        nesterov: flag("nesterov"),
        weight_decay: num("weight_decay", 0.0),
        betas,
        eps: num("eps", 1e-8),
        amsgrad: flag("amsgrad"),
    }
}

/// Runs one golden case; returns (worst f32 error, worst f64-reference error).
fn run_case(doc: &Value) -> (f64, f64) {
    let params = &doc["params"];
    let h = hyper(params);
    let steps = params["steps"].as_u64().expect("steps") as usize;
    let order: Vec<String> = params["param_order"]
        .as_array()
        .expect("param_order")
        .iter()
        .map(|s| s.as_str().expect("name").to_string())
        .collect();
    let mut opt = h.build();
    opt.validate().expect("golden hyper-parameters are valid");
    let mut values32: Vec<Vec<f32>> = Vec::new();
    let mut values64: Vec<Vec<f64>> = Vec::new();
    let mut refs = vec![Ref64::default(); order.len()];
    for name in &order {
        let v = f64s(&doc["inputs"][name]);
        values32.push(v.iter().map(|&x| x as f32).collect());
        values64.push(v);
    }
    let (mut worst32, mut worst64) = (0.0f64, 0.0f64);
    for step in 0..steps {
        for (i, name) in order.iter().enumerate() {
            let grads = &doc["inputs"][format!("grad.{name}")];
            let n = values32[i].len();
            assert_eq!(shape(grads)[0], steps, "{name}: one gradient per step");
            let g64 = &f64s(grads)[step * n..(step + 1) * n];
            let g32: Vec<f32> = g64.iter().map(|&x| x as f32).collect();
            opt.update(name, &mut values32[i], &g32).expect("update");
            ref_update(&h, &mut refs[i], &mut values64[i], g64);
            let want = &f64s(&doc["expected"][name])[step * n..(step + 1) * n];
            let e32 = rel_err(&values32[i], want);
            let e64 = values64[i]
                .iter()
                .zip(want)
                .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
                .fold(0.0, f64::max);
            worst32 = worst32.max(e32);
            worst64 = worst64.max(e64);
        }
    }
    (worst32, worst64)
}

#[test]
fn optimizer_golden_trajectories() {
    let dir = golden_dir();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut ran = 0;
    let mut failures = Vec::new();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("readable golden file");
        let doc: Value = serde_json::from_str(&text).expect("valid JSON");
        if doc["kind"] != "optimizer" {
            continue;
        }
        let (e32, e64) = run_case(&doc);
        println!("{}: f32 {e32:.3e}, f64 reference {e64:.3e}", path.display());
        if e32 > TOL || e64 > 1e-12 {
            failures.push(format!("{}: f32 {e32:.3e} f64 {e64:.3e}", path.display()));
        }
        ran += 1;
    }
    assert!(failures.is_empty(), "golden mismatches: {failures:#?}");
    if std::env::var_os("EMBER_GOLDEN_DIR").is_none() {
        assert_eq!(ran, 5, "the five public optimizer cases");
    } else {
        assert!(ran > 0, "no optimizer golden files in {}", dir.display());
    }
}
