//! Runs the conv and pooling layers on every conv/pool golden file in `testdata/golden`
//! (PyTorch float64 results, format in that directory's README) and checks output,
//! grad_input, grad_weight and grad_bias with `max |got - want| / (1 + |want|) <= 1e-4`.
//! Every size is read from the file's `params` and tensor shapes.

use std::path::{Path, PathBuf};

use ember_layers::conv::{Conv2d, ConvAlgorithm};
use ember_layers::pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};
use ember_layers::{Layer, Mode, Pair};
use ember_tensor::Tensor;
use serde_json::Value;

const TOL: f64 = 1e-4;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

struct Case {
    name: String,
    v: Value,
}

impl Case {
    fn get(&self, path: &[&str]) -> &Value {
        let mut v = &self.v;
        for k in path {
            v = v
                .get(k)
                .unwrap_or_else(|| panic!("{}: missing key {}", self.name, path.join(".")));
        }
        v
    }

    fn usize(&self, key: &str) -> usize {
        let v = self.get(&["params", key]);
        v.as_u64()
            .unwrap_or_else(|| panic!("{}: params.{key} is not an integer: {v}", self.name))
            as usize
    }

    fn pair(&self, key: &str) -> Pair {
        let v = self.get(&["params", key]);
        if let Some(n) = v.as_u64() {
            return Pair(n as usize, n as usize);
        }
        let a = v
            .as_array()
            .unwrap_or_else(|| panic!("{}: params.{key} is not a pair: {v}", self.name));
        let n = |i: usize| {
            a.get(i)
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("{}: params.{key}: {v}", self.name)) as usize
        };
        Pair(n(0), n(1))
    }

    fn bool(&self, key: &str) -> bool {
        let v = self.get(&["params", key]);
        v.as_bool()
            .unwrap_or_else(|| panic!("{}: params.{key} is not a bool: {v}", self.name))
    }

    fn has(&self, section: &str, key: &str) -> bool {
        self.v.get(section).and_then(|s| s.get(key)).is_some()
    }

    fn tensor64(&self, section: &str, key: &str) -> (Vec<usize>, Vec<f64>) {
        let t = self.get(&[section, key]);
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: {section}.{key} has no shape", self.name))
            .iter()
            .map(|d| d.as_u64().expect("integer dimension") as usize)
            .collect();
        let data: Vec<f64> = t["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: {section}.{key} has no data", self.name))
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect();
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "{}: {section}.{key}: shape and data disagree",
            self.name
        );
        (shape, data)
    }

    fn tensor(&self, section: &str, key: &str) -> Tensor {
        let (shape, data) = self.tensor64(section, key);
        let shape = ember_tensor::Shape::new(&shape).expect("rank at most 6");
        Tensor::from_vec(shape, data.iter().map(|&x| x as f32).collect())
            .expect("consistent tensor")
    }

    /// Compares `got` with `expected.key` (same element count; shapes may differ only as
    /// `[N, C]` vs `[N, C, 1, 1]`). Returns the error, recording failures.
    fn check(&self, key: &str, got: &Tensor, failures: &mut Vec<String>) {
        let (shape, want) = self.tensor64("expected", key);
        let err = if got.len() != want.len() {
            f64::INFINITY
        } else {
            got.data()
                .iter()
                .zip(&want)
                .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
                .fold(0.0, f64::max)
        };
        println!(
            "  {:<40} {key:<12} got {} want {shape:?} err {err:.2e}",
            self.name,
            got.shape()
        );
        if err.is_nan() || err > TOL {
            failures.push(format!("{}: {key} error {err:.3e}", self.name));
        }
    }
}

fn run(case: &Case, failures: &mut Vec<String>) -> bool {
    let kind = case.get(&["kind"]).as_str().unwrap_or_default().to_string();
    let x = case.tensor("inputs", "input");
    let gy = case.tensor("inputs", "grad_output");
    match kind.as_str() {
        "conv2d" => {
            // Every algorithm (Direct3x3 and the Winograd ones fall back to im2col where
            // they do not apply).
            for algo in [
                ConvAlgorithm::Auto,
                ConvAlgorithm::Im2colGemm,
                ConvAlgorithm::Direct3x3,
                ConvAlgorithm::Winograd,
                ConvAlgorithm::Winograd4x4,
            ] {
                let bias = case.bool("bias");
                let mut conv = Conv2d::new(
                    case.usize("in_channels"),
                    case.usize("out_channels"),
                    case.pair("kernel_size"),
                )
                .stride(case.pair("stride"))
                .padding(case.pair("padding"))
                .dilation(case.pair("dilation"))
                .groups(case.usize("groups"))
                .bias(bias)
                .algorithm(algo);
                let w = case.tensor("inputs", "weight");
                assert_eq!(
                    w.shape(),
                    conv.weight().value.shape(),
                    "{}: weight shape",
                    case.name
                );
                conv.weight_mut().value = w;
                if bias {
                    conv.bias_param_mut().expect("bias").value = case.tensor("inputs", "bias");
                }
                let y = conv.forward(&x, Mode::Train).clone();
                case.check("output", &y, failures);
                let gx = conv.backward(&x, &gy, true).clone();
                case.check("grad_input", &gx, failures);
                case.check("grad_weight", &conv.weight().grad, failures);
                if bias {
                    case.check(
                        "grad_bias",
                        &conv.bias_param().expect("bias").grad,
                        failures,
                    );
                } else {
                    assert!(
                        !case.has("expected", "grad_bias"),
                        "{}: grad_bias expected without bias",
                        case.name
                    );
                }
            }
        }
        "maxpool2d" | "avgpool2d" | "global_avgpool" => {
            let mut layer: Box<dyn Layer> = match kind.as_str() {
                "maxpool2d" => Box::new(
                    MaxPool2d::new(case.pair("kernel_size"))
                        .stride(case.pair("stride"))
                        .padding(case.pair("padding")),
                ),
                "avgpool2d" => Box::new(
                    AvgPool2d::new(case.pair("kernel_size"))
                        .stride(case.pair("stride"))
                        .padding(case.pair("padding"))
                        .count_include_pad(case.bool("count_include_pad")),
                ),
                _ => Box::new(GlobalAvgPool2d::new()),
            };
            let y = layer.forward(&x, Mode::Train).clone();
            case.check("output", &y, failures);
            // grad_output may be stored as [N, C] for the global pool: give it the layer's shape.
            let gy = gy
                .reshape(y.shape())
                .expect("grad_output has the output's element count");
            let gx = layer.backward(&x, &gy, true).clone();
            case.check("grad_input", &gx, failures);
        }
        _ => return false,
    }
    true
}

#[test]
fn conv_and_pool_golden_vectors() {
    let dir = golden_dir();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let mut failures = Vec::new();
    let mut ran = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        if !matches!(
            kind,
            "conv2d" | "maxpool2d" | "avgpool2d" | "global_avgpool"
        ) {
            continue;
        }
        let name = v
            .get("case")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if run(
            &Case {
                name: name.clone(),
                v,
            },
            &mut failures,
        ) {
            ran.push(name);
        }
    }
    println!("{} conv/pool golden cases", ran.len());
    assert!(
        ran.iter().filter(|n| n.starts_with("conv2d")).count() >= 12,
        "expected the 12 public conv cases: {ran:?}"
    );
    assert!(ran.len() >= 18, "expected 18 conv/pool cases, ran {ran:?}");
    assert!(
        failures.is_empty(),
        "golden failures:\n{}",
        failures.join("\n")
    );
}
