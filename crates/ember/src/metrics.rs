//! Training metrics (one record per epoch, appended to `metrics.jsonl` and `metrics.csv`)
//! and classification metrics (accuracy, per-class precision/recall/F1, confusion matrix).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, io_error};

/// What one epoch of training measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: u64,
    /// Optimizer steps completed.
    pub step: u64,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (on augmented batches, in train mode).
    pub train_accuracy: f64,
    /// Validation loss, when there is a validation set.
    pub val_loss: Option<f64>,
    /// Validation accuracy, when there is a validation set.
    pub val_accuracy: Option<f64>,
    /// Test accuracy after the epoch, when asked for (`--test-every-epoch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training images per second in this epoch.
    pub images_per_s: f64,
    /// Cumulative training seconds (excluding validation).
    pub train_seconds: f64,
}

const CSV_HEADER: &str = "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,test_accuracy,lr,images_per_s,train_seconds";

/// Appends epoch records to `metrics.jsonl` and `metrics.csv` in a run folder.
pub struct MetricsLog {
    jsonl: PathBuf,
    csv: PathBuf,
}

impl MetricsLog {
    /// The log of run folder `dir` (files are created on first append).
    pub fn new(dir: &Path) -> Self {
        MetricsLog {
            jsonl: dir.join("metrics.jsonl"),
            csv: dir.join("metrics.csv"),
        }
    }

    /// Appends one record to both files.
    pub fn append(&self, r: &EpochRecord) -> Result<()> {
        let json = serde_json::to_string(r).unwrap_or_default();
        append_line(&self.jsonl, &json, None)?;
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
        let row = format!(
            "{},{},{:.6},{:.6},{},{},{},{:.6e},{:.1},{:.3}",
            r.epoch,
            r.step,
            r.train_loss,
            r.train_accuracy,
            opt(r.val_loss),
            opt(r.val_accuracy),
            opt(r.test_accuracy),
            r.lr,
            r.images_per_s,
            r.train_seconds
        );
        append_line(&self.csv, &row, Some(CSV_HEADER))
    }

    /// Reads back the records of `metrics.jsonl` (for plots and resumed runs).
    pub fn read(&self) -> Result<Vec<EpochRecord>> {
        let text = match std::fs::read_to_string(&self.jsonl) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_error(&self.jsonl, "cannot read", e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Drops records after `epoch` (a resumed run rewrites what follows its checkpoint).
    pub fn truncate_after(&self, epoch: u64) -> Result<()> {
        let keep: Vec<EpochRecord> = self
            .read()?
            .into_iter()
            .filter(|r| r.epoch <= epoch)
            .collect();
        for p in [&self.jsonl, &self.csv] {
            if p.exists() {
                std::fs::remove_file(p).map_err(|e| io_error(p, "cannot rewrite", e))?;
            }
        }
        keep.iter().try_for_each(|r| self.append(r))
    }
}

fn append_line(path: &Path, line: &str, header: Option<&str>) -> Result<()> {
    let fresh = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, "cannot open", e))?;
    let mut text = String::new();
    if let (true, Some(h)) = (fresh, header) {
        text.push_str(h);
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    f.write_all(text.as_bytes())
        .map_err(|e| io_error(path, "cannot append", e))
}

/// Precision, recall and F1 of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// Class name.
    pub class: String,
    /// Correct among predicted as this class (0 when never predicted).
    pub precision: f64,
    /// Correct among truly this class (0 when absent).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Number of samples of this class.
    pub support: u64,
}

