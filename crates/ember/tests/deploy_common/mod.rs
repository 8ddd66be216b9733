//! Helpers of the deployment tests: checkpoints with random weights (batch-norm statistics
//! included), test images, a Python with ONNX Runtime (and optionally PyTorch), and an
//! `ember serve` process on a free port. The test files that use them use `common` too.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ember::checkpoint::{self, CheckpointMeta, Normalization};
use ember_layers::Layer;
use ember_tensor::Rng;

/// The little-endian `f32`s of a file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Writes `dir/best.safetensors` for `model` (zoo name or spec TOML text) with random
/// weights from `seed`, batch-norm affine parameters and running statistics away from
/// their initial 1 and 0, classes `c0`, `c1`, ...; returns the checkpoint file.
pub fn random_checkpoint(dir: &Path, model: &str, seed: u64) -> PathBuf {
    let spec = match ember::zoo::get(model) {
        Some(s) => s,
        None => ember::ModelSpec::from_toml(model, "test spec").unwrap(),
    };
    let mut net = spec.build().unwrap();
    let mut rng = Rng::new(seed);
    net.reset_parameters(&mut rng);
    net.visit_params("", &mut |name, p| {
        if p.value.shape().dims().len() == 1 && !name.ends_with("bias") {
            for v in p.value.data_mut() {
                *v = rng.uniform(0.5, 1.5);
            }
        } else if p.value.shape().dims().len() == 1 {
            for v in p.value.data_mut() {
                *v = rng.uniform(-0.1, 0.1);
            }
        }
    });
    net.visit_buffers("", &mut |name, t| {
        if name.ends_with("running_var") {
            for v in t.data_mut() {
                *v = rng.uniform(0.5, 1.5);
            }
        } else if name.ends_with("running_mean") {
            for v in t.data_mut() {
                *v = rng.uniform(-0.2, 0.2);
            }
        }
    });
    let classes = spec.output_shape().unwrap().item_numel();
    let channels = spec.input[0];
    let zoo = ember::zoo::get(model).map(|_| model.to_string());
    let mut meta = CheckpointMeta::untrained(
        spec,
        zoo,
        (0..classes).map(|i| format!("c{i}")).collect(),
        Normalization {
            mean: vec![0.4; channels],
            std: vec![0.3; channels],
        },
    );
    let file = dir.join("best.safetensors");
    checkpoint::save(&file, &mut net, &mut meta).unwrap();
    file
}

/// A PNG of `w` x `h` pixels, grayscale (`channels` 1) or RGB (3), pixel values from `seed`.
pub fn png(channels: usize, w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let pixels: Vec<u8> = (0..channels * (w * h) as usize)
        .map(|_| rng.below(256) as u8)
        .collect();
    ember::serve::loadgen::encode_png(&pixels, [channels, h as usize, w as usize]).unwrap()
}

/// A Python that imports every one of `modules`: `$EMBER_PYTHON`, `~/torch-venv/bin/python3`
/// or `python3`. None with a note where there is none; under CI, when `required`, a failure
/// naming what to install.
pub fn python_with(modules: &[&str], required: bool) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = std::env::var_os("EMBER_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            home.join("torch-venv/bin/python3"),
            PathBuf::from("python3"),
        ]);
    let import = format!("import {}", modules.join(", "));
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", &import])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py);
        }
    }
    let what = modules.join(" ");
    assert!(
        !(required && std::env::var_os("CI").is_some()),
        "no Python with {what}: `python3 -m pip install {what}` (or set EMBER_PYTHON); \
         .ci/run installs them"
    );
    eprintln!("skipping: no Python with {what} (pip install {what}, or set EMBER_PYTHON)");
    None
}

/// An `ember serve` process on a free loopback port, stopped (killed) when dropped.
pub struct ServeProcess {
    /// The child process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServeProcess {
    /// Starts `ember serve --checkpoint CHECKPOINT --addr 127.0.0.1:0 EXTRA...` and waits
    /// for the address it prints.
    pub fn start(checkpoint: &Path, extra: &[&str]) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
            .arg("serve")
            .arg("--checkpoint")
            .arg(checkpoint)
            .args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting ember serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the address");
        let Some(base) = line
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_string)
        else {
            let _ = child.kill();
            let out = child.wait_with_output().expect("ember serve output");
            panic!(
                "ember serve printed {line:?}, stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        };
        ServeProcess { child, base }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `signal` (e.g. `TERM`, `INT`) to the server.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} failed");
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client that returns 4xx and 5xx answers instead of failing on them.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Status and body of an answer.
pub fn read(mut r: ureq::http::Response<ureq::Body>) -> (u16, String) {
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}
