//! PNG plots of a run: loss and accuracy curves, and a confusion-matrix heat map.
//! Text is drawn with an embedded font (DejaVu Sans Mono, licence in `assets/`), so plots
//! need no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::metrics::{EpochRecord, Evaluation};

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known good; a failure would only lose labels.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSansMono.ttf"),
        );
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error(format!("{}: cannot draw plot: {e}", path.display()))
}

/// One curve: a name, a colour and its (epoch, value) points.
type Curve<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn line_chart(path: &Path, title: &str, y_label: &str, curves: &[Curve]) -> Result<()> {
    register_font();
    let points: Vec<&(f64, f64)> = curves.iter().flat_map(|c| c.2.iter()).collect();
    if points.is_empty() {
        return Ok(());
    }
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let (mut y_min, mut y_max) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if !(y_min.is_finite() && y_max.is_finite()) {
        return Ok(());
    }
    if y_max - y_min < 1e-9 {
        y_min -= 0.5;
        y_max += 0.5;
    }
    let pad = (y_max - y_min) * 0.05;
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (name, color, pts) in curves {
        let color = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| plot_err(path, e))?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}

/// Writes `loss.png` and `accuracy.png` in `dir` from the epoch records.
pub fn plot_curves(dir: &Path, records: &[EpochRecord]) -> Result<()> {
    let series = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter_map(|r| f(r).map(|v| (r.epoch as f64, v)))
            .collect()
    };
    line_chart(
        &dir.join("loss.png"),
        "loss",
        "cross-entropy",
        &[
            ("train", BLUE, series(&|r| Some(r.train_loss))),
            ("validation", RED, series(&|r| r.val_loss)),
        ],
    )?;
    line_chart(
        &dir.join("accuracy.png"),
        "accuracy",
        "accuracy",
        &[
            ("train", BLUE, series(&|r| Some(r.train_accuracy))),
            ("validation", RED, series(&|r| r.val_accuracy)),
        ],
    )
}

/// Writes a confusion-matrix heat map (rows: true class, columns: predicted), each row
/// coloured by its own fraction so that small classes stay readable.
pub fn plot_confusion(path: &Path, eval: &Evaluation) -> Result<()> {
    register_font();
    let k = eval.confusion.len();
    if k == 0 {
        return Ok(());
    }
    let cell = (560 / k as u32).clamp(12, 60);
    let side = cell * k as u32;
    let root = BitMapBackend::new(path, (side + 200, side + 120)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "confusion matrix (rows: true, columns: predicted)",
            (FONT, 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(150)
        .build_cartesian_2d(0..k as i32, k as i32..0)
        .map_err(|e| plot_err(path, e))?;
    let names: Vec<String> = eval.per_class.iter().map(|c| c.class.clone()).collect();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(k)
        .y_labels(k)
        .y_label_formatter(&|i| names.get(*i as usize).cloned().unwrap_or_default())
        .label_style((FONT, 12))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    let cells = eval.confusion.iter().enumerate().flat_map(|(t, row)| {
        let total: u64 = row.iter().sum::<u64>().max(1);
        row.iter().enumerate().map(move |(p, &v)| {
            let f = v as f64 / total as f64;
            let shade = (255.0 * (1.0 - f)) as u8;
            Rectangle::new(
                [(p as i32, t as i32), (p as i32 + 1, t as i32 + 1)],
                RGBColor(shade, shade, 255).filled(),
            )
        })
    });
    chart.draw_series(cells).map_err(|e| plot_err(path, e))?;
    if cell >= 28 {
        let labels = eval.confusion.iter().enumerate().flat_map(|(t, row)| {
            row.iter().enumerate().map(move |(p, &v)| {
                Text::new(v.to_string(), (p as i32, t as i32), (FONT, 11).into_font())
            })
        });
        chart.draw_series(labels).map_err(|e| plot_err(path, e))?;
    }
    root.present().map_err(|e| plot_err(path, e))
}
