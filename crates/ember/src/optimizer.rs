//! The trainer's side of the optimizer: build it from the configuration, drive it once per
//! step over the model's parameters (schedule, clipping, update), and save/load its state
//! next to the last checkpoint.

use std::collections::HashMap;
use std::path::Path;

use ember_layers::{Layer, Sequential};
use ember_optim::{Adam, AdamW, Optimizer, OptimizerState, ParamGroup, Schedule, Sgd, clip};

use crate::checkpoint::{self, StoredTensor, TensorData, TensorMap};
use crate::config::TrainConfig;
use crate::error::{Error, Result};

/// An optimizer with its learning-rate schedule, clipping setting and frozen parameters.
pub struct TrainOptimizer {
    opt: Box<dyn Optimizer>,
    schedule: Schedule,
    clip_norm: f32,
    frozen: Vec<String>,
}

/// True if parameter `name` lies under `prefix`: the name itself, or a name that goes on
/// with `.` after it (`3` covers `3.weight` but not `30.weight`; `3.` covers both forms).
pub fn under_prefix(name: &str, prefix: &str) -> bool {
    name == prefix
        || (prefix.ends_with('.') && name.starts_with(prefix))
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

impl TrainOptimizer {
    /// Builds the optimizer `cfg` names, exempting biases and normalisation parameters
    /// (`Param::decay == false`) from weight decay.
    pub fn new(cfg: &TrainConfig, model: &mut Sequential, total_steps: u64) -> Result<Self> {
        let mut opt: Box<dyn Optimizer> = match cfg.optimizer.as_str() {
            "sgd" => Box::new(
                Sgd::new(cfg.lr)
                    .momentum(cfg.momentum)
                    .nesterov(cfg.nesterov && cfg.momentum > 0.0)
                    .weight_decay(cfg.weight_decay),
            ),
            "adam" => Box::new(Adam::new(cfg.lr).weight_decay(cfg.weight_decay)),
            "adamw" => Box::new(AdamW::new(cfg.lr).weight_decay(cfg.weight_decay)),
            other => {
                return Err(Error(format!(
                    "--optimizer: unknown optimizer {other:?} (use sgd, adam or adamw)"
                )));
            }
        };
        let mut no_decay = Vec::new();
        model.visit_params("", &mut |name, p| {
            if !p.decay {
                no_decay.push(name.to_string());
            }
        });
        opt.add_group(ParamGroup::no_decay(no_decay));
        opt.validate()
            .map_err(|e| Error(format!("--optimizer {}: {e}", cfg.optimizer)))?;
        let schedule = Schedule::parse(&cfg.schedule, cfg.lr, total_steps.max(1))
            .map_err(|e| Error(format!("--schedule: {e}")))?;
        if !(cfg.clip_norm >= 0.0 && cfg.clip_norm.is_finite()) {
            return Err(Error(format!(
                "--clip-norm {} must be a finite number >= 0",
                cfg.clip_norm
            )));
        }
        Ok(TrainOptimizer {
            opt,
            schedule,
            clip_norm: cfg.clip_norm,
            frozen: cfg.freeze.clone(),
        })
    }

    /// Plain SGD with momentum and a constant rate (the benchmark settings).
    pub fn sgd(lr: f32, momentum: f32) -> Result<Self> {
        let schedule = Schedule::parse("constant", lr, 1).map_err(|e| Error(e.to_string()))?;
        Ok(TrainOptimizer {
            opt: Box::new(Sgd::new(lr).momentum(momentum)),
            schedule,
            clip_norm: 0.0,
            frozen: Vec::new(),
        })
    }

    /// The learning rate of update number `step`.
    pub fn lr(&self, step: u64) -> f32 {
        self.schedule.lr(step)
    }

    /// One optimizer step over every parameter that is not frozen: scheduled rate,
    /// optional global-norm clipping, update. Returns the rate used.
    pub fn step(&mut self, model: &mut Sequential, step: u64) -> Result<f32> {
        let lr = self.schedule.lr(step);
        self.opt.set_lr(lr);
        let frozen = &self.frozen;
        let is_frozen = |name: &str| frozen.iter().any(|p| under_prefix(name, p));
        let mut factor = 1.0;
        if self.clip_norm > 0.0 {
            let mut norm_sq = 0.0f64;
            model.visit_params("", &mut |name, p| {
                if !is_frozen(name) {
                    norm_sq += clip::grad_norm_sq(p.grad.data());
                }
            });
            factor = clip::clip_coefficient(norm_sq, self.clip_norm);
        }
        let opt = &mut self.opt;
        let mut err = None;
        model.visit_params("", &mut |name, p| {
            if err.is_some() || is_frozen(name) {
                return;
            }
            if factor != 1.0 {
                clip::scale_grad(p.grad.data_mut(), factor);
            }
            if let Err(e) = opt.update(name, p.value.data_mut(), p.grad.data()) {
                err = Some(e);
            }
        });
        match err {
            Some(e) => Err(Error(format!("optimizer step {step}: {e}"))),
            None => Ok(lr),
        }
    }

    /// Writes the optimizer state and a progress record (JSON) as one safetensors file.
    pub fn save_state(&self, path: &Path, progress_json: &str) -> Result<()> {
        checkpoint::write_atomic(path, &self.encode_state(path, progress_json)?)
    }

    /// The bytes [`save_state`](Self::save_state) writes; `path` names the file in errors.
    pub fn encode_state(&self, path: &Path, progress_json: &str) -> Result<Vec<u8>> {
        let state = self.opt.state();
        let tensors: TensorMap = state
            .buffers
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    StoredTensor {
                        shape: vec![v.len()],
                        data: TensorData::F32(v),
                    },
                )
            })
            .collect();
        let mut md = HashMap::new();
        md.insert("optimizer".into(), state.optimizer);
        md.insert(
            "counters".into(),
            serde_json::to_string(&state.counters).unwrap_or_default(),
        );
        md.insert("progress".into(), progress_json.to_string());
        checkpoint::encode_safetensors(path, &tensors, md)
    }

    /// The progress JSON of a state written by [`save_state`](Self::save_state), without
    /// loading the optimizer state.
    pub fn read_progress(path: &Path) -> Result<String> {
        let (_, md) = checkpoint::read_safetensors(path)?;
        md.get("progress").cloned().ok_or_else(|| {
            Error(format!(
                "{}: no \"progress\" entry; not an Ember training state",
                path.display()
            ))
        })
    }

    /// Loads a state written by [`save_state`](Self::save_state); returns its progress JSON.
    pub fn load_state(&mut self, path: &Path) -> Result<String> {
        let (tensors, md) = checkpoint::read_safetensors(path)?;
        let get = |k: &str| {
            md.get(k).cloned().ok_or_else(|| {
                Error(format!(
                    "{}: no {k:?} entry; not an Ember training state",
                    path.display()
                ))
            })
        };
        let counters = serde_json::from_str(&get("counters")?)
            .map_err(|e| Error(format!("{}: unreadable counters: {e}", path.display())))?;
        let state = OptimizerState {
            optimizer: get("optimizer")?,
            buffers: tensors.into_iter().map(|(k, t)| (k, t.to_f32())).collect(),
            counters,
        };
        self.opt
            .load_state(state)
            .map_err(|e| Error(format!("{}: {e}", path.display())))?;
        get("progress")
    }
}
