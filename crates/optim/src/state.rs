//! Per-parameter optimizer state (moment buffers, step counts) and its saved form.

use std::collections::{BTreeMap, HashMap};

use crate::OptimError;

/// An optimizer's complete state as plain named data, for checkpoints: f32 buffers (stored
/// as tensors) and u64 counters (stored in JSON). Loading it into a fresh optimizer with
/// the same hyper-parameters and continuing gives bit-identical parameters.
///
/// Keys are `"<slot>/<parameter>"`: buffers `exp_avg/0.weight`, `exp_avg_sq/0.weight`,
/// `max_exp_avg_sq/0.weight` (Adam, AdamW, AMSGrad) or `momentum_buffer/0.weight` (SGD with
/// momentum); counters `step/0.weight` (updates applied to that parameter). SGD without
/// momentum has no per-element state and saves only the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// The optimizer that saved it: `"sgd"`, `"adam"` or `"adamw"`.
    pub optimizer: String,
    /// Moment buffers by key.
    pub buffers: BTreeMap<String, Vec<f32>>,
    /// Step counts by key.
    pub counters: BTreeMap<String, u64>,
}

/// One parameter's state.
#[derive(Clone, Debug)]
pub(crate) struct ParamState {
    /// Updates applied so far.
    pub step: u64,
    /// The parameter length, once known (buffer-less SGD learns it on the first update).
    pub len: Option<usize>,
    /// One buffer per slot, in the optimizer's slot order.
    pub bufs: Vec<Vec<f32>>,
}

/// The states of all parameters seen so far, by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct States(HashMap<String, ParamState>);

const STEP: &str = "step";

impl States {
    /// The state of `name`, created (zeroed, step 0) on first use; errors if the
    /// parameter's length changed.
    pub(crate) fn entry(
        &mut self,
        name: &str,
        len: usize,
        slots: usize,
    ) -> Result<&mut ParamState, OptimError> {
        if !self.0.contains_key(name) {
            let fresh = ParamState {
                step: 0,
                len: Some(len),
                bufs: vec![vec![0.0; len]; slots],
            };
            self.0.insert(name.to_string(), fresh);
        }
        let st = self.0.get_mut(name).expect("inserted above");
        match st.len {
            Some(l) if l != len => {
                return Err(OptimError::LengthChanged {
                    name: name.to_string(),
                    state: l,
                    now: len,
                });
            }
            _ => st.len = Some(len),
        }
        debug_assert_eq!(st.bufs.len(), slots, "slot count is fixed per optimizer");
        Ok(st)
    }

    pub(crate) fn save(&self, optimizer: &str, slots: &[&str]) -> OptimizerState {
        let mut out = OptimizerState {
            optimizer: optimizer.to_string(),
            ..Default::default()
        };
        for (name, st) in &self.0 {
            out.counters.insert(format!("{STEP}/{name}"), st.step);
            for (slot, buf) in slots.iter().zip(&st.bufs) {
                out.buffers.insert(format!("{slot}/{name}"), buf.clone());
            }
        }
        out
    }

    /// Rebuilds the states from a saved form; every counter must come with all slot
    /// buffers, of one length, and nothing may be left over.
    pub(crate) fn load(
        mut state: OptimizerState,
        optimizer: &str,
        slots: &[&str],
    ) -> Result<Self, OptimError> {
        if state.optimizer != optimizer {
            return Err(OptimError::WrongOptimizer {
                expected: optimizer.to_string(),
                found: state.optimizer,
            });
        }
        let mut states = HashMap::new();
        for (key, step) in std::mem::take(&mut state.counters) {
            let Some(name) = key.strip_prefix("step/") else {
                return Err(OptimError::UnexpectedEntry { key });
            };
            let mut len = None;
            let mut bufs = Vec::with_capacity(slots.len());
            for slot in slots {
                let bkey = format!("{slot}/{name}");
                let buf = state
                    .buffers
                    .remove(&bkey)
                    .ok_or_else(|| OptimError::MissingBuffer { key: bkey.clone() })?;
                match len {
                    Some(l) if l != buf.len() => {
                        return Err(OptimError::BufferLength {
                            key: bkey,
                            expected: l,
                            found: buf.len(),
                        });
                    }
                    _ => len = Some(buf.len()),
                }
                bufs.push(buf);
            }
            states.insert(name.to_string(), ParamState { step, len, bufs });
        }
        if let Some(key) = state.buffers.into_keys().next() {
            return Err(OptimError::UnexpectedEntry { key });
        }
        Ok(States(states))
    }
}
