//! Test helpers: a tiny IDX dataset written to a temporary folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

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

/// A small spec for 1x8x8 inputs and 10 classes.
pub const TINY_SPEC: &str = r#"
name = "tiny8"
input = [1, 8, 8]
[[layer]]
type = "conv2d"
out = 4
kernel = 3
padding = 1
[[layer]]
type = "relu"
[[layer]]
type = "max_pool2d"
kernel = 2
[[layer]]
type = "flatten"
[[layer]]
type = "linear"
out = 10
"#;

/// [`TINY_SPEC`] with an identity-started convolution, batch norm with a fixed scale and
/// GELU: the layers of the fast CIFAR-10 recipe, on 8x8 images.
#[allow(dead_code)]
pub const TINY_BN_SPEC: &str = r#"
name = "tiny8-bn"
input = [1, 8, 8]
fixed = ["1.weight"]
[[layer]]
type = "conv2d"
out = 4
kernel = 3
padding = 1
bias = false
init = "dirac"
[[layer]]
type = "batch_norm2d"
momentum = 0.4
[[layer]]
type = "gelu"
[[layer]]
type = "max_pool2d"
kernel = 2
[[layer]]
type = "flatten"
[[layer]]
type = "linear"
out = 10
"#;

/// Runs the `ember` binary with `args`, in `dir` when given.
pub fn ember_in(dir: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ember"));
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
pub fn show(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that a command failed cleanly (exit status 1, not a panic's 101 or a signal)
/// with every one of `words` in its stderr.
pub fn fails_with(out: &std::process::Output, words: &[&str]) {
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
