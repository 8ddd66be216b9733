//! Golden runners for the dense layers, batch norm and the loss.

use ember_layers::{BatchNorm2d, Layer, LeakyReLU, Linear, Mode, ReLU, softmax_cross_entropy};
use ember_tensor::{Shape, Tensor};

use super::compare::Comparison;
use super::json::{Golden, GoldenTensor};

/// A tensor from a golden one (shape checked against the tensor crate's limits).
pub fn to_tensor(name: &str, t: &GoldenTensor) -> Result<Tensor, String> {
    let shape = Shape::new(&t.shape).map_err(|e| format!("inputs.{name}: {e}"))?;
    Tensor::from_vec(shape, t.f32s()).map_err(|e| format!("inputs.{name}: {e}"))
}

/// Fails unless `t` has exactly `want`.
pub fn need_shape(name: &str, t: &GoldenTensor, want: &[usize]) -> Result<(), String> {
    if t.shape == want {
        Ok(())
    } else {
        Err(format!(
            "inputs.{name} has shape {:?}, the params imply {want:?}",
            t.shape
        ))
    }
}

/// Compares `t` with the expected tensor `name` of `g`.
fn compare_expected(
    g: &Golden,
    name: &str,
    t: &Tensor,
    cmp: &mut Comparison,
) -> Result<(), String> {
    cmp.tensor(name, t.shape().dims(), t.data(), &g.expected(name)?);
    Ok(())
}

/// Sets parameter `name` (a `visit_params` name) of `layer` to `value`.
pub fn set_param(layer: &mut dyn Layer, name: &str, value: &Tensor) -> Result<(), String> {
    let mut result = Err(format!("the layer has no parameter {name:?}"));
    layer.visit_params("", &mut |n, p| {
        if n == name {
            result = if p.value.shape() == value.shape() {
                p.value = value.clone();
                Ok(())
            } else {
                Err(format!(
                    "parameter {name} has shape {}, the golden value {}",
                    p.value.shape(),
                    value.shape()
                ))
            };
        }
    });
    result
}

/// Sets buffer `name` (a `visit_buffers` name) of `layer` to `value`.
fn set_buffer(layer: &mut dyn Layer, name: &str, value: &Tensor) -> Result<(), String> {
    let mut result = Err(format!("the layer has no buffer {name:?}"));
    layer.visit_buffers("", &mut |n, t| {
        if n == name {
            result = if t.shape() == value.shape() {
                *t = value.clone();
                Ok(())
            } else {
                Err(format!(
                    "buffer {name} has shape {}, the golden value {}",
                    t.shape(),
                    value.shape()
                ))
            };
        }
    });
    result
}

/// Compares every parameter gradient named in `names` (`visit_params` name, expected key).
pub fn compare_param_grads(
    g: &Golden,
    layer: &mut dyn Layer,
    names: &[(&str, &str)],
    cmp: &mut Comparison,
) -> Result<(), String> {
    for &(param, key) in names {
        let want = g.expected(key)?;
        let mut found = false;
        layer.visit_params("", &mut |n, p| {
            if n == param {
                found = true;
                cmp.tensor(key, p.grad.shape().dims(), p.grad.data(), &want);
            }
        });
        if !found {
            return Err(format!("the layer has no parameter {param:?}"));
        }
    }
    Ok(())
}

/// Runs forward (in `mode`) and backward of `layer` on `inputs.input` / `inputs.grad_output`
/// and compares `output` and `grad_input`. With `same_data_shape`, an output whose shape
/// differs from the golden one only by how the same elements are grouped (global pooling's
/// `[N, C]` for `[N, C, 1, 1]`) counts as matching.
pub fn forward_backward(
    g: &Golden,
    layer: &mut dyn Layer,
    mode: Mode,
    same_data_shape: bool,
    cmp: &mut Comparison,
) -> Result<(), String> {
    let x_g = g.input("input")?;
    let x = to_tensor("input", &x_g)?;
    let out_shape = layer
        .output_shape(x.shape())
        .map_err(|e| format!("inputs.input does not fit the layer: {e}"))?;
    let go_g = g.input("grad_output")?;
    if go_g.data.len() != out_shape.numel() {
        return Err(format!(
            "inputs.grad_output has shape {:?}, the layer's output is {out_shape}",
            go_g.shape
        ));
    }
    let grad_out = Tensor::from_vec(out_shape, go_g.f32s()).map_err(|e| e.to_string())?;
    let y = layer.forward(&x, mode);
    let want = g.expected("output")?;
    let shape = if same_data_shape && y.len() == want.data.len() {
        want.shape.clone()
    } else {
        y.shape().dims().to_vec()
    };
    cmp.tensor("output", &shape, y.data(), &want);
    let dx = layer.backward(&x, &grad_out, true);
    compare_expected(g, "grad_input", dx, cmp)
}

