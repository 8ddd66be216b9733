//! PNG plots of a run: loss and accuracy curves, and a confusion-matrix heat map.
//! Text is drawn with an embedded font (DejaVu Sans Mono, licence in `assets/`), so plots
//! need no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
    // A chart's training and validation figures of one epoch.
    type Figures = fn(&EpochRecord) -> (f64, Option<f64>);
    let chart = |file: &str, title: &str, axis: &str, figures: Figures| {
        let lines = [
            ("train", BLUE, series(&|r| Some(figures(r).0))),
            ("validation", RED, series(&|r| figures(r).1)),
        ];
        line_chart(&dir.join(file), title, axis, &lines)
    };
    let loss: Figures = |r| (r.train_loss, r.val_loss);
    let accuracy: Figures = |r| (r.train_accuracy, r.val_accuracy);
    chart("loss.png", "loss", "cross-entropy", loss)?;
    chart("accuracy.png", "accuracy", "accuracy", accuracy)
}

/// The heat map's colour for a share `f` in [0, 1]: white to dark blue.
fn heat_colour(f: f64) -> RGBColor {
    let f = f.clamp(0.0, 1.0);
    let mix = |lo: f64, hi: f64| (lo + (hi - lo) * f).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// Black or white, whichever contrasts more with the colour of share `f`: the WCAG
/// relative luminance decides (black above 0.179, where both contrasts are equal).
fn text_colour_on(f: f64) -> &'static RGBColor {
    let RGBColor(r, g, b) = heat_colour(f);
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
    if luminance > 0.179 { &BLACK } else { &WHITE }
}

/// Class names on the heat map's axes are cut to this many characters.
const NAME_CHARS: usize = 16;

/// Writes a confusion-matrix heat map (rows: true class, columns: predicted class), each
/// row coloured by its own shares so that small classes stay readable: counts centred in
/// their cells in black or white by the cell's shade, class names on both axes, axis
/// titles and a colour bar. Counts are left out when there are too many classes for them
/// to fit (cells under 20 pixels).
pub fn plot_confusion(path: &Path, eval: &Evaluation) -> Result<()> {
    register_font();
    let k = eval.confusion.len();
    if k == 0 {
        return Ok(());
    }
    let e = |x| plot_err(path, x);
    let names: Vec<String> = (0..k)
        .map(|i| {
            let n = eval.per_class.get(i).map_or("", |c| c.class.as_str());
            let n: String = n.chars().take(NAME_CHARS).collect();
            if n.is_empty() { i.to_string() } else { n }
        })
        .collect();
    let name_px = 8 * names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as i32;
    let cell = (640 / k as i32).clamp(12, 64);
    let grid = cell * k as i32;
    let (left, top) = (30 + name_px + 10, 44);
    let bar_x = left + grid + 24;
    let width = bar_x + 16 + 56;
    let height = top + grid + 10 + name_px + 34;
    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let text = |size: f64, colour: &'static RGBColor, h: HPos, v: VPos| {
        TextStyle::from((FONT, size).into_font())
            .color(colour)
            .pos(Pos::new(h, v))
    };
    let title = format!(
        "confusion matrix: {} images, accuracy {:.4}",
        eval.count, eval.accuracy
    );
    root.draw(&Text::new(
        title,
        ((left + grid / 2).max(width / 2), 16),
        text(18.0, &BLACK, HPos::Center, VPos::Center),
    ))
    .map_err(e)?;
    let count_size = f64::from(cell) * 0.32;
    for (t, row) in eval.confusion.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        for (p, &v) in row.iter().enumerate() {
            let f = v as f64 / total;
            let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                heat_colour(f).filled(),
            ))
            .map_err(e)?;
            if cell >= 20 {
                root.draw(&Text::new(
                    v.to_string(),
                    (x + cell / 2, y + cell / 2),
                    text(
                        count_size.min(16.0),
                        text_colour_on(f),
                        HPos::Center,
                        VPos::Center,
                    ),
                ))
                .map_err(e)?;
            }
        }
    }
    root.draw(&Rectangle::new(
        [(left, top), (left + grid, top + grid)],
        BLACK.stroke_width(1),
    ))
    .map_err(e)?;
    // Class names: rows on the left, columns below, written downwards; smaller when the
    // cells are, so that neighbours do not overlap.
    let name_size = (f64::from(cell) * 0.9).clamp(8.0, 13.0);
    for (i, name) in names.iter().enumerate() {
        let mid = i as i32 * cell + cell / 2;
        root.draw(&Text::new(
            name.clone(),
            (left - 6, top + mid),
            text(name_size, &BLACK, HPos::Right, VPos::Center),
        ))
        .map_err(e)?;
        root.draw(&Text::new(
            name.clone(),
            (left + mid, top + grid + 6),
            text(name_size, &BLACK, HPos::Left, VPos::Center).transform(FontTransform::Rotate90),
        ))
        .map_err(e)?;
    }
    root.draw(&Text::new(
        "predicted class",
        (left + grid / 2, height - 14),
        text(15.0, &BLACK, HPos::Center, VPos::Center),
    ))
    .map_err(e)?;
    root.draw(&Text::new(
        "true class",
        (12, top + grid / 2),
        text(15.0, &BLACK, HPos::Center, VPos::Center).transform(FontTransform::Rotate270),
    ))
    .map_err(e)?;
    // The colour bar: share of the true class, 100% at the top.
    for y in 0..grid {
        let f = 1.0 - f64::from(y) / f64::from((grid - 1).max(1));
        root.draw(&Rectangle::new(
            [(bar_x, top + y), (bar_x + 16, top + y + 1)],
            heat_colour(f).filled(),
        ))
        .map_err(e)?;
    }
    root.draw(&Rectangle::new(
        [(bar_x, top), (bar_x + 16, top + grid)],
        BLACK.stroke_width(1),
    ))
    .map_err(e)?;
    for (label, f) in [("100%", 1.0), ("50%", 0.5), ("0%", 0.0)] {
        let y = top + ((1.0 - f) * f64::from(grid - 1)) as i32;
        root.draw(&Text::new(
            label,
            (bar_x + 20, y),
            text(12.0, &BLACK, HPos::Left, VPos::Center),
        ))
        .map_err(e)?;
    }
    root.draw(&Text::new(
        "share of row",
        (bar_x + 8, top + grid + 14),
        text(11.0, &BLACK, HPos::Center, VPos::Center),
    ))
    .map_err(e)?;
    root.present().map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_dark_on_light_cells_and_light_on_dark_ones() {
        assert_eq!(text_colour_on(0.0), &BLACK);
        assert_eq!(text_colour_on(0.3), &BLACK);
        assert_eq!(text_colour_on(0.8), &WHITE);
        assert_eq!(text_colour_on(1.0), &WHITE);
        assert_eq!(heat_colour(0.0), WHITE);
    }
}
