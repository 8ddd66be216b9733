//! The zoo matches the PyTorch reference definitions; spec files parse, build and fail
//! with errors that name the line.

mod common;

use std::path::Path;

use ember::spec::{LayerSpec, ModelSpec};
use ember::zoo;
use ember_layers::Layer;

fn names_and_shapes(spec: &ModelSpec) -> Vec<(String, Vec<usize>)> {
    let mut net = spec.build().unwrap();
    let mut v = Vec::new();
    net.visit_params("", &mut |n, p| {
        v.push((n.to_string(), p.value.shape().dims().to_vec()))
    });
    v
}

#[test]
fn fmnist_cnn_has_the_pytorch_state_dict() {
    // nn.Sequential(conv, relu, pool, conv, relu, pool, flatten, linear, relu, linear)
    let want: Vec<(String, Vec<usize>)> = common::FMNIST_CNN_STATE
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect();
    assert_eq!(names_and_shapes(&zoo::fmnist_cnn()), want);
}

#[test]
fn cifar_cnn_has_the_pytorch_state_dict() {
    let got = names_and_shapes(&zoo::cifar_cnn());
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "3.weight",
            "3.bias",
            "6.weight",
            "6.bias",
            "10.weight",
            "10.bias",
            "12.weight",
            "12.bias"
        ]
    );
    assert_eq!(got[6].1, vec![256, 2048]);
    let total: usize = got.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    assert_eq!(total, 896 + 18_496 + 73_856 + 524_544 + 2_570);
}

#[test]
fn resnet9_builds_with_nested_names_and_ten_outputs() {
    let spec = zoo::resnet9(10);
    assert_eq!(spec.output_shape().unwrap().dims(), &[1, 10]);
    let got = names_and_shapes(&spec);
    assert!(got.iter().any(|(n, _)| n == "7.block.0.weight"), "{got:?}");
    assert!(
        got.iter()
            .any(|(n, s)| n.ends_with(".weight") && s == &vec![512, 512, 3, 3])
    );
    let total: usize = got.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    // The DAWNBench ResNet-9 has about 6.57 M parameters.
    assert!((6_500_000..6_600_000).contains(&total), "{total}");
}

#[test]
fn zoo_specs_round_trip_through_toml() {
    for name in zoo::NAMES {
        let spec = zoo::get(name).unwrap();
        let text = spec.to_toml();
        let back = ModelSpec::from_toml(&text, name).unwrap();
        assert_eq!(back, spec, "{text}");
    }
}

#[test]
fn models_fmnist_fast_is_cifar_fast_on_one_channel() {
    // The Fashion-MNIST recipe's file: cifar-fast's layers, options and fixed parameters
    // with 1x28x28 input, 8 whitening filters and widths 32, 128, 128.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fmnist-fast.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let spec = ModelSpec::from_toml(&text, "fmnist-fast.toml").unwrap();
    let mut want = zoo::cifar_fast(10);
    want.name = Some("fmnist-fast".into());
    want.input = [1, 28, 28];
    for layer in &mut want.layers {
        if let LayerSpec::Conv2d { out, .. } = layer {
            *out = match *out {
                24 => 8,
                64 => 32,
                256 => 128,
                other => other,
            };
        }
    }
    assert_eq!(spec, want);
    assert_eq!(spec.output_shape().unwrap().dims(), &[1, 10]);
    spec.build().unwrap();
}

const TINY: &str = include_str!("specs/tiny12.toml");

#[test]
fn a_spec_file_builds() {
    let spec = ModelSpec::from_toml(TINY, "tiny.toml").unwrap();
    assert_eq!(spec.output_shape().unwrap().dims(), &[1, 3]);
    let names: Vec<String> = names_and_shapes(&spec)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"2.block.0.weight".to_string()), "{names:?}");
    assert!(names.contains(&"2.block.1.weight".to_string()), "{names:?}");
}

#[test]
fn spec_errors_name_the_problem_and_line() {
    let unknown = TINY.replace("type = \"relu\"", "type = \"swish\"");
    let e = ModelSpec::from_toml(&unknown, "m.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.toml") && e.contains("swish") && e.contains("line"),
        "{e}"
    );

    let bad_option = TINY.replace(
        "padding = 1\n\n[[layer]]\ntype = \"relu\"",
        "paddin = 1\n\n[[layer]]\ntype = \"relu\"",
    );
    let e = ModelSpec::from_toml(&bad_option, "m.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("paddin"), "{e}");

    // Linear straight after a conv: the shape does not fit; the error names line 6 (the
    // first [[layer]] is fine) -- find the linear's line.
    let no_flatten = TINY.replace("[[layer]]\ntype = \"flatten\"\n", "");
    let e = ModelSpec::from_toml(&no_flatten, "m.toml")
        .unwrap_err()
        .to_string();
    let line = no_flatten
        .lines()
        .position(|l| l.contains("type = \"linear\""))
        .unwrap()
        + 1;
    assert!(
        e.contains("flatten") && e.contains(&format!("m.toml:{}", line - 1))
            || e.contains(&format!("m.toml:{line}")),
        "{e}"
    );

    let bad_groups = TINY.replacen("out = 4\nkernel = 3", "out = 4\ngroups = 3\nkernel = 3", 1);
    let e = ModelSpec::from_toml(&bad_groups, "m.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups"), "{e}");
}

/// `build` fuses the conv-stage ReLUs (the one between the linears stays a layer) and
/// computes exactly what `build_unfused` does: outputs, input and parameter gradients,
/// with the same parameter names.
#[test]
fn fused_zoo_models_equal_the_unfused_ones() {
    use ember_layers::{Mode, softmax_cross_entropy};
    use ember_tensor::{Rng, Tensor};
    for (spec, fused_at) in [
        (zoo::fmnist_cnn(), vec![1, 4]),
        (zoo::cifar_cnn(), vec![1, 4, 7]),
    ] {
        let mut plain = spec.build_unfused().unwrap();
        let mut fused = spec.build().unwrap();
        let at: Vec<usize> = (0..fused.len()).filter(|&i| fused.is_fused(i)).collect();
        assert_eq!(at, fused_at, "{:?}", spec.name);
        assert_eq!(plain.param_names(), fused.param_names());
        plain.reset_parameters(&mut Rng::new(5));
        fused.reset_parameters(&mut Rng::new(5));
        let [c, h, w] = spec.input;
        let x = Tensor::normal([3, c, h, w], 0.0, 1.0, &mut Rng::new(6));
        let labels = [0, 4, 9];
        let mut outs = Vec::new();
        for net in [&mut plain, &mut fused] {
            let mut grad = Tensor::zeros([0]);
            let logits = net.forward(&x, Mode::Train).clone();
            softmax_cross_entropy(&logits, &labels, 0.0, &mut grad);
            net.zero_grad();
            let mut seen = vec![logits.to_vec(), net.backward(&x, &grad, true).to_vec()];
            net.visit_params("", &mut |_, p| seen.push(p.grad.to_vec()));
            outs.push(seen);
        }
        assert!(outs[0][0].iter().any(|&v| v != 0.0));
        assert_eq!(outs[0], outs[1], "{:?}", spec.name);
    }
}
