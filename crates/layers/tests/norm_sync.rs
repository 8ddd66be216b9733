//! Synchronised batch norm: replicas that each see part of a batch, summing through a
//! group, compute what one layer computes on the whole batch.

use std::sync::{Arc, Barrier, Mutex};

use ember_layers::replica::{ReplicaSum, Solo};
use ember_layers::{BatchNorm2d, Layer, Mode, Param};
use ember_tensor::{Rng, Tensor};
use proptest::prelude::*;

/// Replicas as threads of one process: each adds its values, waits for the others, reads
/// the sums. Two-term f64 sums do not depend on the arrival order.
struct ThreadGroup {
    n: usize,
    acc: Mutex<Vec<f64>>,
    barrier: Barrier,
}

impl ThreadGroup {
    fn new(n: usize) -> Self {
        ThreadGroup {
            n,
            acc: Mutex::new(Vec::new()),
            barrier: Barrier::new(n),
        }
    }
}

impl ReplicaSum for ThreadGroup {
    fn sum_f64(&self, values: &mut [f64]) {
        {
            let mut acc = self.acc.lock().unwrap();
            acc.resize(values.len(), 0.0);
            acc.iter_mut().zip(values.iter()).for_each(|(a, v)| *a += v);
        }
        self.barrier.wait();
        values.copy_from_slice(&self.acc.lock().unwrap());
        if self.barrier.wait().is_leader() {
            self.acc.lock().unwrap().clear();
        }
        self.barrier.wait();
    }

    fn replicas(&self) -> usize {
        self.n
    }
}