/// The result of evaluating a classifier on a labelled set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Number of samples.
    pub count: u64,
    /// Per-class statistics in label order.
    pub per_class: Vec<ClassStats>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    /// Builds the statistics from a confusion matrix and a summed loss.
    pub fn from_confusion(confusion: Vec<Vec<u64>>, loss_sum: f64, classes: &[String]) -> Self {
        let k = confusion.len();
        let count: u64 = confusion.iter().flatten().sum();
        let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
        let per_class = (0..k)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let support: u64 = confusion[c].iter().sum();
                let predicted: u64 = (0..k).map(|t| confusion[t][c]).sum();
                let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
                let (p, r) = (ratio(tp, predicted), ratio(tp, support));
                ClassStats {
                    class: classes.get(c).cloned().unwrap_or_else(|| c.to_string()),
                    precision: p,
                    recall: r,
                    f1: if p + r == 0.0 {
                        0.0
                    } else {
                        2.0 * p * r / (p + r)
                    },
                    support,
                }
            })
            .collect();
        Evaluation {
            accuracy: if count == 0 {
                0.0
            } else {
                correct as f64 / count as f64
            },
            loss: if count == 0 {
                0.0
            } else {
                loss_sum / count as f64
            },
            count,
            per_class,
            confusion,
        }
    }

    /// A text report: per-class table and confusion matrix.
    pub fn report(&self) -> String {
        let mut s = format!(
            "accuracy {:.4} ({} samples), loss {:.4}\n\n{:<16} {:>9} {:>9} {:>9} {:>8}\n",
            self.accuracy, self.count, self.loss, "class", "precision", "recall", "f1", "support"
        );
        for c in &self.per_class {
            s += &format!(
                "{:<16} {:>9.4} {:>9.4} {:>9.4} {:>8}\n",
                truncate(&c.class, 16),
                c.precision,
                c.recall,
                c.f1,
                c.support
            );
        }
        s += "\nconfusion (rows: true class, columns: predicted)\n";
        s += &format!("{:>16}", "");
        for j in 0..self.confusion.len() {
            s += &format!(" {j:>6}");
        }
        s.push('\n');
        // Row labels: the index right-aligned, the name left-aligned, 16 columns in all.
        let index_width = self.confusion.len().saturating_sub(1).to_string().len();
        let name_width = 15usize.saturating_sub(index_width);
        for (i, row) in self.confusion.iter().enumerate() {
            let name = self
                .per_class
                .get(i)
                .map(|c| c.class.as_str())
                .unwrap_or("");
            let name = truncate(name, name_width);
            s += &format!("{i:>index_width$} {name:<name_width$}");
            for v in row {
                s += &format!(" {v:>6}");
            }
            s.push('\n');
        }
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_recall_f1_from_confusion() {
        // true 0: 3 right, 1 called 1; true 1: 2 right; class 2 never present nor predicted.
        let conf = vec![vec![3, 1, 0], vec![0, 2, 0], vec![0, 0, 0]];
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let e = Evaluation::from_confusion(conf, 6.0, &names);
        assert!((e.accuracy - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(e.loss, 1.0);
        assert!((e.per_class[0].precision - 1.0).abs() < 1e-12);
        assert!((e.per_class[0].recall - 0.75).abs() < 1e-12);
        assert!((e.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        let f1 = 2.0 * 0.75 / 1.75;
        assert!((e.per_class[0].f1 - f1).abs() < 1e-12);
        assert_eq!(e.per_class[2].f1, 0.0);
        assert!(e.report().contains("confusion"));
    }

    #[test]
    fn confusion_rows_line_up_under_the_header() {
        // 11 classes: two-digit indices; names short, long and over the column width.
        let k = 11;
        let mut conf = vec![vec![0u64; k]; k];
        for (i, row) in conf.iter_mut().enumerate() {
            row[i] = 1000 + i as u64;
        }
        let names: Vec<String> = (0..k)
            .map(|i| match i {
                0 => "cat".to_string(),
                1 => "a-very-long-class-name".to_string(),
                _ => format!("class{i}"),
            })
            .collect();
        let e = Evaluation::from_confusion(conf, 1.0, &names);
        let report = e.report();
        let table: Vec<&str> = report
            .lines()
            .skip_while(|l| !l.starts_with("confusion"))
            .skip(1)
            .collect();
        assert_eq!(table.len(), k + 1, "{report}");
        let width = table[0].len();
        for (i, row) in table[1..].iter().enumerate() {
            assert_eq!(row.len(), width, "{report}");
            // The index right-aligned in two columns, then the name from the same column.
            assert_eq!(row[..2].trim_start(), i.to_string(), "{report}");
            assert_eq!(&row[2..3], " ", "{report}");
            assert!(names[i].starts_with(row[3..16].trim_end()), "{report}");
            assert_ne!(&row[3..4], " ", "{report}");
            let diagonal = row[16..].split_whitespace().nth(i);
            assert_eq!(diagonal, Some((1000 + i).to_string().as_str()), "{report}");
        }
    }

    #[test]
    fn log_appends_and_truncates() {
        let dir = std::env::temp_dir().join(format!("ember-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = MetricsLog::new(&dir);
        for epoch in 1..=3 {
            log.append(&EpochRecord {
                epoch,
                step: epoch * 10,
                train_loss: 1.0,
                train_accuracy: 0.5,
                val_loss: None,
                val_accuracy: Some(0.6),
                test_accuracy: None,
                lr: 0.1,
                images_per_s: 100.0,
                train_seconds: epoch as f64,
            })
            .unwrap();
        }
        assert_eq!(log.read().unwrap().len(), 3);
        log.truncate_after(1).unwrap();
        assert_eq!(log.read().unwrap().len(), 1);
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 2, "{csv}");
        assert!(csv.starts_with("epoch,step"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
