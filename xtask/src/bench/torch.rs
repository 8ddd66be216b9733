//! Running the PyTorch reference script side by side (`--compare-torch`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use super::Options;

/// A Python with torch and the reference script.
pub struct Torch {
    python: PathBuf,
    script: PathBuf,
}

impl Torch {
    /// Finds a Python that imports torch (`--python`, `~/torch-venv/bin/python3`, `python3`).
    /// `Ok(None)` with a note when there is none: the comparison is skipped, not failed.
    pub fn find(opts: &Options) -> Result<Option<Torch>, String> {
        if !opts.torch_script.exists() {
            eprintln!(
                "note: {} not found; skipping the PyTorch comparison",
                opts.torch_script.display()
            );
            return Ok(None);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let candidates = opts.python.iter().cloned().chain([
            home.join("torch-venv/bin/python3"),
            PathBuf::from("python3"),
        ]);
        for py in candidates {
            let ok = Command::new(&py)
                .args(["-c", "import torch"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(Some(Torch {
                    python: py,
                    script: opts.torch_script.clone(),
                }));
            }
        }
        eprintln!(
            "note: no Python with torch found (pip install torch numpy); skipping the PyTorch comparison"
        );
        Ok(None)
    }

    /// Whether the reference script defines `net`.
    pub fn knows(&self, net: &str) -> bool {
        matches!(net, "fmnist-cnn" | "cifar-cnn" | "resnet9" | "cifar-fast")
    }

    /// `{train, infer}` images/s of `net` in PyTorch.
    pub fn throughput(
        &self,
        net: &str,
        seconds: f64,
        threads: usize,
        channels_last: bool,
    ) -> Result<Value, String> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script).args([
            "throughput",
            "--net",
            net,
            "--threads",
            &threads.to_string(),
            "--seconds",
            &seconds.to_string(),
        ]);
        if channels_last {
            cmd.arg("--channels-last");
        }
        let out = cmd
            .output()
            .map_err(|e| format!("{}: {e}", self.python.display()))?;
        if !out.status.success() {
            return Err(format!(
                "reference.py throughput {net}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| format!("reference.py throughput {net}: no JSON output"))?;
        Ok(json!({"train": v["train"]["images_per_s"], "infer": v["infer"]["images_per_s"]}))
    }
}
