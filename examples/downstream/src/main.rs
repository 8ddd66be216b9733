//! Conv2d forward + backward GFLOP/s on the five CIFAR-sized shapes of `torch_bench.py
//! convbench` (N = 64, 3x3, stride 1, padding 1, 2 threads), built as a downstream project
//! builds Ember: a plain `cargo run --release`, no `.cargo/config.toml` flags, no RUSTFLAGS.
//! Compare with the workspace's `cargo bench -p ember-benches --bench conv` (fwd_bwd_auto)
//! in the same sitting.
//!
//! `cargo run --release -- [SECONDS]` (default 3 seconds per shape).

use std::time::{Duration, Instant};

use ember_layers::conv::Conv2d;
use ember_layers::{Layer, Mode};
use ember_tensor::{Rng, Tensor, simd};

include!("../../../crates/layers/tests/layers_support/conv_shapes.rs");

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .unwrap_or(3.0);
    let level = match simd::init() {
        Ok(level) => level,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a thread pool");
    println!("simd level {level}, 2 threads, conv fwd+bwd (mean over {seconds} s per shape)");
    for (n, cin, h, w, cout) in CONV_SHAPES {
        let mut rng = Rng::new(0);
        let x = Tensor::normal([n, cin, h, w], 0.0, 1.0, &mut rng);
        let gy = Tensor::normal([n, cout, h, w], 0.0, 1.0, &mut rng);
        let mut conv = Conv2d::new(cin, cout, 3).padding(1);
        let mut step = || {
            pool.install(|| {
                conv.forward(&x, Mode::Train);
                conv.backward(&x, &gy, true).len()
            })
        };
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_secs_f64(seconds / 3.0) {
            step();
        }
        let (start, mut iters) = (Instant::now(), 0u32);
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            step();
            iters += 1;
        }
        let secs = start.elapsed().as_secs_f64() / iters as f64;
        let flops = 3.0 * (2 * n * cout * h * w * cin * 9) as f64;
        println!(
            "n{n}_c{cin}_{h}x{w}_o{cout}  {:7.1} GFLOP/s",
            flops / secs / 1e9
        );
    }
}
