//! The trainer's side of the optimizer: build it from the configuration, drive it once per
//! step over the model's parameters (schedule, clipping, update), and save/load its state
//! next to the last checkpoint.

use std::collections::HashMap;
use std::path::Path;

use ember_layers::{Layer, Sequential};
use ember_optim::{
    Adam, AdamW, Lookahead, Optimizer, OptimizerState, ParamGroup, Schedule, Sgd, clip,
};

use crate::checkpoint::{self, StoredTensor, TensorData, TensorMap};
use crate::config::TrainConfig;
use crate::error::{Error, Result};

/// An optimizer with its learning-rate schedule, clipping setting, frozen parameters and
/// optional lookahead.
pub struct TrainOptimizer {
    opt: Box<dyn Optimizer>,
    schedule: Schedule,
    clip_norm: f32,
    frozen: Vec<String>,
    lookahead: Option<Lookahead>,
    total_steps: u64,
}

/// The key prefix of the lookahead's slow weights in a saved state.
const LOOKAHEAD_KEY: &str = "lookahead/";

/// What the model adds to the configuration's optimizer settings.
#[derive(Clone, Debug, Default)]
pub struct ModelParams {
    /// Parameters that keep their initial values (the spec's `fixed`).
    pub fixed: Vec<String>,
    /// Batch-norm parameters (for `--norm-lr-scale`).
    pub norm: Vec<String>,
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
    /// (`Param::decay == false`) from weight decay, holding `params.fixed` fixed and giving
    /// `params.norm` the `--norm-lr-scale`.
    pub fn new(
        cfg: &TrainConfig,
        model: &mut Sequential,
        total_steps: u64,
        params: &ModelParams,
    ) -> Result<Self> {
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
        if cfg.norm_lr_scale != 1.0 {
            let scale = cfg.norm_lr_scale;
            opt.add_group(
                ParamGroup::names(params.norm.iter().cloned())
                    .lr_scale(scale)
                    .weight_decay(cfg.weight_decay / scale),
            );
        }
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
        let lookahead = match cfg.lookahead {
            0 => None,
            every => Some(
                Lookahead::new(every, cfg.lookahead_alpha)
                    .map_err(|e| Error(format!("--lookahead: {e}")))?,
            ),
        };
        Ok(TrainOptimizer {
            opt,
            schedule,
            clip_norm: cfg.clip_norm,
            frozen: cfg.freeze.iter().chain(&params.fixed).cloned().collect(),
            lookahead,
            total_steps,
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
            lookahead: None,
            total_steps: 1,
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
        if let Some(e) = err {
            return Err(Error(format!("optimizer step {step}: {e}")));
        }
        if let Some(la) = self.lookahead.as_mut()
            && let Some(decay) = la.decay_after(step + 1, self.total_steps)
        {
            // The weights and the batch-norm statistics, as a state_dict holds them.
            model.visit_params("", &mut |name, p| {
                la.update(name, p.value.data_mut(), decay)
            });
            model.visit_buffers("", &mut |name, t| {
                if !name.ends_with("num_batches_tracked") {
                    la.update(name, t.data_mut(), decay);
                }
            });
        }
        Ok(lr)
    }

    /// Writes the optimizer state and a progress record (JSON) as one safetensors file.
    pub fn save_state(&self, path: &Path, progress_json: &str) -> Result<()> {
        checkpoint::write_atomic(path, &self.encode_state(path, progress_json)?)
    }

    /// The bytes [`save_state`](Self::save_state) writes; `path` names the file in errors.
    pub fn encode_state(&self, path: &Path, progress_json: &str) -> Result<Vec<u8>> {
        let state = self.opt.state();
        let slow = self.lookahead.iter().flat_map(|la| la.state());
        let slow = slow.map(|(k, v)| (format!("{LOOKAHEAD_KEY}{k}"), v.clone()));
        let tensors: TensorMap = state
            .buffers
            .into_iter()
            .chain(slow)
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
        let (slow, buffers): (Vec<_>, Vec<_>) = tensors
            .into_iter()
            .map(|(k, t)| (k, t.to_f32()))
            .partition(|(k, _)| k.starts_with(LOOKAHEAD_KEY));
        match self.lookahead.as_mut() {
            Some(la) => la.load_state(
                slow.into_iter()
                    .map(|(k, v)| (k[LOOKAHEAD_KEY.len()..].to_string(), v))
                    .collect(),
            ),
            None if !slow.is_empty() => {
                return Err(Error(format!(
                    "{}: holds lookahead weights, but the run has no --lookahead",
                    path.display()
                )));
            }
            None => {}
        }
        let state = OptimizerState {
            optimizer: get("optimizer")?,
            buffers: buffers.into_iter().collect(),
            counters,
        };
        self.opt
            .load_state(state)
            .map_err(|e| Error(format!("{}: {e}", path.display())))?;
        get("progress")
    }
}
