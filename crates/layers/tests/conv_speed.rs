//! A quick, noise-robust timing of each conv algorithm on the five benchmark shapes (best
//! of several runs, GFLOP/s). Ignored by default: `cargo test -p ember-layers --release
//! --test conv_speed -- --ignored --nocapture`. The criterion bench is the real measure.

use std::time::Instant;

use ember_layers::conv::{Conv2d, ConvAlgorithm};
use ember_layers::{Layer, Mode};
use ember_tensor::{Rng, Tensor};

fn best_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore]
fn conv_algorithms_gflops() {
    let threads: usize = std::env::var("EMBER_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    for (n, cin, h, w, cout) in [
        (64, 3, 32, 32, 32),
        (64, 32, 16, 16, 64),
        (64, 64, 8, 8, 128),
        (64, 128, 16, 16, 128),
        (64, 256, 8, 8, 256),
    ] {
        let mut rng = Rng::new(0);
        let x = Tensor::normal([n, cin, h, w], 0.0, 1.0, &mut rng);
        let gy = Tensor::normal([n, cout, h, w], 0.0, 1.0, &mut rng);
        let flops = (2 * n * cout * h * w * cin * 9) as f64;
        let mut line = format!("c{cin:3} {h:2}x{w:2} o{cout:3}:");
        for (name, algo) in [
            ("auto", ConvAlgorithm::Auto),
            ("im2col", ConvAlgorithm::Im2colGemm),
            ("direct", ConvAlgorithm::Direct3x3),
        ] {
            let mut conv = Conv2d::new(cin, cout, 3).padding(1).algorithm(algo);
            let f = pool.install(|| {
                best_secs(5, || {
                    conv.forward(&x, Mode::Eval);
                })
            });
            let fb = pool.install(|| {
                best_secs(3, || {
                    conv.forward(&x, Mode::Train);
                    conv.backward(&x, &gy, true);
                })
            });
            line += &format!(
                "  {name} fwd {:6.1} fwd+bwd {:6.1}",
                flops / f / 1e9,
                3.0 * flops / fb / 1e9
            );
        }
        println!("{line}");
    }
}
