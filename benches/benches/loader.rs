//! Loader throughput (images/s, shown by criterion as elem/s): one whole epoch with
//! crop + flip augmentation and normalisation, on CIFAR-shaped random data (10,000 images
//! 3x32x32) and on the embedded Fashion-MNIST sample (6,000 images 1x28x28), batch 128,
//! on the global rayon pool and on a private 1-thread pool.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ember_data::{Augment, Dataset, Loader, LoaderConfig, Normalize};
use ember_tensor::Rng;

fn cifar_like(n: usize) -> Dataset {
    let mut rng = Rng::new(1);
    let pixels = (0..n * 3072).map(|_| rng.next_u64() as u8).collect();
    let labels = (0..n).map(|i| i % 10).collect();
    Dataset::new(
        [3, 32, 32],
        pixels,
        labels,
        (0..10).map(|c| c.to_string()).collect(),
    )
    .unwrap()
}

fn bench_loader(c: &mut Criterion) {
    let quick = std::env::var_os("EMBER_BENCH_QUICK").is_some();
    let mut group = c.benchmark_group("loader_epoch");
    group.sample_size(10);
    if quick {
        group.measurement_time(std::time::Duration::from_secs(2));
    }
    let sample = ember_data::sample().unwrap().train;
    for (name, ds) in [
        ("cifar_random", cifar_like(10_000)),
        ("fashion_sample", sample),
    ] {
        let ds = Arc::new(ds);
        group.throughput(Throughput::Elements(ds.len() as u64));
        for threads in [None, Some(1)] {
            let config = LoaderConfig {
                batch_size: 128,
                normalize: Normalize::from_dataset(&ds),
                augment: Augment::crop_flip(),
                threads,
                ..Default::default()
            };
            let loader = Loader::new(Arc::clone(&ds), config).unwrap();
            let label = match threads {
                None => "global_pool".to_string(),
                Some(t) => format!("{t}_thread"),
            };
            group.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter(|| {
                    loader
                        .epoch(0)
                        .map(|batch| batch.labels.len())
                        .sum::<usize>()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_loader);
criterion_main!(benches);
