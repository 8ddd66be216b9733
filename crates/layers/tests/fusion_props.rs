//! `Sequential::fuse_relu`: a fused model computes exactly what the unfused one does
//! (outputs, parameter and input gradients, over several steps so reused buffers are
//! covered) and keeps its layer indices and parameter names.

mod layers_support;

use ember_layers::conv::{Conv2d, ConvAlgorithm};
use ember_layers::pool::MaxPool2d;
use ember_layers::{Flatten, Layer, Linear, Mode, ReLU, Sequential, softmax_cross_entropy};
use ember_tensor::{Rng, Tensor};
use layers_support::*;
use proptest::prelude::*;

/// One stage: conv 3x3 (padding `pad`), then per `relu`: ReLU or not, then per `pool` a
/// 2x2 max pool or not; `double` adds a second ReLU, which has nobody left to fuse into
/// after the first is fused into the pool.
#[derive(Clone, Debug)]
struct Stage {
    out: usize,
    pad: usize,
    bias: bool,
    relu: bool,
    double: bool,
    pool: bool,
    direct: bool,
}

fn stage() -> impl Strategy<Value = Stage> {
    (
        1usize..6,
        0usize..=2,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(out, pad, bias, relu, double, pool, direct)| Stage {
            out,
            pad,
            bias,
            relu,
            double,
            pool,
            direct,
        })
}

/// The network of `stages`, then flatten, linear, ReLU, linear, with a leading ReLU when
/// `lead_relu` (nothing before it to fuse into, a conv after it that cannot absorb it).
/// Also returns how many ReLUs `fuse_relu` should fold: a stage's first ReLU always (into
/// its pool or else its conv), the second of a double only when a pool follows it. `None`
/// when the stages shrink the image to nothing.
fn net(
    c: usize,
    h: usize,
    w: usize,
    stages: &[Stage],
    lead_relu: bool,
) -> Option<(Sequential, usize)> {
    let mut fusible = 0;
    let (mut c, mut h, mut w) = (c, h, w);
    let mut seq = Sequential::new();
    if lead_relu {
        seq = seq.add(ReLU);
    }
    for s in stages {
        let algo = if s.direct {
            ConvAlgorithm::Direct3x3
        } else {
            ConvAlgorithm::Im2colGemm
        };
        seq = seq.add(
            Conv2d::new(c, s.out, 3)
                .padding(s.pad)
                .bias(s.bias)
                .algorithm(algo),
        );
        (c, h, w) = (
            s.out,
            (h + 2 * s.pad).checked_sub(2)?,
            (w + 2 * s.pad).checked_sub(2)?,
        );
        if h == 0 || w == 0 {
            return None;
        }
        let pool = s.pool && h >= 2 && w >= 2;
        if s.relu {
            seq = seq.add(ReLU);
            fusible += 1;
            if s.double {
                seq = seq.add(ReLU);
                fusible += usize::from(pool);
            }
        }
        if pool {
            seq = seq.add(MaxPool2d::new(2));
            (h, w) = (h / 2, w / 2);
        }
    }
    let seq = seq
        .add(Flatten)
        .add(Linear::new(c * h * w, 5))
        .add(ReLU)
        .add(Linear::new(5, 3));
    Some((seq, fusible))
}

/// Output, input gradient and parameter gradients of three training steps (SGD in
/// between, so later steps run on changed weights and reused buffers).
fn run(net: &mut Sequential, x: &Tensor, labels: &[usize]) -> Vec<Vec<f32>> {
    let mut seen = Vec::new();
    let mut grad = Tensor::zeros([0]);
    for _ in 0..3 {
        let logits = net.forward(x, Mode::Train).clone();
        softmax_cross_entropy(&logits, labels, 0.0, &mut grad);
        net.zero_grad();
        let dx = net.backward(x, &grad, true).to_vec();
        seen.push(logits.to_vec());
        seen.push(dx);
        net.visit_params("", &mut |_, p| {
            seen.push(p.grad.to_vec());
            for (v, g) in p.value.data_mut().iter_mut().zip(p.grad.data()) {
                *v -= 0.1 * g;
            }
        });
    }
    seen.push(net.forward(x, Mode::Eval).to_vec());
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fused_model_equals_unfused(n in 1usize..4, c in 1usize..4, h in 3usize..12, w in 3usize..12,
                                  stages in prop::collection::vec(stage(), 1..4), lead_relu in any::<bool>(),
                                  seed in any::<u64>()) {
        let Some((mut plain, want)) = net(c, h, w, &stages, lead_relu) else { return Ok(()) };
        let (mut fused, _) = net(c, h, w, &stages, lead_relu).expect("same shapes");
        plain.reset_parameters(&mut Rng::new(seed));
        fused.reset_parameters(&mut Rng::new(seed));
        // The leading ReLU and the one between the linears have no neighbour to take them.
        prop_assert_eq!(fused.fuse_relu(), want);
        prop_assert_eq!(fused.fuse_relu(), 0, "fusing twice changes nothing");
        prop_assert_eq!(plain.param_names(), fused.param_names());
        prop_assert_eq!(plain.len(), fused.len());
        let x = tensor(&[n, c, h, w], seed, 0.0);
        let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let (a, b) = (run(&mut plain, &x, &labels), run(&mut fused, &x, &labels));
        prop_assert_eq!(a, b);
    }
}

#[test]
fn fused_slots_are_skipped_and_marked_in_the_summary() {
    let mut net = Sequential::new()
        .add(Conv2d::new(1, 4, 3).padding(1))
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Conv2d::new(4, 4, 3).padding(1))
        .add(ReLU)
        .add(Flatten)
        .add(Linear::new(4 * 4 * 4, 2));
    assert_eq!(net.fuse_relu(), 2);
    assert!(net.is_fused(1) && net.is_fused(4));
    assert!(!net.is_fused(0) && !net.is_fused(2) && !net.is_fused(7));
    let summary = net.summary([2, 1, 8, 8].into()).unwrap();
    assert_eq!(summary.rows[1].layer, "ReLU (fused)");
    assert_eq!(summary.rows[2].layer, "ReLU+MaxPool2d(k2, s2)");
    assert_eq!(summary.rows[3].layer, "Conv2d(4->4, k3, s1, p1, relu)");
    assert_eq!(
        net.param_names(),
        [
            "0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias"
        ]
    );
    let y = net
        .forward(&Tensor::zeros([2, 1, 8, 8]), Mode::Train)
        .to_vec();
    assert_eq!(y.len(), 4);
    // The fused ReLU slots never ran, so their buffers are still empty.
    assert_eq!(net.layer(1).unwrap().output().len(), 0);
}