/// Rows `[from, to)` of an NCHW tensor.
fn rows(t: &Tensor, from: usize, to: usize) -> Tensor {
    let item = t.shape().item_numel();
    let mut dims = t.shape().dims().to_vec();
    dims[0] = to - from;
    Tensor::from_vec(
        ember_tensor::Shape::new(&dims).unwrap(),
        t.data()[from * item..to * item].to_vec(),
    )
    .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// The largest per-channel 1/sqrt(var + eps) of an NCHW batch (biased variance, in f64).
fn max_invstd(x: &Tensor, eps: f64) -> f32 {
    let (n, c, h, w) = x.shape().nchw().unwrap();
    let hw = h * w;
    (0..c)
        .map(|ch| {
            let vals: Vec<f64> = (0..n)
                .flat_map(|i| {
                    x.data()[(i * c + ch) * hw..][..hw]
                        .iter()
                        .map(|&v| v as f64)
                })
                .collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            (1.0 / (var + eps).sqrt()) as f32
        })
        .fold(0.0, f32::max)
}

fn grads(bn: &mut BatchNorm2d) -> Vec<f32> {
    let mut out = Vec::new();
    bn.visit_params("", &mut |_, p: &mut Param| {
        out.extend_from_slice(p.grad.data())
    });
    out
}

fn zero_grads(bn: &mut BatchNorm2d) {
    bn.visit_params("", &mut |_, p: &mut Param| p.zero_grad());
}

/// f32 statistics summed in a different order: relative differences of a few 1e-6.
const TOL: f32 = 2e-5;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn two_replicas_equal_one_layer_on_the_whole_batch(
        half in 1usize..5, c in 1usize..5, h in 1usize..6, w in 1usize..6,
        offset in -4.0f32..4.0, seed in 0u64..1000, steps in 1usize..3,
    ) {
        let mut rng = Rng::new(seed);
        let n = 2 * half;
        let mut whole = BatchNorm2d::new(c);
        let group: Arc<dyn ReplicaSum> = Arc::new(ThreadGroup::new(2));
        let mut replicas = [BatchNorm2d::new(c), BatchNorm2d::new(c)];
        for r in &mut replicas {
            r.sync_batch_stats(Some(&group));
        }
        for _ in 0..steps {
            let mut x = Tensor::normal([n, c, h, w], 0.0, 2.0, &mut rng);
            x.data_mut().iter_mut().for_each(|v| *v += offset);
            let g = Tensor::normal([n, c, h, w], 0.0, 1.0, &mut rng);
            zero_grads(&mut whole);
            let y = whole.forward(&x, Mode::Train).clone();
            let dx = whole.backward(&x, &g, true).clone();
            let dparams = grads(&mut whole);

            // Each replica's loss is the mean over its half: its gradient is twice the
            // whole batch's for the same images.
            let results: Vec<(Tensor, Tensor, Vec<f32>)> = std::thread::scope(|s| {
                let handles: Vec<_> = replicas.iter_mut().enumerate().map(|(r, bn)| {
                    let xr = rows(&x, r * half, (r + 1) * half);
                    let mut gr = rows(&g, r * half, (r + 1) * half);
                    gr.data_mut().iter_mut().for_each(|v| *v *= 2.0);
                    s.spawn(move || {
                        zero_grads(bn);
                        let y = bn.forward(&xr, Mode::Train).clone();
                        let dx = bn.backward(&xr, &gr, true).clone();
                        (y, dx, grads(bn))
                    })
                }).collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            // Rounding of the inputs (a few ulps of |x|) reaches xhat amplified by invstd, up
            // to 1/sqrt(eps) for a channel of near-equal values (two values per channel
            // here can be): the tolerances grow with it.
            let inv = max_invstd(&x, 1e-5);
            let noise = TOL + 1e-6 * max_abs(x.data()) * inv;
            for (r, (yr, dxr, _)) in results.iter().enumerate() {
                let want_y = rows(&y, r * half, (r + 1) * half);
                let err = max_abs_diff(yr.data(), want_y.data());
                prop_assert!(err < noise, "y error {err}, bound {noise}");
                let mut want_dx = rows(&dx, r * half, (r + 1) * half);
                want_dx.data_mut().iter_mut().for_each(|v| *v *= 2.0);
                // dx is what is left of terms of size ~ invstd * |g| after they cancel.
                let bound = noise * (2.0 * inv * max_abs(g.data())).max(1.0);
                let err = max_abs_diff(dxr.data(), want_dx.data());
                prop_assert!(err < bound, "dx error {err}, bound {bound}");
            }
            // The trainer averages parameter gradients over the replicas.
            let avg: Vec<f32> = results[0].2.iter().zip(&results[1].2).map(|(a, b)| (a + b) / 2.0).collect();
            // dgamma sums g * xhat over the n*h*w values of a channel.
            let bound = noise * ((n * h * w) as f32 * max_abs(g.data())).max(1.0);
            let err = max_abs_diff(&avg, &dparams);
            prop_assert!(err < bound, "parameter gradient error {err}, bound {bound}");
            for r in &replicas {
                prop_assert!(max_diff(r.running_mean().data(), whole.running_mean().data()) < TOL);
                prop_assert!(max_diff(r.running_var().data(), whole.running_var().data()) < TOL);
            }
        }
    }
}

#[test]
fn a_group_of_one_matches_the_local_layer() {
    let mut rng = Rng::new(5);
    let x = Tensor::normal([3, 2, 4, 4], 1.0, 2.0, &mut rng);
    let g = Tensor::normal([3, 2, 4, 4], 0.0, 1.0, &mut rng);
    let mut local = BatchNorm2d::new(2);
    let mut solo = BatchNorm2d::new(2);
    let group: Arc<dyn ReplicaSum> = Arc::new(Solo);
    solo.sync_batch_stats(Some(&group));
    let y1 = local.forward(&x, Mode::Train).clone();
    let y2 = solo.forward(&x, Mode::Train).clone();
    assert!(max_diff(y2.data(), y1.data()) < 1e-6);
    let d1 = local.backward(&x, &g, true).clone();
    let d2 = solo.backward(&x, &g, true).clone();
    assert!(max_diff(d2.data(), d1.data()) < 1e-5);
    // Unsynchronised again: the local path.
    solo.sync_batch_stats(None);
    let y3 = solo.forward(&x, Mode::Eval).clone();
    let y4 = local.forward(&x, Mode::Eval).clone();
    assert!(max_diff(y3.data(), y4.data()) < 1e-6);
}
