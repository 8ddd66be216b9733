//! Sequential and Residual: gradients checked end to end by finite differences through the
//! whole container, parameter names, validation, summary, buffer reuse; Dropout.

mod layers_support;

use ember_layers::reference::dense::cross_entropy;
use ember_layers::{
    BatchNorm2d, Flatten, Layer, Linear, Mode, ReLU, Residual, Sequential, softmax_cross_entropy,
};
use ember_tensor::{Rng, Tensor};
use layers_support::*;
use proptest::prelude::*;

fn tiny_net(
    c: usize,
    h: usize,
    w: usize,
    hidden: usize,
    classes: usize,
    projection: bool,
) -> Sequential {
    let block = Sequential::new()
        .add(Linear::new(hidden, hidden))
        .add(ReLU)
        .add(Linear::new(hidden, hidden));
    let mut res = Residual::new(block);
    if projection {
        res = res.shortcut(Sequential::new().add(Linear::new(hidden, hidden).bias(false)));
    }
    Sequential::new()
        .add(BatchNorm2d::new(c))
        .add(Flatten)
        .add(Linear::new(c * h * w, hidden))
        .add(ReLU)
        .add(res)
        .add(Linear::new(hidden, classes))
}

/// The loss in f64 from the f32 logits (label smoothing 0.1).
fn loss(net: &mut Sequential, x: &Tensor, labels: &[usize]) -> f64 {
    let logits = net.forward(x, Mode::Train);
    let (n, k) = (logits.shape().dim(0), logits.shape().dim(1));
    cross_entropy(&f64s(logits.data()), labels, n, k, 0.1).0
}

/// The central difference at step `h`, or `None` when a ReLU kink lies within reach (the
/// quotient then says nothing about the gradient). Kinks are detected two ways: the
/// forward and backward one-sided quotients disagree (a kink between them), or the central
/// quotients at `h` and `h / 2` disagree (a kink between `h / 2` and `h`). Away from kinks
/// the one-sided quotients differ by `h * f''`, about 1e-3 here. A wrong analytic gradient
/// is still caught: the quotients agree on the true derivative, not on the wrong value.
fn central(f: &mut dyn FnMut(f32) -> f64, h: f32) -> Option<f64> {
    let h64 = h as f64;
    let (f0, up, down) = (f(0.0), f(h), f(-h));
    let (fwd, bwd, d1) = (
        (up - f0) / h64,
        (f0 - down) / h64,
        (up - down) / (2.0 * h64),
    );
    let d2 = (f(h / 2.0) - f(-h / 2.0)) / h64;
    let smooth =
        (fwd - bwd).abs() <= 2e-3 + 5e-2 * d1.abs() && (d1 - d2).abs() <= 5e-4 + 1e-2 * d1.abs();
    smooth.then_some(d1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn container_gradients_match_finite_differences(n in 2usize..5, c in 1usize..3, h in 1usize..4, w in 1usize..4, hidden in 2usize..6, classes in 2usize..5, projection in any::<bool>(), seed in 0u64..1000) {
        let mut net = tiny_net(c, h, w, hidden, classes, projection);
        net.reset_parameters(&mut Rng::new(seed));
        let x = tensor(&[n, c, h, w], seed + 1, 0.0);
        let labels: Vec<usize> = (0..n).map(|i| (i + seed as usize) % classes).collect();

        // Analytic gradients through the container.
        net.zero_grad();
        let logits = net.forward(&x, Mode::Train).clone();
        let mut grad = Tensor::zeros([0]);
        softmax_cross_entropy(&logits, &labels, 0.1, &mut grad);
        let dx = f64s(net.backward(&x, &grad, true).data());
        let mut analytic = Vec::new();
        net.visit_params("", &mut |name, p| analytic.push((name.to_string(), f64s(p.grad.data()))));

        let step = 1e-3f32;
        let (mut checked, mut skipped) = (0usize, 0usize);
        let mut check = |got: f64, fd: Option<f64>, what: &str| match fd {
            None => skipped += 1,
            Some(fd) => {
                checked += 1;
                assert!((got - fd).abs() <= 2e-3 + 2e-2 * fd.abs(), "{what}: analytic {got}, finite difference {fd}");
            }
        };
        // Parameters, one coordinate at a time.
        for (pi, (name, grads)) in analytic.iter().enumerate() {
            for (j, &g) in grads.iter().enumerate() {
                let mut f = |delta: f32| {
                    let shift = |d: f32, net: &mut Sequential| {
                        let mut k = 0;
                        net.visit_params("", &mut |_, p| {
                            if k == pi { p.value.data_mut()[j] += d; }
                            k += 1;
                        });
                    };
                    shift(delta, &mut net);
                    let l = loss(&mut net, &x, &labels);
                    shift(-delta, &mut net);
                    l
                };
                let fd = central(&mut f, step);
                check(g, fd, &format!("{name}[{j}]"));
            }
        }
        // The input.
        for (j, &g) in dx.iter().enumerate() {
            let mut f = |delta: f32| {
                let mut xp = x.clone();
                xp.data_mut()[j] += delta;
                loss(&mut net, &xp, &labels)
            };
            let fd = central(&mut f, step);
            check(g, fd, &format!("input[{j}]"));
        }
        prop_assert!(checked >= skipped, "too many kinks: {checked} checked, {skipped} skipped");
    }
}
