//! Property tests for pooling: reference gradients against central finite differences and
//! the f32 layers against the f64 reference (`max |got - want| / (1 + |want|) <= 1e-4`).
//! Max-pool inputs are distinct (no ties), so the maximum of every window is unique.

use ember_layers::pool::{
    AvgPool2d, GlobalAvgPool2d, MaxPool2d, PoolGeometry, max_pool2d_backward_2x2_plane,
    max_pool2d_backward_plane, max_pool2d_plane,
};
use ember_layers::reference::pool::*;
use ember_layers::{Layer, Mode, Pair};
use ember_tensor::{Rng, Tensor};
use proptest::prelude::*;

const TOL: f64 = 1e-4;

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

/// Distinct values at least 1/64 apart, exactly representable in f32, in random order.
fn distinct(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n).map(|i| (i as f64 - n as f64 / 2.0) / 64.0).collect();
    rng.shuffle(&mut v);
    v
}

fn normal(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.normal() as f64).collect()
}

/// A max pool's input of `g` (distinct values) and an output gradient, from `seed`.
fn max_pool_inputs(g: &PoolGeometry, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let x = distinct(g.batch * g.channels * g.height * g.width, &mut rng);
    let gy = normal(g.batch * g.channels * g.out_h() * g.out_w(), &mut rng);
    (x, gy)
}

prop_compose! {
    fn geometry()(kh in 1usize..=4, kw in 1usize..=4, sh in 1usize..=3, sw in 1usize..=3,
                  pfh in 0usize..=2, pfw in 0usize..=2, batch in 1usize..=2, channels in 1usize..=3,
                  h in 1usize..=11, w in 1usize..=19) -> PoolGeometry {
        PoolGeometry { batch, channels, height: h, width: w, kernel: Pair(kh, kw), stride: Pair(sh, sw),
                       padding: Pair(pfh.min(kh / 2), pfw.min(kw / 2)) }
    }
}

fn tensor(g: &PoolGeometry, v: &[f64]) -> Tensor {
    Tensor::from_vec(
        [g.batch, g.channels, g.height, g.width],
        v.iter().map(|&x| x as f32).collect(),
    )
    .unwrap()
}

fn grad_tensor(g: &PoolGeometry, v: &[f64]) -> Tensor {
    Tensor::from_vec(
        [g.batch, g.channels, g.out_h(), g.out_w()],
        v.iter().map(|&x| x as f32).collect(),
    )
    .unwrap()
}

/// `pool`'s output and input gradient (for `gy`) on `x` against the reference's.
fn layer_matches(
    pool: &mut dyn Layer,
    g: &PoolGeometry,
    x: &[f64],
    gy: &[f64],
    want_y: &[f64],
    want_gx: &[f64],
) -> Result<(), TestCaseError> {
    let xt = tensor(g, x);
    let y = pool.forward(&xt, Mode::Train).to_vec();
    prop_assert!(rel_err(&y, want_y) <= TOL, "output");
    let gx = pool.backward(&xt, &grad_tensor(g, gy), true).to_vec();
    prop_assert!(rel_err(&gx, want_gx) <= TOL, "grad_input");
    Ok(())
}

