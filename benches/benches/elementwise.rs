//! Elementwise and reduction kernels: SIMD against the scalar reference (elements/s).
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ember_tensor::Rng;
use ember_tensor::simd::{self, reference};

fn bench_elementwise(c: &mut Criterion) {
    let n = 1 << 20;
    let mut rng = Rng::new(2);
    let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let mut out = vec![0.0f32; n];
    let mut group = c.benchmark_group("elementwise");
    group.throughput(Throughput::Elements(n as u64));
    if std::env::var_os("EMBER_BENCH_QUICK").is_some() {
        group.sample_size(10);
    }
    group.bench_function(BenchmarkId::new("add", "simd"), |b| {
        b.iter(|| simd::add(&x, &y, &mut out))
    });
    group.bench_function(BenchmarkId::new("add", "scalar"), |b| {
        b.iter(|| reference::add(&x, &y, &mut out))
    });
    group.bench_function(BenchmarkId::new("axpy", "simd"), |b| {
        b.iter(|| simd::axpy(0.5, &x, &mut out))
    });
    group.bench_function(BenchmarkId::new("axpy", "scalar"), |b| {
        b.iter(|| reference::axpy(0.5, &x, &mut out))
    });
    group.bench_function(BenchmarkId::new("relu", "simd"), |b| {
        b.iter(|| simd::relu(&x, &mut out))
    });
    group.bench_function(BenchmarkId::new("relu", "scalar"), |b| {
        b.iter(|| reference::relu(&x, &mut out))
    });
    group.bench_function(BenchmarkId::new("sum", "simd"), |b| {
        b.iter(|| simd::sum(&x))
    });
    group.bench_function(BenchmarkId::new("sum", "scalar"), |b| {
        b.iter(|| reference::sum(&x))
    });
    group.bench_function(BenchmarkId::new("dot", "simd"), |b| {
        b.iter(|| simd::dot(&x, &y))
    });
    group.bench_function(BenchmarkId::new("dot", "scalar"), |b| {
        b.iter(|| reference::dot(&x, &y))
    });
    group.bench_function(BenchmarkId::new("max", "simd"), |b| {
        b.iter(|| simd::max(&x))
    });
    group.bench_function(BenchmarkId::new("max", "scalar"), |b| {
        b.iter(|| reference::max(&x))
    });
    group.bench_function(BenchmarkId::new("log_softmax_rows10", "simd"), |b| {
        b.iter(|| simd::log_softmax_rows(&x[..n / 10 * 10], 10, &mut out[..n / 10 * 10]))
    });
    group.finish();
}

criterion_group!(benches, bench_elementwise);
criterion_main!(benches);
