//! Test helpers: a tiny IDX dataset and image folders written to a temporary folder, and
//! the `ember` binary run with its output checked.
#![allow(dead_code)]

pub mod mpi;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// Writes an MNIST-style IDX folder: `n_train` / `n_test` 8x8 images in 10 classes, class
/// `k` drawn as a bright square at a class-dependent place over noise (learnable).
pub fn write_tiny_idx(dir: &Path, n_train: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 12345u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let mut images = Vec::with_capacity(n * 64);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let k = i % 10;
            labels.push(k as u8);
            for p in 0..64 {
                let (y, x) = (p / 8, p % 8);
                let on = y / 2 == k / 4 + (k % 2) && x / 2 == k % 4;
                let noise = (next() % 60) as u8;
                images.push(if on { 200 + noise / 2 } else { noise });
            }
        }
        write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte")),
            &[n as u32, 8, 8],
            &images,
        );
        write_idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte")),
            &[n as u32],
            &labels,
        );
    }
}

/// fmnist-cnn's `state_dict` as PyTorch names and shapes it (`nn.Sequential(conv, relu,
/// pool, conv, relu, pool, flatten, linear, relu, linear)`).
pub const FMNIST_CNN_STATE: [(&str, &[usize]); 8] = [
    ("0.weight", &[32, 1, 3, 3]),
    ("0.bias", &[32]),
    ("3.weight", &[64, 32, 3, 3]),
    ("3.bias", &[64]),
    ("7.weight", &[128, 3136]),
    ("7.bias", &[128]),
    ("9.weight", &[10, 128]),
    ("9.bias", &[10]),
];

/// A small spec for 1x8x8 inputs and 10 classes.
pub const TINY_SPEC: &str = include_str!("../specs/tiny8.toml");

/// [`TINY_SPEC`] with an identity-started convolution, batch norm with a fixed scale and
/// GELU: the layers of the fast CIFAR-10 recipe, on 8x8 images.
#[allow(dead_code)]
pub const TINY_BN_SPEC: &str = include_str!("../specs/tiny8-bn.toml");

/// A test's folder holding the tiny IDX set and [`TINY_SPEC`].
pub struct Tiny {
    /// The test's own folder.
    pub dir: PathBuf,
    /// `dir/data`: the IDX set of [`write_tiny_idx`].
    pub data: PathBuf,
    /// `dir/tiny.toml`: [`TINY_SPEC`].
    pub spec: PathBuf,
}

impl Tiny {
    /// 3 epochs of the spec on the data, batch 16, 20% of the training images for
    /// validation, flips, 2 threads, into `out`.
    pub fn config(&self, out: &Path) -> ember::TrainConfig {
        ember::TrainConfig {
            dataset: self.data.display().to_string(),
            model: self.spec.display().to_string(),
            epochs: 3,
            batch_size: 16,
            val_split: 0.2,
            augment: "flip".into(),
            threads: 2,
            out: out.to_path_buf(),
            ..ember::TrainConfig::default()
        }
    }
}

/// A fresh folder `name` with `n_train` / `n_test` tiny IDX images and the tiny spec.
pub fn tiny(name: &str, n_train: usize, n_test: usize) -> Tiny {
    let dir = temp_dir(name);
    let data = dir.join("data");
    write_tiny_idx(&data, n_train, n_test);
    let spec = write_spec(&dir, "tiny.toml", TINY_SPEC);
    Tiny { dir, data, spec }
}

/// Writes the model file `name` with `text` into `dir`; returns its path.
pub fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let spec = dir.join(name);
    std::fs::write(&spec, text).unwrap();
    spec
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs the `ember` binary with `args`.
pub fn ember(args: &[&str]) -> Output {
    ember_in(None, args)
}

/// Runs the `ember` binary with `args` and asserts that it succeeded.
pub fn ember_ok(args: &[&str]) -> Output {
    succeeded(ember(args))
}

/// The JSON that a successful `ember args` printed.
pub fn ember_json(args: &[&str]) -> Value {
    json_of(&ember(args))
}

/// The JSON a command printed, after asserting that it succeeded.
pub fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", show(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(out)))
}

/// `ember eval --checkpoint CHECKPOINT --dataset DATASET --json`, parsed.
pub fn eval_json(checkpoint: &Path, dataset: &str) -> Value {
    ember_json(&[
        "eval",
        "--checkpoint",
        arg(checkpoint),
        "--dataset",
        dataset,
        "--json",
    ])
}

/// Runs `cmd` and asserts that it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    succeeded(cmd.output().expect("starting the command"))
}

/// Asserts that a command succeeded; returns its output.
pub fn succeeded(out: Output) -> Output {
    assert!(out.status.success(), "{}", show(&out));
    out
}

/// Runs `cmd`, failing the test (and killing the process) if it has not ended after
/// `limit`: a hang.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} still runs after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Asserts that `text` contains every one of `words`.
pub fn assert_contains(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "{w:?} not in:\n{text}");
    }
}

/// The words of a command line without quoting (flags and values without spaces).
pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// The lines of `stdout` that are JSON.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The JSON lines of one event (`"event": "step"`, `"done"`, ...) in `stdout`.
pub fn events(stdout: &[u8], event: &str) -> Vec<Value> {
    let mut lines = json_lines(stdout);
    lines.retain(|v| v["event"] == event);
    lines
}

/// A JSON file, parsed.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs the `ember` binary with `args`, in `dir` when given.
pub fn ember_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
    cmd.args(args);
    // Decoded image folders are cached away from the user's own cache.
    if std::env::var_os("EMBER_CACHE").is_none() {
        cmd.env("EMBER_CACHE", std::env::temp_dir().join("ember-test-cache"));
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd.output().expect("running ember")
}

/// Stdout and stderr of a finished command, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that a command failed cleanly (exit status 1, not a panic's 101 or a signal)
/// with every one of `words` in its stderr.
pub fn fails_with(out: &Output, words: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", show(out));
    let err = String::from_utf8_lossy(&out.stderr);
    for w in words {
        assert!(err.contains(w), "{w:?} not in the message:\n{}", show(out));
    }
}

/// Writes a grayscale PNG of `w` x `h` pixels, creating its folder.
pub fn write_gray_png(path: &Path, w: u32, h: u32, pixel: impl Fn(u32, u32) -> u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([pixel(x, y)]))
        .save(path)
        .unwrap();
}

/// A fresh folder `name` and in it the image folder `flat` of [`write_flat_folder`];
/// both paths.
pub fn flat_folder(name: &str, classes: usize, per_class: usize, scale: u32) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let flat = dir.join("flat");
    write_flat_folder(&flat, classes, per_class, scale);
    (dir, flat)
}

/// Writes a flat image folder `root/<class>/*.png`: `per_class` 8x8 grayscale images in
/// each of `classes` classes, class `k` drawn as in [`write_tiny_idx`] (learnable), at
/// `scale` times the size.
pub fn write_flat_folder(root: &Path, classes: usize, per_class: usize, scale: u32) {
    let mut state = 99u64;
    for k in 0..classes {
        for i in 0..per_class {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let seed = (state >> 33) as u32;
            let path = root.join(format!("class{k}")).join(format!("{i}.png"));
            write_gray_png(&path, 8 * scale, 8 * scale, |x, y| {
                let (x, y) = ((x / scale) as usize, (y / scale) as usize);
                let on = y / 2 == k / 4 + (k % 2) && x / 2 == k % 4;
                let noise = ((seed ^ (x as u32 * 31 + y as u32 * 17)) % 60) as u8;
                if on { 200 + noise / 2 } else { noise }
            });
        }
    }
}
