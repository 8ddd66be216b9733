//! Reads criterion's results (`target/criterion/**/new/{benchmark,estimates}.json`) into
//! figures: throughput per second where the bench declared one, else time per iteration.

use std::path::Path;

use serde_json::Value;

use super::Figure;

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") {
                out.push(p);
            } else {
                walk(&p, out);
            }
        }
    }
}

/// Every benchmark criterion measured, as figures named by criterion's full id.
pub fn collect(criterion_dir: &Path) -> Vec<Figure> {
    let mut dirs = Vec::new();
    walk(criterion_dir, &mut dirs);
    let mut figures: Vec<Figure> = dirs
        .iter()
        .filter_map(|d| {
            let bench = read_json(&d.join("benchmark.json"))?;
            let est = read_json(&d.join("estimates.json"))?;
            let id = bench["full_id"].as_str()?.to_string();
            let mean_ns = est["mean"]["point_estimate"].as_f64()?;
            let secs = mean_ns * 1e-9;
            let (value, unit) = match &bench["throughput"] {
                Value::Object(t) if t.contains_key("Elements") => {
                    (t["Elements"].as_f64()? / secs, "elem/s")
                }
                Value::Object(t) if t.contains_key("Bytes") => (t["Bytes"].as_f64()? / secs, "B/s"),
                _ => (secs, "s/iter"),
            };
            Some(Figure {
                name: format!("criterion/{id}"),
                value,
                unit: unit.into(),
                higher_is_better: unit != "s/iter",
            })
        })
        .collect();
    figures.sort_by(|a, b| a.name.cmp(&b.name));
    figures
}