fn fd_check(x: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64) -> Result<(), TestCaseError> {
    let h = 1e-4; // well below the 1/64 gaps between max-pool inputs
    for i in 0..x.len() {
        let mut hi = x.to_vec();
        hi[i] += h;
        let mut lo = x.to_vec();
        lo[i] -= h;
        let fd = (f(&hi) - f(&lo)) / (2.0 * h);
        prop_assert!(
            (fd - grad[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
            "index {i}: fd {fd} analytic {}",
            grad[i]
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn max_pool_matches_reference(g in geometry(), seed in any::<u64>()) {
        prop_assume!(g.validate("test").is_ok());
        let (x, gy) = max_pool_inputs(&g, seed);
        let want_y = max_pool2d_forward(&g, &x);
        let want_gx = max_pool2d_backward(&g, &x, &gy);
        fd_check(&x, &want_gx, |x| max_pool2d_forward(&g, x).iter().zip(&gy).map(|(a, b)| a * b).sum())?;
        let mut pool = MaxPool2d::new(g.kernel).stride(g.stride).padding(g.padding);
        layer_matches(&mut pool, &g, &x, &gy, &want_y, &want_gx)?;
    }

    /// The 2x2 stride-2 backward fast path against the general kernel, exactly, with many
    /// ties (values from a set of five, so the first-maximum rule decides), odd sizes and
    /// the fused ReLU; the fast path must overwrite whatever `gx` held.
    #[test]
    fn max_pool_2x2_backward_matches_general(h in 2usize..=13, w in 2usize..=21, relu in any::<bool>(),
                                             seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let g = PoolGeometry { batch: 1, channels: 1, height: h, width: w, kernel: Pair(2, 2),
                               stride: Pair(2, 2), padding: Pair(0, 0) };
        let x: Vec<f32> = (0..h * w).map(|_| rng.below(5) as f32 - 2.0).collect();
        let gy: Vec<f32> = (0..g.out_h() * g.out_w()).map(|_| rng.normal()).collect();
        let mut y = vec![0.0; gy.len()];
        max_pool2d_plane(&x, &g, &mut y);
        if relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        let mut want = vec![0.0; h * w];
        max_pool2d_backward_plane(&x, &y, &gy, &g, relu, &mut want);
        let mut got = vec![f32::NAN; h * w];
        max_pool2d_backward_2x2_plane(&x, &y, &gy, h, w, relu, &mut got);
        prop_assert_eq!(got, want);
    }

    /// The layer (2x2 fast path) with ties and a fused ReLU against the f64 reference of
    /// `maxpool(relu(x))`: gradient only through windows whose maximum is positive.
    #[test]
    fn max_pool_2x2_layer_with_ties_matches_reference(n in 1usize..=2, c in 1usize..=3, h in 2usize..=11,
                                                      w in 2usize..=17, relu in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let g = PoolGeometry { batch: n, channels: c, height: h, width: w, kernel: Pair(2, 2),
                               stride: Pair(2, 2), padding: Pair(0, 0) };
        let x: Vec<f64> = (0..n * c * h * w).map(|_| rng.below(5) as f64 - 2.0).collect();
        let gy = normal(n * c * g.out_h() * g.out_w(), &mut rng);
        let mut want_y = max_pool2d_forward(&g, &x);
        let mut gy_eff = gy.clone();
        if relu {
            for (yv, gv) in want_y.iter_mut().zip(&mut gy_eff) {
                if *yv <= 0.0 {
                    *gv = 0.0;
                }
                *yv = yv.max(0.0);
            }
        }
        let want_gx = max_pool2d_backward(&g, &x, &gy_eff);
        let mut pool = MaxPool2d::new(2).relu(relu);
        layer_matches(&mut pool, &g, &x, &gy, &want_y, &want_gx)?;
    }

    #[test]
    fn avg_pool_matches_reference(g in geometry(), cip in any::<bool>(), seed in any::<u64>()) {
        prop_assume!(g.validate("test").is_ok());
        let mut rng = Rng::new(seed);
        let x = normal(g.batch * g.channels * g.height * g.width, &mut rng);
        let gy = normal(g.batch * g.channels * g.out_h() * g.out_w(), &mut rng);
        let want_y = avg_pool2d_forward(&g, cip, &x);
        let want_gx = avg_pool2d_backward(&g, cip, &gy);
        fd_check(&x, &want_gx, |x| avg_pool2d_forward(&g, cip, x).iter().zip(&gy).map(|(a, b)| a * b).sum())?;
        let mut pool = AvgPool2d::new(g.kernel).stride(g.stride).padding(g.padding).count_include_pad(cip);
        layer_matches(&mut pool, &g, &x, &gy, &want_y, &want_gx)?;
    }

    #[test]
    fn global_avg_pool_matches_reference(n in 1usize..=3, c in 1usize..=4, h in 1usize..=9, w in 1usize..=9, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = normal(n * c * h * w, &mut rng);
        let gy = normal(n * c, &mut rng);
        let want_y = global_avg_pool_forward(h * w, &x);
        let want_gx = global_avg_pool_backward(h * w, &gy);
        fd_check(&x, &want_gx, |x| global_avg_pool_forward(h * w, x).iter().zip(&gy).map(|(a, b)| a * b).sum())?;
        let mut pool = GlobalAvgPool2d::new();
        let xt = Tensor::from_vec([n, c, h, w], x.iter().map(|&v| v as f32).collect()).unwrap();
        let y = pool.forward(&xt, Mode::Train);
        prop_assert_eq!(y.shape(), ember_tensor::Shape::from([n, c, 1, 1]));
        prop_assert!(rel_err(y.data(), &want_y) <= TOL);
        let gyt = Tensor::from_vec([n, c, 1, 1], gy.iter().map(|&v| v as f32).collect()).unwrap();
        let gx = pool.backward(&xt, &gyt, true).to_vec();
        prop_assert!(rel_err(&gx, &want_gx) <= TOL);
    }
}

#[test]
fn bad_pool_settings_are_errors() {
    let e = MaxPool2d::new(2)
        .padding(2)
        .output_shape([1, 1, 8, 8].into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("half the kernel"), "{e}");
    assert!(MaxPool2d::new(0).output_shape([1, 1, 8, 8].into()).is_err());
    assert!(
        AvgPool2d::new(3)
            .stride(0)
            .output_shape([1, 1, 8, 8].into())
            .is_err()
    );
    assert!(AvgPool2d::new(5).output_shape([1, 1, 3, 3].into()).is_err());
    assert!(GlobalAvgPool2d::new().output_shape([1, 8].into()).is_err());
    assert_eq!(
        MaxPool2d::new(2)
            .output_shape([2, 3, 9, 8].into())
            .unwrap()
            .dims(),
        &[2, 3, 4, 4]
    );
    assert_eq!(
        MaxPool2d::new(3).stride(2).padding(1).describe(),
        "MaxPool2d(k3, s2, p1)"
    );
}

#[test]
#[should_panic(expected = "[2, 3]")]
fn pool_forward_on_wrong_rank_panics_naming_it() {
    let _ = MaxPool2d::new(2).forward(&Tensor::zeros([2, 3]), Mode::Train);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The explicit-SIMD 2x2 stride-2 path, on odd sizes and rows longer than one strip.
    #[test]
    fn max_pool_2x2_fast_path_matches_reference(h in 2usize..=9, w in 2usize..=150, c in 1usize..=2, seed in any::<u64>()) {
        let g = PoolGeometry { batch: 1, channels: c, height: h, width: w, kernel: Pair(2, 2), stride: Pair(2, 2), padding: Pair(0, 0) };
        let (x, gy) = max_pool_inputs(&g, seed);
        let mut pool = MaxPool2d::new(2);
        let (want_y, want_gx) = (max_pool2d_forward(&g, &x), max_pool2d_backward(&g, &x, &gy));
        layer_matches(&mut pool, &g, &x, &gy, &want_y, &want_gx)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `MaxPool2d::relu(true)` equals ReLU followed by max pooling, forward and backward.
    #[test]
    fn fused_relu_max_pool_matches_reference(g in geometry(), seed in any::<u64>()) {
        prop_assume!(g.validate("test").is_ok());
        let (x, gy) = max_pool_inputs(&g, seed);
        // Reference: y = relu(maxpool(x)); dy/dx routes gy through positive outputs only.
        let pooled = max_pool2d_forward(&g, &x);
        let want_y: Vec<f64> = pooled.iter().map(|v| v.max(0.0)).collect();
        let gy_masked: Vec<f64> = gy.iter().zip(&pooled).map(|(d, p)| if *p > 0.0 { *d } else { 0.0 }).collect();
        let want_gx = max_pool2d_backward(&g, &x, &gy_masked);
        let mut pool = MaxPool2d::new(g.kernel).stride(g.stride).padding(g.padding).relu(true);
        layer_matches(&mut pool, &g, &x, &gy, &want_y, &want_gx)?;
    }
}
