//! GEMM throughput (FLOP/s, shown by criterion as elem/s) at 1 and 2 threads.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ember_tensor::Rng;
use ember_tensor::gemm::{MatMut, MatRef, gemm};

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    N,
    T,
}

/// The `rows x cols` operand stored as `op` says, rows packed.
fn view(data: &[f32], op: Op, rows: usize, cols: usize) -> MatRef<'_> {
    match op {
        Op::N => MatRef::new(data, rows, cols, cols),
        Op::T => MatRef::new(data, cols, rows, rows).t(),
    }
}

/// (name, m, n, k, op_a, op_b): square sizes, then the im2col products of the five
/// CIFAR-sized 3x3 conv layers in `torch_bench.py convbench` for a batch of 64
/// (forward: weights [cout, cin*9] x columns [cin*9, 64*h*w]).
fn shapes() -> Vec<(String, usize, usize, usize, Op, Op)> {
    let mut v: Vec<_> = [256, 512, 1024, 2048]
        .iter()
        .map(|&s| (format!("square{s}"), s, s, s, Op::N, Op::N))
        .collect();
    for (cin, hw, cout) in [
        (3, 32, 32),
        (32, 16, 64),
        (64, 8, 128),
        (128, 16, 128),
        (256, 8, 256),
    ] {
        let (m, n, k) = (cout, 64 * hw * hw, cin * 9);
        v.push((
            format!("conv_fwd_c{cin}_{hw}x{hw}_o{cout}"),
            m,
            n,
            k,
            Op::N,
            Op::N,
        ));
        // weight gradient: dY [cout, npix] x cols^T [npix, cin*9]
        v.push((
            format!("conv_wgrad_c{cin}_{hw}x{hw}_o{cout}"),
            m,
            k,
            n,
            Op::N,
            Op::T,
        ));
    }
    v
}

fn bench_gemm(c: &mut Criterion) {
    let quick = std::env::var_os("EMBER_BENCH_QUICK").is_some();
    let mut group = c.benchmark_group("gemm");
    if quick {
        group.sample_size(10);
    }
    for (name, m, n, k, op_a, op_b) in shapes() {
        if quick && (m * n * k > 1 << 30) {
            continue;
        }
        let mut rng = Rng::new(1);
        let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for threads in [1, 2] {
            let pool = ember_benches::pool(threads);
            group.bench_with_input(
                BenchmarkId::new(&name, format!("{threads}t")),
                &threads,
                |bch, _| {
                    bch.iter(|| {
                        pool.install(|| {
                            let (va, vb) = (view(&a, op_a, m, k), view(&b, op_b, k, n));
                            gemm(1.0, va, vb, 0.0, MatMut::new(&mut out, m, n, n))
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
