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
