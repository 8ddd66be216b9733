//! Where a training step's time goes: forward and backward of each layer of the zoo CNNs at
//! the benchmark batch (128), best of several steps, wall time. Ignored by default:
//! `cargo test -p ember --release --test layer_times -- --ignored --nocapture`
//! (`EMBER_THREADS`, default 2; `EMBER_MODELS=cifar-fast,resnet9` other zoo models,
//! `EMBER_BATCH` another batch).

use std::time::Instant;

use ember::zoo;
use ember_layers::{Layer, Mode, Sequential, softmax_cross_entropy};
use ember_tensor::{Rng, Tensor};

const STEPS: usize = 12;

/// Per active layer: (index, description, best forward seconds, best backward seconds).
fn layer_times(
    net: &mut Sequential,
    x: &Tensor,
    labels: &[usize],
) -> Vec<(usize, String, f64, f64)> {
    let active: Vec<usize> = (0..net.len()).filter(|&i| !net.is_fused(i)).collect();
    let mut best = vec![(f64::INFINITY, f64::INFINITY); active.len()];
    let mut grad = Tensor::zeros([0]);
    for _ in 0..STEPS {
        let mut input = x.clone();
        let mut inputs = Vec::new();
        for (k, &i) in active.iter().enumerate() {
            let layer = net.layer_mut(i).expect("index in range");
            let t = Instant::now();
            let out = layer.forward(&input, Mode::Train);
            best[k].0 = best[k].0.min(t.elapsed().as_secs_f64());
            let out = out.clone();
            inputs.push(std::mem::replace(&mut input, out));
        }
        softmax_cross_entropy(&input, labels, 0.0, &mut grad);
        net.zero_grad();
        for (k, &i) in active.iter().enumerate().rev() {
            let layer = net.layer_mut(i).expect("index in range");
            let t = Instant::now();
            let g = layer.backward(&inputs[k], &grad, k > 0);
            best[k].1 = best[k].1.min(t.elapsed().as_secs_f64());
            grad = g.clone();
        }
    }
    active
        .iter()
        .zip(best)
        .map(|(&i, (f, b))| (i, net.layer(i).expect("in range").describe(), f, b))
        .collect()
}

/// The number in environment variable `name`, else `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore]
fn zoo_layer_times() {
    let threads = env_or("EMBER_THREADS", 2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let models = std::env::var("EMBER_MODELS").unwrap_or_else(|_| "fmnist-cnn,cifar-cnn".into());
    let batch = env_or("EMBER_BATCH", 128);
    pool.install(|| {
        for spec in models
            .split(',')
            .map(|m| zoo::get(m.trim()).expect("a zoo model"))
        {
            let mut net = spec.build().expect("zoo model builds");
            net.reset_parameters(&mut Rng::new(0));
            let [c, h, w] = spec.input;
            let x = Tensor::normal([batch, c, h, w], 0.0, 1.0, &mut Rng::new(1));
            let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
            let times = layer_times(&mut net, &x, &labels);
            let total: f64 = times.iter().map(|t| t.2 + t.3).sum();
            println!(
                "{:?} ({threads} threads), ms per step of {batch}:",
                spec.name
            );
            for (i, d, f, b) in &times {
                println!(
                    "  {i:>2} {d:<40} fwd {:>7.3}  bwd {:>7.3}",
                    f * 1e3,
                    b * 1e3
                );
            }
            println!(
                "  total {:.3} ms = {:.0} images/s",
                total * 1e3,
                batch as f64 / total
            );
        }
    });
}
