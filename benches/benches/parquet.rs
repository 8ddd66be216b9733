//! Parquet read throughput (images/s, shown by criterion as elem/s): a Spark image
//! DataFrame of 10,000 CIFAR-shaped images (3x32x32, BGR rows, snappy, 4096 rows per row
//! group, as `ember_data::formats::parquet::write_spark_images` writes Spark's schema) read
//! from memory into a `Dataset` (decompression, checks, BGR rows to RGB planes). Its
//! pixels are the embedded sample's images padded to 32x32, one plane each as is, halved
//! and inverted, so that they compress as real images do, not as noise.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ember_data::Dataset;
use ember_data::formats::parquet::{self, ParquetOptions, WriteOptions};

const IMAGES: usize = 10_000;

fn cifar_shaped() -> Dataset {
    let sample = ember_data::sample().unwrap().train;
    let mut pixels = Vec::with_capacity(IMAGES * 3072);
    for i in 0..IMAGES {
        let img = sample.image(i % sample.len());
        let padded = |f: fn(u8) -> u8| -> Vec<u8> {
            (0..32 * 32)
                .map(|k| {
                    let (y, x) = (k / 32, k % 32);
                    if (2..30).contains(&y) && (2..30).contains(&x) {
                        f(img[(y - 2) * 28 + x - 2])
                    } else {
                        0
                    }
                })
                .collect()
        };
        pixels.extend(padded(|v| v));
        pixels.extend(padded(|v| v / 2));
        pixels.extend(padded(|v| 255 - v));
    }
    let labels = (0..IMAGES)
        .map(|i| sample.label(i % sample.len()))
        .collect();
    Dataset::new([3, 32, 32], pixels, labels, sample.classes().to_vec()).unwrap()
}

fn bench_parquet(c: &mut Criterion) {
    let quick = std::env::var_os("EMBER_BENCH_QUICK").is_some();
    let mut bytes = Vec::new();
    parquet::write_spark_images(&mut bytes, &cifar_shaped(), &WriteOptions::default()).unwrap();
    let mut group = c.benchmark_group("parquet_read");
    group.sample_size(10);
    if quick {
        group.measurement_time(std::time::Duration::from_secs(2));
    }
    group.throughput(Throughput::Elements(IMAGES as u64));
    let options = ParquetOptions::default();
    group.bench_function("cifar_shaped_10k", |b| {
        b.iter(|| parquet::parse("bench", bytes.clone(), &options).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_parquet);
criterion_main!(benches);
