//! The golden runner for `optimizer` trajectories, on ember-optim.

use ember_optim::{Adam, AdamW, Optimizer, Sgd};
use serde_json::Value;

use super::compare::Comparison;
use super::json::Golden;

fn number(g: &Golden, key: &str, default: f64) -> Result<f64, String> {
    if g.has_param(key) {
        g.f64(key)
    } else {
        Ok(default)
    }
}

fn flag(g: &Golden, key: &str) -> Result<bool, String> {
    if g.has_param(key) {
        g.bool(key)
    } else {
        Ok(false)
    }
}

/// The optimizer `params` describe, with PyTorch's defaults for keys left out.
fn build(g: &Golden) -> Result<Box<dyn Optimizer>, String> {
    let lr = g.f64("lr")? as f32;
    let wd = |default| number(g, "weight_decay", default).map(|v| v as f32);
    let opt: Box<dyn Optimizer> = match g.str("optimizer")? {
        "sgd" => Box::new(
            Sgd::new(lr)
                .momentum(number(g, "momentum", 0.0)? as f32)
                .dampening(number(g, "dampening", 0.0)? as f32)
                .nesterov(flag(g, "nesterov")?)
                .weight_decay(wd(0.0)?),
        ),
        kind @ ("adam" | "adamw") => {
            let (b1, b2) = if g.has_param("betas") {
                let Value::Array(b) = g.raw("betas")? else {
                    return Err("params.betas is not a list".into());
                };
                match b.as_slice() {
                    [Value::Number(a), Value::Number(c)] => (
                        a.as_f64().unwrap_or(f64::NAN) as f32,
                        c.as_f64().unwrap_or(f64::NAN) as f32,
                    ),
                    _ => return Err("params.betas is not a pair of numbers".into()),
                }
            } else {
                (0.9, 0.999)
            };
            let eps = number(g, "eps", 1e-8)? as f32;
            let amsgrad = flag(g, "amsgrad")?;
            if kind == "adam" {
                Box::new(
                    Adam::new(lr)
                        .betas(b1, b2)
                        .eps(eps)
                        .weight_decay(wd(0.0)?)
                        .amsgrad(amsgrad),
                )
            } else {
                Box::new(
                    AdamW::new(lr)
                        .betas(b1, b2)
                        .eps(eps)
                        .weight_decay(wd(0.01)?)
                        .amsgrad(amsgrad),
                )
            }
        }
        other => {
            return Err(format!(
                "params.optimizer {other:?} is not sgd, adam or adamw"
            ));
        }
    };
    opt.validate().map_err(|e| format!("params: {e}"))?;
    Ok(opt)
}

/// `optimizer`: feeds `grad.<p>[t]` for each step `t` and compares the parameters after
/// every step with `expected.<p>[t]`.
pub fn optimizer(g: &Golden, cmp: &mut Comparison) -> Result<(), String> {
    let steps = g.usize("steps")?;
    let Value::Array(order) = g.raw("param_order")? else {
        return Err("params.param_order is not a list".into());
    };
    let names = order
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("params.param_order[{i}] is not a string"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut opt = build(g)?;
    let mut params = Vec::new();
    for name in &names {
        let init = g.input(name)?;
        let grads = g.input(&format!("grad.{name}"))?;
        let want = g.expected(name)?;
        let traj: Vec<usize> = std::iter::once(steps)
            .chain(init.shape.iter().copied())
            .collect();
        for (what, t) in [
            (format!("inputs.grad.{name}"), &grads),
            (format!("expected.{name}"), &want),
        ] {
            if t.shape != traj {
                return Err(format!(
                    "{what} has shape {:?}, expected {traj:?} (steps, then the parameter's shape)",
                    t.shape
                ));
            }
        }
        params.push((
            name.clone(),
            init.f32s(),
            grads.f32s(),
            want,
            Vec::with_capacity(traj.iter().product()),
        ));
    }
    for t in 0..steps {
        for (name, value, grads, _, trajectory) in &mut params {
            let n = value.len();
            opt.update(name, value, &grads[t * n..(t + 1) * n])
                .map_err(|e| format!("step {t}, {name}: {e}"))?;
            trajectory.extend_from_slice(value);
        }
    }
    for (name, _, _, want, trajectory) in &params {
        cmp.tensor(name, &want.shape, trajectory, want);
    }
    Ok(())
}
