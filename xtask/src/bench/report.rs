//! The bench report: every figure with the machine it was measured on, as Markdown and
//! JSON, a printed table, Ember/PyTorch ratios and a comparison with a baseline report.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One measured number.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Figure {
    /// What was measured, e.g. `ember/cifar-cnn/train`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`images/s`, `elem/s`, `B/s`, `s/iter`).
    pub unit: String,
    /// Whether larger is better (throughputs) or smaller (times).
    pub higher_is_better: bool,
}

/// Everything one `cargo xtask bench` run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// CPU model, features, cores.
    pub machine: Value,
    /// Threads used.
    pub threads: usize,
    /// `git rev-parse HEAD` (and whether the tree had changes).
    pub git_commit: String,
    /// Quick (smoke) mode.
    pub quick: bool,
    /// Every figure.
    pub figures: Vec<Figure>,
    /// Fashion-MNIST time-to-accuracy, when run.
    pub fmnist: Option<Value>,
    /// Regressions found against a baseline.
    pub regressions: Vec<String>,
}

fn command_text(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_string();
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or("");
    let features: Vec<&str> = ["sse4_2", "avx", "avx2", "fma", "avx512f"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    json!({
        "cpu": model,
        "features": features,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

impl Report {
    /// An empty report for this machine and commit.
    pub fn new(root: &Path, threads: usize, quick: bool) -> Report {
        let commit = command_text(
            Command::new("git")
                .current_dir(root)
                .args(["rev-parse", "HEAD"]),
        );
        let dirty = !command_text(
            Command::new("git")
                .current_dir(root)
                .args(["status", "--porcelain"]),
        )
        .is_empty();
        Report {
            machine: machine(),
            threads,
            git_commit: if dirty {
                format!("{commit} (with uncommitted changes)")
            } else {
                commit
            },
            quick,
            figures: vec![],
            fmnist: None,
            regressions: vec![],
        }
    }

    /// Adds `{train, infer}` images/s of `who` (ember, torch-nchw, ...) on `net`.
    pub fn add_throughput(&mut self, who: &str, net: &str, v: &Value) {
        for mode in ["train", "infer"] {
            if let Some(x) = v[mode].as_f64() {
                self.figures.push(Figure {
                    name: format!("{who}/{net}/{mode}"),
                    value: x,
                    unit: "images/s".into(),
                    higher_is_better: true,
                });
            }
        }
    }

    /// Adds what `ember bench --serve --json` measured on `net`: per client count, the
    /// served images/s and the p50 and p99 latencies (`ember-serve/NET/Cclients/...`).
    pub fn add_serving(&mut self, net: &str, v: &Value) {
        for row in v["rows"].as_array().into_iter().flatten() {
            let clients = row["clients"].as_u64().unwrap_or(0);
            for (key, unit, higher_is_better) in [
                ("images_per_s", "images/s", true),
                ("p50_ms", "ms", false),
                ("p99_ms", "ms", false),
            ] {
                if let Some(x) = row[key].as_f64() {
                    self.figures.push(Figure {
                        name: format!("ember-serve/{net}/{clients}clients/{key}"),
                        value: x,
                        unit: unit.into(),
                        higher_is_better,
                    });
                }
            }
        }
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }

    /// Ember/PyTorch ratios per net and mode against the faster PyTorch layout:
    /// (net, mode, ember, torch best, ratio).
    pub fn ratios(&self) -> Vec<(String, String, f64, f64, f64)> {
        let mut nets: Vec<String> = self
            .figures
            .iter()
            .filter_map(|f| f.name.strip_prefix("ember/"))
            .filter_map(|n| n.split('/').next())
            .map(String::from)
            .collect();
        nets.dedup();
        let mut out = vec![];
        for net in nets {
            for mode in ["train", "infer"] {
                let Some(e) = self.get(&format!("ember/{net}/{mode}")) else {
                    continue;
                };
                let t = [
                    self.get(&format!("torch-nchw/{net}/{mode}")),
                    self.get(&format!("torch-channels-last/{net}/{mode}")),
                ]
                .into_iter()
                .flatten()
                .fold(f64::NAN, f64::max);
                if t.is_finite() {
                    out.push((net.clone(), mode.to_string(), e, t, e / t));
                }
            }
        }
        out
    }

    /// Flags figures that fell by more than the noise allowance; returns how many.
    pub fn compare_baseline(&mut self, path: &Path) -> Result<usize, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let base: Report = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a bench report: {e}", path.display()))?;
        for f in &self.figures {
            let Some(old) = base.figures.iter().find(|b| b.name == f.name) else {
                continue;
            };
            let change = if f.higher_is_better {
                f.value / old.value - 1.0
            } else {
                old.value / f.value - 1.0
            };
            if change < -super::NOISE {
                self.regressions.push(format!(
                    "{}: {:.4e} -> {:.4e} {} ({:+.1}%)",
                    f.name,
                    old.value,
                    f.value,
                    f.unit,
                    change * 100.0
                ));
            }
        }
        Ok(self.regressions.len())
    }

    /// A text table of the end-to-end figures and ratios.
    pub fn table(&self) -> String {
        let mut s = format!("{:<44} {:>14} {}\n", "figure", "value", "unit");
        for f in self
            .figures
            .iter()
            .filter(|f| !f.name.starts_with("criterion/"))
        {
            s += &format!("{:<44} {:>14.1} {}\n", f.name, f.value, f.unit);
        }
        let gemm: Vec<&Figure> = self
            .figures
            .iter()
            .filter(|f| f.name.contains("gemm/square1024"))
            .collect();
        for f in gemm {
            s += &format!("{:<44} {:>14.1} GFLOP/s\n", f.name, f.value / 1e9);
        }
        let r = self.ratios();
        if !r.is_empty() {
            s += &format!(
                "\n{:<12} {:<6} {:>12} {:>12} {:>8}\n",
                "net", "mode", "ember", "torch best", "ratio"
            );
            for (net, mode, e, t, ratio) in r {
                s += &format!("{net:<12} {mode:<6} {e:>12.1} {t:>12.1} {ratio:>7.2}x\n");
            }
        }
        for reg in &self.regressions {
            s += &format!("REGRESSION {reg}\n");
        }
        s
    }

    /// Writes `report.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("report.json"), json)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut md = format!(
            "# Ember bench report\n\n- machine: {}\n- threads: {}\n- commit: {}\n- mode: {}\n\n## End to end\n\n```\n{}```\n\n## Kernels (criterion)\n\n| bench | value | unit |\n|---|---:|---|\n",
            self.machine,
            self.threads,
            self.git_commit,
            if self.quick { "quick" } else { "full" },
            self.table()
        );
        for f in self
            .figures
            .iter()
            .filter(|f| f.name.starts_with("criterion/"))
        {
            md += &format!(
                "| {} | {:.4e} | {} |\n",
                f.name.trim_start_matches("criterion/"),
                f.value,
                f.unit
            );
        }
        if let Some(fm) = &self.fmnist {
            md += &format!(
                "\n## Fashion-MNIST time-to-accuracy\n\n```json\n{}\n```\n",
                serde_json::to_string_pretty(fm).unwrap_or_default()
            );
        }
        std::fs::write(dir.join("report.md"), md).map_err(|e| format!("{}: {e}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(figs: &[(&str, f64)]) -> Report {
        Report {
            machine: Value::Null,
            threads: 2,
            git_commit: "test".into(),
            quick: true,
            figures: figs
                .iter()
                .map(|&(name, value)| Figure {
                    name: name.into(),
                    value,
                    unit: "images/s".into(),
                    higher_is_better: true,
                })
                .collect(),
            fmnist: None,
            regressions: vec![],
        }
    }

    #[test]
    fn ratios_use_the_faster_torch_layout() {
        let r = report(&[
            ("ember/cifar-cnn/train", 1500.0),
            ("torch-nchw/cifar-cnn/train", 1000.0),
            ("torch-channels-last/cifar-cnn/train", 1200.0),
            ("ember/cifar-cnn/infer", 600.0),
        ]);
        let ratios = r.ratios();
        assert_eq!(ratios.len(), 1, "no torch figure for infer: no ratio");
        assert_eq!(ratios[0].3, 1200.0);
        assert!((ratios[0].4 - 1.25).abs() < 1e-12);
        assert!(r.table().contains("1.25x"));
    }

    #[test]
    fn serving_rows_become_figures_with_latencies_lower_is_better() {
        let mut r = report(&[]);
        let served = json!({"rows": [
            {"clients": 1, "images_per_s": 2000.0, "p50_ms": 0.4, "p99_ms": 1.5},
            {"clients": 32, "images_per_s": 15000.0, "p50_ms": 2.0, "p99_ms": 6.0},
        ]});
        r.add_serving("fmnist-cnn", &served);
        assert_eq!(r.figures.len(), 6);
        let p99 = r
            .figures
            .iter()
            .find(|f| f.name == "ember-serve/fmnist-cnn/32clients/p99_ms")
            .unwrap();
        assert_eq!(
            (p99.value, p99.unit.as_str(), p99.higher_is_better),
            (6.0, "ms", false)
        );
        assert_eq!(
            r.get("ember-serve/fmnist-cnn/1clients/images_per_s"),
            Some(2000.0)
        );
    }

    #[test]
    fn baseline_flags_only_drops_beyond_the_noise() {
        let dir = std::env::temp_dir().join(format!("ember-xbench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = report(&[
            ("ember/a/train", 100.0),
            ("ember/b/train", 100.0),
            ("ember/c/train", 100.0),
        ]);
        old.write(&dir).unwrap();
        let mut new = report(&[
            ("ember/a/train", 95.0),
            ("ember/b/train", 80.0),
            ("ember/c/train", 130.0),
        ]);
        let n = new.compare_baseline(&dir.join("report.json")).unwrap();
        assert_eq!(n, 1, "{:?}", new.regressions);
        assert!(new.regressions[0].starts_with("ember/b/train"));
        assert!(new.compare_baseline(&dir.join("missing.json")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
