//! Golden runners that need `ember_layers::conv` and `ember_layers::pool`: conv2d, the
//! pooling kinds and the whole `train_step`.

use ember_layers::conv::Conv2d;
use ember_layers::pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};
use ember_layers::{Flatten, Layer, LeakyReLU, Linear, Mode, Pair, ReLU, Sequential};
use ember_tensor::Tensor;
use serde_json::Value;

use super::compare::Comparison;
use super::json::{Golden, pair_of};
use super::layers::{
    check_labels, compare_param_grads, forward_backward, mean_reduction, set_param, to_tensor,
};

fn pair(g: &Golden, key: &str) -> Result<Pair, String> {
    g.pair(key).map(|(h, w)| Pair(h, w))
}

/// Fails on PyTorch options Ember's pooling does not have.
fn plain_pooling(g: &Golden) -> Result<(), String> {
    if g.has_param("ceil_mode") && g.bool("ceil_mode")? {
        return Err("ceil_mode = true is not supported".into());
    }
    if g.has_param("dilation") && g.pair("dilation")? != (1, 1) {
        return Err(format!(
            "pooling dilation {:?} is not supported",
            g.pair("dilation")?
        ));
    }
    Ok(())
}

/// `conv2d`.
pub fn conv2d(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    let (cin, cout, groups) = (
        g.usize("in_channels")?,
        g.usize("out_channels")?,
        g.usize("groups")?,
    );
    if groups == 0 || cin % groups != 0 || cout % groups != 0 {
        return Err(format!(
            "groups {groups} must divide in_channels {cin} and out_channels {cout}"
        ));
    }
    let bias = if g.has_param("bias") {
        g.bool("bias")?
    } else {
        g.has_input("bias")
    };
    let k = pair(g, "kernel_size")?;
    let mut layer = Conv2d::new(cin, cout, k)
        .stride(pair(g, "stride")?)
        .padding(pair(g, "padding")?)
        .dilation(pair(g, "dilation")?)
        .groups(groups)
        .bias(bias);
    set_param(
        &mut layer,
        "weight",
        &to_tensor("weight", &g.input("weight")?)?,
    )?;
    let mut grads = vec![("weight", "grad_weight")];
    if bias {
        set_param(&mut layer, "bias", &to_tensor("bias", &g.input("bias")?)?)?;
        grads.push(("bias", "grad_bias"));
    }
    forward_backward(g, &mut layer, Mode::Train, false, cmp)?;
    compare_param_grads(g, &mut layer, &grads, cmp)
}

/// `maxpool2d`.
pub fn maxpool2d(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    plain_pooling(g)?;
    let mut layer = MaxPool2d::new(pair(g, "kernel_size")?)
        .stride(pair(g, "stride")?)
        .padding(pair(g, "padding")?);
    forward_backward(g, &mut layer, Mode::Train, false, cmp)
}

/// `avgpool2d`.
pub fn avgpool2d(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    plain_pooling(g)?;
    let mut layer = AvgPool2d::new(pair(g, "kernel_size")?)
        .stride(pair(g, "stride")?)
        .padding(pair(g, "padding")?)
        .count_include_pad(g.bool("count_include_pad")?);
    forward_backward(g, &mut layer, Mode::Train, false, cmp)
}

/// `global_avgpool`.
pub fn global_avgpool(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    if g.has_param("output_size") && g.pair("output_size")? != (1, 1) {
        return Err(format!(
            "output_size {:?} is not supported (only [1, 1])",
            g.pair("output_size")?
        ));
    }
    forward_backward(g, &mut GlobalAvgPool2d::new(), Mode::Train, true, cmp)
}

fn spec_usize(spec: &Value, key: &str, what: &str) -> Result<usize, String> {
    let v = spec
        .get(key)
        .ok_or_else(|| format!("{what} has no \"{key}\""))?;
    v.as_u64()
        .map(|u| u as usize)
        .ok_or_else(|| format!("{what}.{key} is {v}, not a non-negative integer"))
}

fn spec_pair(spec: &Value, key: &str, what: &str, default: Option<Pair>) -> Result<Pair, String> {
    match (spec.get(key), default) {
        (Some(v), _) => pair_of(v, &format!("{what}.{key}")).map(|(h, w)| Pair(h, w)),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(format!("{what} has no \"{key}\"")),
    }
}

fn spec_bool(spec: &Value, key: &str, what: &str, default: bool) -> Result<bool, String> {
    match spec.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("{what}.{key} is {v}, not true or false")),
    }
}

