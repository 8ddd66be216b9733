//! Sequential and Residual behaviour: names, validation, summary, buffer reuse, input
//! gradients; Dropout's seeded masks.

mod layers_support;

use ember_layers::{
    BatchNorm2d, Dropout, Flatten, Layer, Linear, Mode, ReLU, Residual, Scale, Sequential,
};
use ember_tensor::{Rng, Shape, Tensor};
use layers_support::*;

fn model() -> Sequential {
    Sequential::new()
        .add(BatchNorm2d::new(2))
        .add(Flatten)
        .add(Linear::new(2 * 3 * 3, 8))
        .add(
            Residual::new(Sequential::new().add(Linear::new(8, 8)).add(ReLU))
                .shortcut(Sequential::new().add(Linear::new(8, 8).bias(false))),
        )
        .add(Sequential::new().add(ReLU).add(Linear::new(8, 4)))
        .add(Scale::new(0.125))
}

#[test]
fn parameter_and_buffer_names_follow_pytorch() {
    let mut m = model();
    let want = [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "3.block.0.weight",
        "3.block.0.bias",
        "3.shortcut.0.weight",
        "4.1.weight",
        "4.1.bias",
    ];
    assert_eq!(m.param_names(), want);
    let mut visited = Vec::new();
    m.visit_params("", &mut |n, _| visited.push(n.to_string()));
    assert_eq!(visited, want);
    let mut bufs = Vec::new();
    m.visit_buffers("", &mut |n, _| bufs.push(n.to_string()));
    assert_eq!(
        bufs,
        ["0.running_mean", "0.running_var", "0.num_batches_tracked"]
    );
    assert_eq!(m.num_params(), 2 + 2 + 18 * 8 + 8 + 64 + 8 + 64 + 32 + 4);
    assert_eq!(m.len(), 6);
    assert!(!m.is_empty());
}

