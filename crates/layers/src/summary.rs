//! A Keras-style model summary: one row per layer, then totals.

use std::fmt;

use ember_tensor::Shape;

/// One layer's line of a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// The layer's index in its `Sequential` (its `state_dict` prefix).
    pub index: usize,
    /// The layer's description, e.g. `Linear(64->10)`.
    pub layer: String,
    /// The layer's output shape.
    pub output: Shape,
    /// Trainable scalars in the layer (nested layers included).
    pub params: usize,
    /// Forward floating-point operations for the whole batch.
    pub flops: u64,
}

/// What `Sequential::summary` returns: the rows as data, and a table through `Display`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The input shape the summary was computed for.
    pub input: Shape,
    /// One row per top-level layer.
    pub rows: Vec<SummaryRow>,
    /// The sum of the rows' parameters.
    pub total_params: usize,
    /// The sum of the rows' forward FLOPs.
    pub total_flops: u64,
}

impl Summary {
    pub(crate) fn new(input: Shape, rows: Vec<SummaryRow>) -> Self {
        Summary {
            input,
            total_params: rows.iter().map(|r| r.params).sum(),
            total_flops: rows.iter().map(|r| r.flops).sum(),
            rows,
        }
    }

    /// The model's output shape (the input shape when there are no layers).
    pub fn output(&self) -> Shape {
        self.rows.last().map_or(self.input, |r| r.output)
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// FLOPs with a decimal prefix: `12.3M`.
fn si(n: u64) -> String {
    let x = n as f64;
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", x / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", x / 1e6),
        _ => format!("{:.2}G", x / 1e9),
    }
}

/// A byte count with a binary prefix: `1.5 KiB`.
fn bytes(n: u64) -> String {
    let x = n as f64;
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", x / 1024.0),
        _ => format!("{:.1} MiB", x / 1_048_576.0),
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["#", "Layer", "Output shape", "Params", "FLOPs"];
        let mut cells: Vec<[String; 5]> = vec![[
            String::new(),
            "input".into(),
            self.input.to_string(),
            String::new(),
            String::new(),
        ]];
        cells.extend(self.rows.iter().map(|r| {
            [
                r.index.to_string(),
                r.layer.clone(),
                r.output.to_string(),
                thousands(r.params as u64),
                si(r.flops),
            ]
        }));
        let mut width = header.map(str::len);
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line_len = width.iter().sum::<usize>() + 2 * (width.len() - 1);
        let write_row = |f: &mut fmt::Formatter<'_>, row: [&str; 5]| -> fmt::Result {
            writeln!(
                f,
                "{:>w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3],
                w4 = width[4],
            )
        };
        write_row(f, header)?;
        writeln!(f, "{}", "=".repeat(line_len))?;
        for row in &cells {
            write_row(f, [&row[0], &row[1], &row[2], &row[3], &row[4]])?;
        }
        writeln!(f, "{}", "=".repeat(line_len))?;
        writeln!(
            f,
            "Total params: {} ({} as f32)",
            thousands(self.total_params as u64),
            bytes(self.total_params as u64 * 4)
        )?;
        let batch = self.input.dims().first().copied().unwrap_or(1).max(1);
        write!(
            f,
            "Forward FLOPs: {} for a batch of {batch} ({} per item)",
            si(self.total_flops),
            si(self.total_flops / batch as u64)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(si(999), "999");
        assert_eq!(si(12_345_678), "12.3M");
        assert_eq!(si(3_000_000_000), "3.00G");
        assert_eq!(bytes(1000), "1000 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
