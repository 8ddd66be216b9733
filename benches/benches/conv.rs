//! Conv2d forward and forward+backward GFLOP/s (criterion shows FLOP/s as elem/s) on the
//! five CIFAR-sized 3x3 shapes of `torch_bench.py convbench` (N = 64, stride 1, pad 1), at
//! 2 threads. FLOPs = 2*N*Cout*Ho*Wo*Cin*k*k forward; forward+backward counts 3x.
//! `EMBER_CONV_ALGOS=1` also times each algorithm forced (im2col + GEMM, direct 3x3,
//! Winograd F(2x2, 3x3) and F(4x4, 3x3)):
//! the measurement behind `ConvAlgorithm::choose`. `EMBER_BENCH_QUICK=1` shortens runs.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ember_layers::conv::{Conv2d, ConvAlgorithm};
use ember_layers::{Layer, Mode};
use ember_tensor::{Rng, Tensor};

include!("../../crates/layers/tests/layers_support/conv_shapes.rs");

fn bench_conv(c: &mut Criterion) {
    let quick = std::env::var_os("EMBER_BENCH_QUICK").is_some();
    let mut algos = vec![("auto", ConvAlgorithm::Auto)];
    if std::env::var_os("EMBER_CONV_ALGOS").is_some() {
        algos.push(("im2col", ConvAlgorithm::Im2colGemm));
        algos.push(("direct", ConvAlgorithm::Direct3x3));
        algos.push(("winograd", ConvAlgorithm::Winograd));
        algos.push(("winograd4", ConvAlgorithm::Winograd4x4));
    }
    let threads = 2;
    let pool = ember_benches::pool(threads);
    let mut group = c.benchmark_group("conv");
    if quick {
        group.sample_size(10);
        group.warm_up_time(std::time::Duration::from_millis(300));
        group.measurement_time(std::time::Duration::from_secs(1));
    }
    for (n, cin, h, w, cout) in CONV_SHAPES {
        let name = format!("n{n}_c{cin}_{h}x{w}_o{cout}");
        let mut rng = Rng::new(0);
        let x = Tensor::normal([n, cin, h, w], 0.0, 1.0, &mut rng);
        let gy = Tensor::normal([n, cout, h, w], 0.0, 1.0, &mut rng);
        let flops = (2 * n * cout * h * w * cin * 9) as u64;
        for &(aname, algo) in &algos {
            let mut conv = Conv2d::new(cin, cout, 3).padding(1).algorithm(algo);
            group.throughput(Throughput::Elements(flops));
            group.bench_with_input(
                BenchmarkId::new(format!("fwd_{aname}"), &name),
                &(),
                |b, _| b.iter(|| pool.install(|| conv.forward(&x, Mode::Eval).len())),
            );
            group.throughput(Throughput::Elements(3 * flops));
            group.bench_with_input(
                BenchmarkId::new(format!("fwd_bwd_{aname}"), &name),
                &(),
                |b, _| {
                    b.iter(|| {
                        pool.install(|| {
                            conv.forward(&x, Mode::Train);
                            conv.backward(&x, &gy, true).len()
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