/// One layer of a `train_step` network from its JSON description.
fn layer_from_spec(spec: &Value, what: &str) -> Result<Box<dyn Layer>, String> {
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what} has no \"type\""))?;
    Ok(match ty {
        "conv2d" => {
            let k = spec_pair(spec, "kernel_size", what, None)?;
            Box::new(
                Conv2d::new(
                    spec_usize(spec, "in_channels", what)?,
                    spec_usize(spec, "out_channels", what)?,
                    k,
                )
                .stride(spec_pair(spec, "stride", what, Some(Pair(1, 1)))?)
                .padding(spec_pair(spec, "padding", what, Some(Pair(0, 0)))?)
                .dilation(spec_pair(spec, "dilation", what, Some(Pair(1, 1)))?)
                .groups(
                    spec.get("groups")
                        .map_or(Ok(1), |_| spec_usize(spec, "groups", what))?,
                )
                .bias(spec_bool(spec, "bias", what, true)?),
            )
        }
        "relu" => Box::new(ReLU),
        "leaky_relu" => {
            let slope = spec
                .get("negative_slope")
                .and_then(Value::as_f64)
                .unwrap_or(0.01);
            Box::new(LeakyReLU::new(slope as f32))
        }
        "maxpool2d" => {
            let k = spec_pair(spec, "kernel_size", what, None)?;
            Box::new(
                MaxPool2d::new(k)
                    .stride(spec_pair(spec, "stride", what, Some(k))?)
                    .padding(spec_pair(spec, "padding", what, Some(Pair(0, 0)))?),
            )
        }
        "flatten" => Box::new(Flatten),
        "linear" => Box::new(
            Linear::new(
                spec_usize(spec, "in_features", what)?,
                spec_usize(spec, "out_features", what)?,
            )
            .bias(spec_bool(spec, "bias", what, true)?),
        ),
        other => return Err(format!("{what}: layer type {other:?} is not supported")),
    })
}

/// One SGD step as PyTorch takes it on a fresh optimizer (the momentum buffer starts at
/// the gradient): `g += wd p; buf = g; d = nesterov ? g + mu buf : buf; p -= lr d`.
struct Sgd {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
}

impl Sgd {
    fn from(spec: &Value) -> Result<Sgd, String> {
        let what = "params.optimizer";
        let name = spec
            .get("optimizer")
            .and_then(Value::as_str)
            .unwrap_or("sgd");
        if name != "sgd" {
            return Err(format!(
                "{what}: optimizer {name:?} is not supported in train_step (only sgd)"
            ));
        }
        let num = |key: &str, default: f64| -> Result<f64, String> {
            match spec.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| format!("{what}.{key} is {v}, not a number")),
            }
        };
        Ok(Sgd {
            lr: spec
                .get("lr")
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("{what} has no numeric \"lr\""))?,
            momentum: num("momentum", 0.0)?,
            weight_decay: num("weight_decay", 0.0)?,
            nesterov: spec_bool(spec, "nesterov", what, false)?,
        })
    }

    fn step(&self, p: &[f32], grad: &[f32]) -> Vec<f64> {
        p.iter()
            .zip(grad)
            .map(|(&p, &g)| {
                let p = p as f64;
                let g = g as f64 + self.weight_decay * p;
                let d = if self.nesterov {
                    g + self.momentum * g
                } else {
                    g
                };
                p - self.lr * d
            })
            .collect()
    }
}

/// `train_step`: builds the network from `params.layers`, loads the initial parameters,
/// runs forward, mean cross-entropy, backward and one SGD step.
pub fn train_step(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    let Value::Array(specs) = g.raw("layers")? else {
        return Err("params.layers is not a list".into());
    };
    let mut net = Sequential::new();
    for (i, spec) in specs.iter().enumerate() {
        let what = format!("params.layers[{i}]");
        if let Some(index) = spec.get("index")
            && index.as_u64() != Some(i as u64)
        {
            return Err(format!("{what}.index is {index}, expected {i}"));
        }
        net.push(layer_from_spec(spec, &what)?);
    }
    let loss_spec = g.raw("loss")?;
    if loss_spec.get("type").and_then(Value::as_str) != Some("cross_entropy") {
        return Err("params.loss.type must be \"cross_entropy\"".into());
    }
    mean_reduction(
        loss_spec
            .get("reduction")
            .and_then(Value::as_str)
            .unwrap_or("mean"),
    )?;
    let smoothing = loss_spec
        .get("label_smoothing")
        .and_then(Value::as_f64)
        .unwrap_or(0.0) as f32;
    let sgd = Sgd::from(g.raw("optimizer")?)?;

    let x = to_tensor("input", &g.input("input")?)?;
    let out_shape = net
        .validate(x.shape())
        .map_err(|e| format!("inputs.input does not fit params.layers: {e}"))?;
    let names = net.param_names();
    for name in &names {
        set_param(&mut net, name, &to_tensor(name, &g.input(name)?)?)
            .map_err(|e| format!("inputs.{name}: {e}"))?;
    }
    let labels = g.labels("labels")?;
    let [n, k] = out_shape.dims() else {
        return Err(format!(
            "the network's output {out_shape} is not [N, classes]"
        ));
    };
    check_labels(&labels, *n, *k)?;

    net.zero_grad();
    let logits = net.forward(&x, Mode::Train).clone();
    cmp.tensor(
        "logits",
        logits.shape().dims(),
        logits.data(),
        &g.expected("logits")?,
    );
    let mut grad = Tensor::zeros([0]);
    let loss = ember_layers::softmax_cross_entropy(&logits, &labels, smoothing, &mut grad);
    cmp.tensor("loss", &[], &[loss], &g.expected("loss")?);
    net.backward(&x, &grad, false);
    let grad_keys: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), format!("grad.{n}")))
        .collect();
    let pairs: Vec<(&str, &str)> = grad_keys
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    compare_param_grads(g, &mut net, &pairs, cmp)?;
    let mut updated = Vec::new();
    net.visit_params("", &mut |name, p| {
        updated.push((
            name.to_string(),
            p.value.shape(),
            sgd.step(p.value.data(), p.grad.data()),
        ));
    });
    for (name, shape, values) in updated {
        let key = format!("updated.{name}");
        cmp.values(&key, shape.dims(), &values, &g.expected(&key)?);
    }
    Ok(())
}
