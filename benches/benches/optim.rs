//! One optimizer update over 10 M parameters (SGD with momentum, Adam, AdamW), as bytes
//! moved per second, next to what this machine's memory can move: an in-place axpy and a
//! STREAM-like triad over buffers of the same size, on one thread and on all (the updates
//! split large buffers over rayon threads).
//!
//! Bytes per element: SGD-momentum reads p, g, buf and writes p, buf (5 × 4); Adam and
//! AdamW read p, g, m, v and write p, m, v (7 × 4); in-place axpy `y += s·x` 3 × 4, triad
//! `a = b + s·c` 3 × 4. All updates are in place, like axpy; the triad's destination also
//! costs a write-allocate read that is not counted, so it understates the bus traffic.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ember_optim::{Adam, AdamW, Optimizer, Sgd};
use ember_tensor::Rng;
use rayon::prelude::*;

const N: usize = 10_000_000;
const F32: u64 = 4;
const CHUNK: usize = 64 * 1024;

fn bench_optim(c: &mut Criterion) {
    let mut rng = Rng::new(4);
    let mut p: Vec<f32> = (0..N).map(|_| rng.normal()).collect();
    let g: Vec<f32> = (0..N).map(|_| rng.normal() * 0.01).collect();
    let mut group = c.benchmark_group("optim_10M");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(
        if std::env::var_os("EMBER_BENCH_QUICK").is_some() {
            2
        } else {
            5
        },
    ));

    let optimizers: Vec<(&str, u64, Box<dyn Optimizer>)> = vec![
        ("sgd_momentum", 5, Box::new(Sgd::new(1e-3).momentum(0.9))),
        ("adam", 7, Box::new(Adam::new(1e-3))),
        ("adamw", 7, Box::new(AdamW::new(1e-3))),
    ];
    for (name, streams, mut opt) in optimizers {
        group.throughput(Throughput::Bytes(streams * F32 * N as u64));
        group.bench_function(BenchmarkId::new("update", name), |b| {
            b.iter(|| opt.update("w", &mut p, &g).expect("update"))
        });
    }

    // The memory-bandwidth bound, measured the same way.
    // The same updates on a buffer that stays in L2: the compute ceiling of the kernels
    // (well above the 10 M figures means those are bound by memory, not arithmetic).
    const SMALL: usize = 4096;
    let optimizers: Vec<(&str, u64, Box<dyn Optimizer>)> = vec![
        ("sgd_momentum", 5, Box::new(Sgd::new(1e-3).momentum(0.9))),
        ("adam", 7, Box::new(Adam::new(1e-3))),
    ];
    for (name, streams, mut opt) in optimizers {
        group.throughput(Throughput::Bytes(streams * F32 * SMALL as u64));
        group.bench_function(BenchmarkId::new("update_in_cache_4K", name), |b| {
            b.iter(|| {
                opt.update("w", &mut p[..SMALL], &g[..SMALL])
                    .expect("update")
            })
        });
    }

    // In-place axpy `y += s·x` moves data exactly like the updates (read-modify-write of
    // the destination, so no write-allocate traffic): the closest bound for them.
    let src: Vec<f32> = g.clone();
    let mut dst = vec![0.0f32; N];
    group.throughput(Throughput::Bytes(3 * F32 * N as u64));
    group.bench_function(BenchmarkId::new("bandwidth", "axpy_inplace_1thread"), |b| {
        b.iter(|| ember_tensor::simd::axpy(1e-9, &src, &mut dst))
    });
    group.bench_function(
        BenchmarkId::new("bandwidth", "axpy_inplace_parallel"),
        |b| {
            b.iter(|| {
                dst.par_chunks_mut(CHUNK)
                    .zip(src.par_chunks(CHUNK))
                    .for_each(|(y, x)| ember_tensor::simd::axpy(1e-9, x, y))
            })
        },
    );
    group.throughput(Throughput::Bytes(3 * F32 * N as u64));
    group.bench_function(BenchmarkId::new("bandwidth", "triad_1thread"), |b| {
        b.iter(|| triad(&mut dst, &p, &src))
    });
    group.bench_function(BenchmarkId::new("bandwidth", "triad_parallel"), |b| {
        b.iter(|| {
            dst.par_chunks_mut(CHUNK)
                .zip(p.par_chunks(CHUNK))
                .zip(src.par_chunks(CHUNK))
                .for_each(|((a, b), c)| triad(a, b, c))
        })
    });
    group.finish();
}

/// STREAM triad `a = b + s·c`.
fn triad(a: &mut [f32], b: &[f32], c: &[f32]) {
    for ((a, &b), &c) in a.iter_mut().zip(b).zip(c) {
        *a = c.mul_add(0.5, b);
    }
}

criterion_group!(benches, bench_optim);
criterion_main!(benches);
