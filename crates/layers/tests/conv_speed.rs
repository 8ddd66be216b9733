//! A quick, noise-robust timing of each conv algorithm on the five benchmark shapes (best
//! of several runs, GFLOP/s). Ignored by default: `cargo test -p ember-layers --release
//! --test conv_speed -- --ignored --nocapture`; `EMBER_ALGOS=direct,winograd` picks
//! algorithms, `EMBER_THREADS=1 EMBER_CPU_TIME=1` times CPU time on one thread,
//! `EMBER_SHAPES="n,cin,h,w,cout;..."` other 3x3 padding-1 shapes. The criterion bench is
//! the real measure. `xgrad` is what the input gradient adds to a backward pass that computes
//! the weight gradient anyway: with Winograd the two share the output gradient's transform,
//! so it understates what the input gradient costs on its own (by another algorithm than
//! the weight gradient's, say).

use std::time::Instant;

use ember_layers::conv::{Conv2d, ConvAlgorithm};
use ember_layers::{Layer, Mode};
use ember_tensor::{Rng, Tensor};

include!("layers_support/conv_shapes.rs");

const REPS: usize = 3;

/// Seconds this thread has spent on a CPU (Linux schedstat), so that time spent waiting for
/// a busy shared machine does not count; wall time where unavailable. Meaningful with one
/// thread (EMBER_THREADS=1), where all the work runs on the timing thread.
fn cpu_now() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ns| ns * 1e-9)
        .unwrap_or_else(|| {
            std::time::UNIX_EPOCH
                .elapsed()
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        })
}

fn best_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let cpu = std::env::var_os("EMBER_CPU_TIME").is_some();
    (0..reps)
        .map(|_| {
            if cpu {
                // Repeat until the tick-granular counter has moved enough to be exact to ~2%.
                let t = cpu_now();
                let mut k = 0;
                while cpu_now() - t < 0.2 {
                    f();
                    k += 1;
                }
                (cpu_now() - t) / k as f64
            } else {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            }
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
    let mut shapes = CONV_SHAPES.to_vec();
    if let Ok(list) = std::env::var("EMBER_SHAPES") {
        shapes = list
            .split(';')
            .map(|s| {
                let v: Vec<usize> = s
                    .split(',')
                    .map(|d| d.trim().parse().expect("a size"))
                    .collect();
                (v[0], v[1], v[2], v[3], v[4])
            })
            .collect();
    }
    for (n, cin, h, w, cout) in shapes {
        let mut rng = Rng::new(0);
        let x = Tensor::normal([n, cin, h, w], 0.0, 1.0, &mut rng);
        let gy = Tensor::normal([n, cout, h, w], 0.0, 1.0, &mut rng);
        let flops = (2 * n * cout * h * w * cin * 9) as f64;
        let mut line = format!("c{cin:3} {h:2}x{w:2} o{cout:3}:");
        let all = [
            ("auto", ConvAlgorithm::Auto),
            ("im2col", ConvAlgorithm::Im2colGemm),
            ("direct", ConvAlgorithm::Direct3x3),
            ("winograd", ConvAlgorithm::Winograd),
            ("winograd4", ConvAlgorithm::Winograd4x4),
        ];
        let only = std::env::var("EMBER_ALGOS").unwrap_or_default();
        for (name, algo) in all
            .into_iter()
            .filter(|(n, _)| only.is_empty() || only.split(',').any(|o| o == *n))
        {
            let mut conv = Conv2d::new(cin, cout, 3).padding(1).algorithm(algo);
            let f = pool.install(|| {
                best_secs(REPS, || {
                    conv.forward(&x, Mode::Eval);
                })
            });
            let fb = pool.install(|| {
                best_secs(REPS, || {
                    conv.forward(&x, Mode::Train);
                    conv.backward(&x, &gy, true);
                })
            });
            conv.forward(&x, Mode::Train);
            let bw = pool.install(|| {
                best_secs(REPS, || {
                    conv.backward(&x, &gy, false);
                })
            });
            let bx = pool.install(|| {
                best_secs(REPS, || {
                    conv.backward(&x, &gy, true);
                })
            }) - bw;
            line += &format!(
                "  {name} fwd {:5.1} fwd+bwd {:5.1} (wgrad {:5.1} xgrad {:5.1})",
                flops / f / 1e9,
                3.0 * flops / fb / 1e9,
                flops / bw / 1e9,
                flops / bx / 1e9
            );
        }
        println!("{line}");
    }
}
