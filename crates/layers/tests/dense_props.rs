//! Linear, activations, Scale, Flatten and the loss: the f64 references against finite
//! differences, and the f32 layers against the references.

mod layers_support;

use ember_layers::reference::dense as r;
use ember_layers::{
    Flatten, GELU, Layer, LeakyReLU, Linear, Mode, Param, ReLU, Scale, softmax_cross_entropy,
    softmax_rows,
};
use ember_tensor::{Shape, Tensor};
use layers_support::*;
use proptest::prelude::*;

/// Tolerance of f32 layers against the f64 reference, as `|got - want| / (1 + |want|)`:
/// sums of at most a few hundred products of values in (-1, 1) in f32.
const F32_TOL: f64 = 1e-5;
/// Tolerance of f64 analytic gradients against central differences with h = 1e-6.
const FD_TOL: f64 = 1e-6;

fn set_params(layer: &mut dyn Layer, values: &[(&str, &Tensor)]) {
    layer.visit_params("", &mut |name, p: &mut Param| {
        let v = values
            .iter()
            .find(|(n, _)| *n == name)
            .expect("known name")
            .1;
        p.value = v.clone();
    });
}

fn grads(layer: &mut dyn Layer) -> Vec<(String, Vec<f64>)> {
    let mut out = Vec::new();
    layer.visit_params("", &mut |name, p| {
        out.push((name.to_string(), f64s(p.grad.data())))
    });
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn linear_reference_matches_finite_differences(n in 1usize..4, din in 1usize..6, dout in 1usize..5, seed in 0u64..1000) {
        let x = f64s(&values(n * din, seed, 0.0));
        let w = f64s(&values(dout * din, seed + 1, 0.0));
        let b = f64s(&values(dout, seed + 2, 0.0));
        let g = f64s(&values(n * dout, seed + 3, 0.0));
        let (dx, dw, db) = r::linear_backward(&x, &w, &g, n, din, dout);
        let loss_x = |x: &[f64]| dot(&r::linear_forward(x, &w, Some(&b), n, din, dout), &g);
        let loss_w = |w: &[f64]| dot(&r::linear_forward(&x, w, Some(&b), n, din, dout), &g);
        let loss_b = |b: &[f64]| dot(&r::linear_forward(&x, &w, Some(b), n, din, dout), &g);
        assert_close("dx", &dx, &numeric_grad(&loss_x, &x, 1e-6), FD_TOL);
        assert_close("dw", &dw, &numeric_grad(&loss_w, &w, 1e-6), FD_TOL);
        assert_close("db", &db, &numeric_grad(&loss_b, &b, 1e-6), FD_TOL);
    }

    #[test]
    fn activation_references_match_finite_differences(len in 1usize..40, slope in 0.0f64..0.5, seed in 0u64..1000) {
        // Inputs at least 0.01 from the kink, steps of 1e-6: never crosses it.
        let x = f64s(&values(len, seed, 0.01));
        let g = f64s(&values(len, seed + 1, 0.0));
        let relu = |x: &[f64]| dot(&r::relu_forward(x), &g);
        assert_close("relu", &r::relu_backward(&x, &g), &numeric_grad(&relu, &x, 1e-6), FD_TOL);
        let leaky = |x: &[f64]| dot(&r::leaky_relu_forward(x, slope), &g);
        assert_close("leaky", &r::leaky_relu_backward(&x, &g, slope), &numeric_grad(&leaky, &x, 1e-6), FD_TOL);
        let gelu = |x: &[f64]| dot(&r::gelu_forward(x), &g);
        assert_close("gelu", &r::gelu_backward(&x, &g), &numeric_grad(&gelu, &x, 1e-6), FD_TOL);
    }

    #[test]
    fn cross_entropy_reference_matches_finite_differences(n in 1usize..5, k in 1usize..7, eps in 0.0f64..0.3, seed in 0u64..1000, scale in 1.0f64..20.0) {
        let logits: Vec<f64> = values(n * k, seed, 0.0).iter().map(|&v| v as f64 * scale).collect();
        let labels: Vec<usize> = (0..n).map(|i| (seed as usize + 7 * i) % k).collect();
        let (_, grad) = r::cross_entropy(&logits, &labels, n, k, eps);
        let f = |l: &[f64]| r::cross_entropy(l, &labels, n, k, eps).0;
        assert_close("grad_logits", &grad, &numeric_grad(&f, &logits, 1e-6), FD_TOL);
    }

    #[test]
    fn linear_layer_matches_reference(n in 1usize..9, din in 1usize..40, dout in 1usize..20, bias in any::<bool>(), seed in 0u64..1000) {
        let x = tensor(&[n, din], seed, 0.0);
        let w = tensor(&[dout, din], seed + 1, 0.0);
        let b = tensor(&[dout], seed + 2, 0.0);
        let g = tensor(&[n, dout], seed + 3, 0.0);
        let mut layer = Linear::new(din, dout).bias(bias);
        set_params(&mut layer, &[("weight", &w), ("bias", &b)]);
        let bias64 = f64s(b.data());
        let want = r::linear_forward(&f64s(x.data()), &f64s(w.data()), bias.then_some(&bias64[..]), n, din, dout);
        let y = layer.forward(&x, Mode::Train);
        prop_assert_eq!(y.shape(), Shape::from([n, dout]));
        assert_close("output", &f64s(y.data()), &want, F32_TOL);
        let (dx, dw, db) = r::linear_backward(&f64s(x.data()), &f64s(w.data()), &f64s(g.data()), n, din, dout);
        // Two backward passes accumulate parameter gradients.
        layer.backward(&x, &g, true);
        let got_dx = f64s(layer.backward(&x, &g, true).data());
        assert_close("grad_input", &got_dx, &dx, F32_TOL);
        let twice = |v: &[f64]| v.iter().map(|x| 2.0 * x).collect::<Vec<_>>();
        for (name, got) in grads(&mut layer) {
            let want = if name == "weight" { twice(&dw) } else { twice(&db) };
            assert_close(&name, &got, &want, 2.0 * F32_TOL);
        }
        prop_assert!(layer.backward(&x, &g, false).is_empty());
    }

    #[test]
    fn activations_match_reference(dims in proptest::collection::vec(1usize..6, 1..5), slope in 0.0f32..0.5, factor in -2.0f32..2.0, seed in 0u64..1000) {
        let x = tensor(&dims, seed, 0.0);
        let g = tensor(&dims, seed + 1, 0.0);
        let (x64, g64) = (f64s(x.data()), f64s(g.data()));
        let mut relu = ReLU;
        assert_close("relu", &f64s(relu.forward(&x, Mode::Train).data()), &r::relu_forward(&x64), 0.0);
        assert_close("relu'", &f64s(relu.backward(&x, &g, true).data()), &r::relu_backward(&x64, &g64), 0.0);
        let mut leaky = LeakyReLU::new(slope);
        let s = slope as f64;
        assert_close("leaky", &f64s(leaky.forward(&x, Mode::Train).data()), &r::leaky_relu_forward(&x64, s), F32_TOL);
        assert_close("leaky'", &f64s(leaky.backward(&x, &g, true).data()), &r::leaky_relu_backward(&x64, &g64, s), F32_TOL);
        let mut scale = Scale::new(factor);
        let want: Vec<f64> = x64.iter().map(|v| v * factor as f64).collect();
        assert_close("scale", &f64s(scale.forward(&x, Mode::Train).data()), &want, F32_TOL);
        let want: Vec<f64> = g64.iter().map(|v| v * factor as f64).collect();
        assert_close("scale'", &f64s(scale.backward(&x, &g, true).data()), &want, F32_TOL);
        // GELU over a wide range too (its erf is a rational approximation; tails matter).
        let wide = Tensor::from_vec(x.shape(), x.data().iter().map(|v| v * 6.0 * factor).collect()).unwrap();
        let wide64 = f64s(wide.data());
        let mut gelu = GELU;
        assert_close("gelu", &f64s(gelu.forward(&wide, Mode::Train).data()), &r::gelu_forward(&wide64), F32_TOL);
        assert_close("gelu'", &f64s(gelu.backward(&wide, &g, true).data()), &r::gelu_backward(&wide64, &g64), F32_TOL);
    }

    #[test]
    fn cross_entropy_matches_reference(n in 1usize..9, k in 1usize..30, eps in 0.0f32..0.3, seed in 0u64..1000, scale in 1.0f32..200.0) {
        let logits = Tensor::from_vec([n, k], values(n * k, seed, 0.0).iter().map(|v| v * scale).collect()).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| (seed as usize + 5 * i) % k).collect();
        let mut grad = Tensor::zeros([1]);
        let loss = softmax_cross_entropy(&logits, &labels, eps, &mut grad);
        let (want_loss, want_grad) = r::cross_entropy(&f64s(logits.data()), &labels, n, k, eps as f64);
        prop_assert!(loss.is_finite());
        // Logits up to 200 in f32: log-probabilities carry ~200 * 6e-8 absolute error.
        assert_close("loss", &[loss as f64], &[want_loss], 1e-4);
        assert_close("grad", &f64s(grad.data()), &want_grad, 1e-5);
        let p = softmax_rows(&logits);
        for row in p.data().chunks(k) {
            prop_assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn flatten_reshapes_and_passes_gradients_back() {
    let x = tensor(&[2, 3, 2, 2], 1, 0.0);
    let mut f = Flatten;
    let y = f.forward(&x, Mode::Train);
    assert_eq!(y.shape(), Shape::from([2, 12]));
    assert_eq!(y.data(), x.data());
    let g = tensor(&[2, 12], 2, 0.0);
    let dx = f.backward(&x, &g, true);
    assert_eq!(dx.shape(), x.shape());
    assert_eq!(dx.data(), g.data());
    assert!(f.output_shape(Shape::scalar()).is_err());
}

#[test]
fn linear_names_init_and_shape_errors() {
    let mut fc = Linear::new(100, 7);
    let mut names = Vec::new();
    fc.visit_params("3.", &mut |n, p| names.push((n.to_string(), p.decay)));
    assert_eq!(
        names,
        [
            ("3.weight".to_string(), true),
            ("3.bias".to_string(), false)
        ]
    );
    let bound = 1.0 / 10.0;
    assert!(fc.weight().value.data().iter().all(|v| v.abs() <= bound));
    assert!(
        fc.weight()
            .value
            .data()
            .iter()
            .any(|v| v.abs() > bound / 2.0)
    );
    let err = fc
        .output_shape(Shape::from([4, 100, 1, 1]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[4, 100, 1, 1]") && err.contains("Flatten"),
        "{err}"
    );
    assert_eq!(fc.flops(Shape::from([2, 100])), 2 * 2 * 100 * 7 + 2 * 7);
    let mut rng = ember_tensor::Rng::new(5);
    let before = fc.weight().value.to_vec();
    fc.reset_parameters(&mut rng);
    assert_ne!(before, fc.weight().value.to_vec());
}

#[test]
#[should_panic(expected = "label 3 of item 1 is not below the 3 classes")]
fn cross_entropy_rejects_out_of_range_labels() {
    let logits = Tensor::zeros([2, 3]);
    softmax_cross_entropy(&logits, &[0, 3], 0.0, &mut Tensor::zeros([0]));
}

#[test]
#[should_panic(expected = "1 labels for a batch of 2")]
fn cross_entropy_rejects_length_mismatch() {
    softmax_cross_entropy(&Tensor::zeros([2, 3]), &[0], 0.0, &mut Tensor::zeros([0]));
}

#[test]
fn cross_entropy_survives_huge_logits() {
    let logits = Tensor::from_vec([1, 3], vec![1e4, -1e4, 0.0]).unwrap();
    let mut g = Tensor::zeros([0]);
    let loss = softmax_cross_entropy(&logits, &[1], 0.1, &mut g);
    assert!(loss.is_finite() && g.data().iter().all(|v| v.is_finite()));
    assert!(
        (loss - (0.9 * 2e4 + 0.1 / 3.0 * (2e4 + 1e4))).abs() / loss < 1e-5,
        "{loss}"
    );
}