/// `linear`.
pub fn linear(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    let (fin, fout) = (g.usize("in_features")?, g.usize("out_features")?);
    let bias = if g.has_param("bias") {
        g.bool("bias")?
    } else {
        g.has_input("bias")
    };
    let x = g.input("input")?;
    let n = x.shape.first().copied().unwrap_or(0);
    need_shape("input", &x, &[n, fin])?;
    let w = g.input("weight")?;
    need_shape("weight", &w, &[fout, fin])?;
    let mut layer = Linear::new(fin, fout).bias(bias);
    set_param(&mut layer, "weight", &to_tensor("weight", &w)?)?;
    let mut grads = vec![("weight", "grad_weight")];
    if bias {
        let b = g.input("bias")?;
        need_shape("bias", &b, &[fout])?;
        set_param(&mut layer, "bias", &to_tensor("bias", &b)?)?;
        grads.push(("bias", "grad_bias"));
    }
    forward_backward(g, &mut layer, Mode::Train, false, cmp)?;
    compare_param_grads(g, &mut layer, &grads, cmp)
}

/// `relu`.
pub fn relu(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    let mut relu = ReLU;
    forward_backward(g, &mut relu, Mode::Train, false, cmp)
}

/// `leaky_relu`.
pub fn leaky_relu(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    let mut layer = LeakyReLU::new(g.f64("negative_slope")? as f32);
    forward_backward(g, &mut layer, Mode::Train, false, cmp)
}

/// `batchnorm2d_train` and `batchnorm2d_eval`.
pub fn batchnorm2d(g: &Golden, mode: Mode, cmp: &mut Comparison) -> Result<(), String> {
    let c = g.usize("num_features")?;
    let affine = if g.has_param("affine") {
        g.bool("affine")?
    } else {
        g.has_input("weight")
    };
    let x = g.input("input")?;
    match x.shape.as_slice() {
        [_, ch, _, _] if *ch == c => {}
        s => {
            return Err(format!(
                "inputs.input has shape {s:?}, expected [N, {c}, H, W]"
            ));
        }
    }
    let mut layer = BatchNorm2d::new(c)
        .eps(g.f64("eps")? as f32)
        .momentum(g.f64("momentum")? as f32)
        .affine(affine);
    if affine {
        for name in ["weight", "bias"] {
            set_param(&mut layer, name, &to_tensor(name, &g.input(name)?)?)?;
        }
    }
    for name in ["running_mean", "running_var"] {
        set_buffer(&mut layer, name, &to_tensor(name, &g.input(name)?)?)?;
    }
    let xt = to_tensor("input", &x)?;
    if mode == Mode::Eval {
        let y = layer.forward(&xt, mode);
        return compare_expected(g, "output", y, cmp);
    }
    forward_backward(g, &mut layer, mode, false, cmp)?;
    if affine {
        compare_param_grads(
            g,
            &mut layer,
            &[("weight", "grad_weight"), ("bias", "grad_bias")],
            cmp,
        )?;
    }
    let (rm, rv) = (layer.running_mean().clone(), layer.running_var().clone());
    compare_expected(g, "running_mean", &rm, cmp)?;
    compare_expected(g, "running_var", &rv, cmp)
}

/// Checks `params.reduction` is `"mean"` (the only reduction Ember's loss has).
pub fn mean_reduction(reduction: &str) -> Result<(), String> {
    if reduction == "mean" {
        Ok(())
    } else {
        Err(format!(
            "reduction {reduction:?} is not supported (only \"mean\")"
        ))
    }
}

/// Checks labels against the class count.
pub fn check_labels(labels: &[usize], n: usize, classes: usize) -> Result<(), String> {
    if labels.len() != n {
        return Err(format!(
            "inputs.labels has {} labels for {n} rows of logits",
            labels.len()
        ));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|&(_, &l)| l >= classes) {
        return Err(format!(
            "inputs.labels[{i}] = {l} is not below the {classes} classes"
        ));
    }
    Ok(())
}

/// `cross_entropy`.
pub fn cross_entropy(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    mean_reduction(g.str("reduction")?)?;
    let smoothing = g.f64("label_smoothing")? as f32;
    let logits = g.input("logits")?;
    let (n, k) = match logits.shape.as_slice() {
        [n, k] => (*n, *k),
        s => {
            return Err(format!(
                "inputs.logits has shape {s:?}, expected [N, classes]"
            ));
        }
    };
    let labels = g.labels("labels")?;
    check_labels(&labels, n, k)?;
    let mut grad = Tensor::zeros([0]);
    let loss = softmax_cross_entropy(
        &to_tensor("logits", &logits)?,
        &labels,
        smoothing,
        &mut grad,
    );
    cmp.tensor("loss", &[], &[loss], &g.expected("loss")?);
    compare_expected(g, "grad_logits", &grad, cmp)
}