#[test]
fn validate_names_the_layer_and_shapes() {
    let m = model();
    assert_eq!(
        m.validate(Shape::from([5, 2, 3, 3])).unwrap(),
        Shape::from([5, 4])
    );
    let err = m
        .validate(Shape::from([5, 2, 4, 3]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer 2") && err.contains("Linear(18->8)") && err.contains("[5, 24]"),
        "{err}"
    );
    let err = m
        .validate(Shape::from([5, 3, 3, 3]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer 0") && err.contains("[5, 3, 3, 3]"),
        "{err}"
    );
    let bad = Sequential::new().add(Residual::new(Sequential::new().add(Linear::new(4, 3))));
    let err = bad.validate(Shape::from([2, 4])).unwrap_err().to_string();
    assert!(
        err.contains("[2, 3]") && err.contains("[2, 4]") && err.contains("shortcut"),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "layer 2 (Linear(18->8))")]
fn forward_with_a_wrong_shape_panics_with_the_layer() {
    model().forward(&Tensor::zeros([1, 2, 4, 3]), Mode::Eval);
}

#[test]
fn summary_rows_and_table() {
    let m = model();
    let s = m.summary(Shape::from([10, 2, 3, 3])).unwrap();
    assert_eq!(s.rows.len(), 6);
    assert_eq!(s.rows[2].output, Shape::from([10, 8]));
    assert_eq!(s.rows[2].params, 18 * 8 + 8);
    assert_eq!(s.rows[2].flops, 2 * 10 * 18 * 8 + 10 * 8);
    assert_eq!(s.rows[3].params, 64 + 8 + 64);
    assert_eq!(s.total_params, m.num_params());
    assert_eq!(s.total_flops, s.rows.iter().map(|r| r.flops).sum::<u64>());
    assert_eq!(s.total_flops, m.flops(Shape::from([10, 2, 3, 3])));
    assert_eq!(s.output(), Shape::from([10, 4]));
    let text = s.to_string();
    for needle in [
        "Output shape",
        "[10, 2, 3, 3]",
        "Linear(18->8)",
        "Total params: 328",
        "BatchNorm2d(2)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    assert!(m.summary(Shape::from([10, 1, 3, 3])).is_err());
}

#[test]
fn buffers_are_reused_between_steps() {
    let mut m = model();
    let x = tensor(&[4, 2, 3, 3], 1, 0.0);
    let g = tensor(&[4, 4], 2, 0.0);
    let first_out = m.forward(&x, Mode::Train).data().as_ptr();
    let first_grad = m.backward(&x, &g, true).data().as_ptr();
    for _ in 0..3 {
        m.zero_grad();
        assert_eq!(m.forward(&x, Mode::Train).data().as_ptr(), first_out);
        assert_eq!(m.backward(&x, &g, true).data().as_ptr(), first_grad);
    }
    // A top-level backward without the input gradient leaves it empty but still fills
    // every parameter gradient.
    m.zero_grad();
    m.forward(&x, Mode::Train);
    assert!(m.backward(&x, &g, false).is_empty());
    let mut all_set = true;
    m.visit_params("", &mut |_, p| {
        all_set &= p.grad.data().iter().any(|&v| v != 0.0)
    });
    assert!(all_set);
}

#[test]
fn residual_adds_the_block_and_the_shortcut() {
    let mut res = Residual::new(Sequential::new().add(ReLU));
    let x = tensor(&[3, 5], 3, 0.0);
    let y = res.forward(&x, Mode::Train).to_vec();
    for (y, x) in y.iter().zip(x.data()) {
        assert_eq!(*y, x.max(0.0) + x);
    }
    let g = tensor(&[3, 5], 4, 0.0);
    let dx = res.backward(&x, &g, true).to_vec();
    for ((d, x), g) in dx.iter().zip(x.data()).zip(g.data()) {
        assert_eq!(*d, if *x > 0.0 { 2.0 * g } else { *g });
    }
}

#[test]
fn empty_sequential_is_the_identity_and_reset_is_seeded() {
    let mut id = Sequential::new();
    let x = tensor(&[2, 3], 5, 0.0);
    assert_eq!(id.forward(&x, Mode::Train).data(), x.data());
    assert_eq!(id.backward(&x, &x, true).data(), x.data());
    let params = |seed| {
        let mut m = model();
        m.reset_parameters(&mut Rng::new(seed));
        let mut all = Vec::new();
        m.visit_params("", &mut |_, p| all.extend_from_slice(p.value.data()));
        all
    };
    assert_eq!(params(1), params(1));
    assert_ne!(params(1), params(2));
}

#[test]
fn dropout_is_seeded_scaled_and_identity_in_eval() {
    let x = Tensor::full([8, 1000], 1.0);
    let mut d = Dropout::new(0.25).seed(7);
    assert_eq!(d.forward(&x, Mode::Eval).data(), x.data());
    d.begin_step(3);
    let a = d.forward(&x, Mode::Train).to_vec();
    let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
    assert!((dropped - 0.25).abs() < 0.02, "dropped {dropped}");
    assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    let g = tensor(&[8, 1000], 1, 0.0);
    let dx = d.backward(&x, &g, true).to_vec();
    for ((d, m), g) in dx.iter().zip(&a).zip(g.data()) {
        assert_eq!(*d, m * g);
    }
    // The same (seed, step) repeats; another step or seed differs.
    d.begin_step(3);
    assert_eq!(d.forward(&x, Mode::Train).to_vec(), a);
    assert_ne!(d.forward(&x, Mode::Train).to_vec(), a);
    let mut other = Dropout::new(0.25).seed(8);
    other.begin_step(3);
    assert_ne!(other.forward(&x, Mode::Train).to_vec(), a);
    let mut all = Dropout::new(1.0);
    assert!(
        all.forward(&x, Mode::Train)
            .data()
            .iter()
            .all(|&v| v == 0.0)
    );
    let mut none = Dropout::new(0.0);
    assert_eq!(none.forward(&x, Mode::Train).data(), x.data());
}

#[test]
fn dropout_seed_comes_from_reset_unless_set() {
    let x = Tensor::full([2, 64], 1.0);
    let run = |d: &mut Dropout| d.forward(&x, Mode::Train).to_vec();
    let (mut a, mut b) = (Dropout::new(0.5), Dropout::new(0.5));
    let mut rng = Rng::new(1);
    a.reset_parameters(&mut rng);
    b.reset_parameters(&mut rng);
    assert_ne!(run(&mut a), run(&mut b));
    let (mut c, mut e) = (Dropout::new(0.5).seed(3), Dropout::new(0.5).seed(3));
    c.reset_parameters(&mut rng);
    assert_eq!(run(&mut c), run(&mut e));
}
