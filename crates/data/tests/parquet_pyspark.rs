//! Parquet written by real Spark: PNG files made here (RGB, grayscale, RGBA, one of another
//! size) are read by Spark's image data source (`scripts/spark_images_to_parquet.py`, local
//! mode) and saved as Parquet; Ember must read every image exactly as it reads the PNG file
//! itself, which checks Spark's BGR byte order, its modes and the labels and splits.
//!
//! Needs Java and a Python with pyspark: `$EMBER_PYTHON`, else `python3`. Without them the
//! test is skipped with a note, except under CI, where it fails.

mod common;
#[path = "common/pyspark.rs"]
mod pyspark;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;
use ember_data::formats::parquet::{self as pq, ParquetOptions};
use pyspark::pyspark_python;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name)
}

/// Pixel (x, y) of test image `k`: distinct values in every channel.
fn value(k: u32, x: u32, y: u32, channel: u32) -> u8 {
    ((k * 61 + x * 29 + y * 13 + channel * 71) % 256) as u8
}

/// Writes the PNGs: (relative path, image).
fn write_pngs(root: &Path) -> Vec<PathBuf> {
    let imgs: Vec<(&str, image::DynamicImage)> = vec![
        (
            "train/rgb/a.png",
            image::RgbImage::from_fn(6, 6, |x, y| {
                image::Rgb([value(0, x, y, 0), value(0, x, y, 1), value(0, x, y, 2)])
            })
            .into(),
        ),
        (
            "train/gray/b.png",
            image::GrayImage::from_fn(6, 6, |x, y| image::Luma([value(1, x, y, 0)])).into(),
        ),
        (
            "train/rgba/c.png",
            image::RgbaImage::from_fn(6, 6, |x, y| {
                let v = |c| value(2, x, y, c);
                image::Rgba([v(0), v(1), v(2), v(3)])
            })
            .into(),
        ),
        (
            "train/wide/d.png",
            image::RgbImage::from_fn(8, 4, |x, y| {
                image::Rgb([value(3, x, y, 0), value(3, x, y, 1), value(3, x, y, 2)])
            })
            .into(),
        ),
        (
            "test/rgb/e.png",
            image::RgbImage::from_fn(6, 6, |x, y| {
                image::Rgb([value(4, x, y, 0), value(4, x, y, 1), value(4, x, y, 2)])
            })
            .into(),
        ),
    ];
    imgs.into_iter()
        .map(|(rel, img)| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            img.save(&p).unwrap();
            p
        })
        .collect()
}

#[test]
fn parquet_written_by_spark_reads_as_the_png_files() {
    let Some(python) = pyspark_python() else {
        return;
    };
    let t = TempDir::new("pyspark");
    let pngs = write_pngs(&t.path().join("png"));
    let out = t.path().join("images.parquet");
    let run = Command::new(&python)
        .arg(script("spark_images_to_parquet.py"))
        .arg(t.path().join("png"))
        .arg(&out)
        .args(["--master", "local[2]"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "spark_images_to_parquet.py failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let opts = ParquetOptions {
        split_column: Some("split".into()),
        ..Default::default()
    };
    let (s, summary) = pq::open(&out, &opts, Some([3, 6, 6]), None).unwrap();
    eprintln!("{summary}");
    let stored = format!("{:?}", summary.stored);
    for want in [
        "6x6x1 mode 0",
        "6x6x3 mode 16",
        "6x6x4 mode 24",
        "4x8x3 mode 16",
    ] {
        assert!(stored.contains(want), "{stored}");
    }
    assert_eq!(s.train.classes(), &["gray", "rgb", "rgba", "wide"]);
    assert_eq!((s.train.len(), s.test.len()), (4, 1));
    for png in &pngs {
        let class = png.parent().unwrap().file_name().unwrap().to_str().unwrap();
        let is_test = png.to_str().unwrap().contains("/test/");
        let part = if is_test { &s.test } else { &s.train };
        let label = s.train.classes().iter().position(|c| c == class).unwrap();
        let i = part.labels().iter().position(|&l| l == label).unwrap();
        let want = ember_data::load_image(png, 3, 6, 6).unwrap();
        assert_eq!(part.image(i), want.as_slice(), "{}", png.display());
    }
    // Without a size the first training image decides: whatever it is, all are read.
    let (s, _) = pq::open(&out, &opts, None, None).unwrap();
    assert_eq!(s.train.len(), 4);
}
