//! What every optimizer shares: the base learning rate and weight decay, the parameter
//! groups, the per-parameter state, and the `Optimizer` methods that only pass through.

use crate::group::{Groups, non_negative};
use crate::state::{ParamState, States};
use crate::{OptimError, OptimizerState, ParamGroup};

/// The part of an optimizer that is not its update rule.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    pub(crate) lr: f32,
    pub(crate) weight_decay: f32,
    groups: Groups,
    states: States,
}

/// What one update of one parameter starts from.
pub(crate) struct Prepared<'a> {
    /// The learning rate after the parameter's groups.
    pub(crate) lr: f32,
    /// The weight decay after the parameter's groups.
    pub(crate) weight_decay: f32,
    /// The parameter's state.
    pub(crate) state: &'a mut ParamState,
}

impl Core {
    pub(crate) fn new(lr: f32, weight_decay: f32) -> Self {
        Core {
            lr,
            weight_decay,
            groups: Groups::default(),
            states: States::default(),
        }
    }

    pub(crate) fn add_group(&mut self, group: ParamGroup) {
        self.groups.push(group);
    }

    /// Checks the learning rate, the weight decay and the groups.
    pub(crate) fn validate(&self, optimizer: &'static str) -> Result<(), OptimError> {
        non_negative(optimizer, "lr", self.lr)?;
        non_negative(optimizer, "weight_decay", self.weight_decay)?;
        self.groups.validate(optimizer)
    }

    /// For one update of `name`: checks that the gradient is as long as the value, applies
    /// the parameter's groups to the learning rate and weight decay, and finds (or creates,
    /// with `slots` zeroed buffers) its state.
    pub(crate) fn prepare(
        &mut self,
        name: &str,
        value: &[f32],
        grad: &[f32],
        slots: usize,
    ) -> Result<Prepared<'_>, OptimError> {
        if value.len() != grad.len() {
            return Err(OptimError::GradLength {
                name: name.to_string(),
                value: value.len(),
                grad: grad.len(),
            });
        }
        let (lr, weight_decay) = self.groups.resolve(name, self.lr, self.weight_decay);
        let state = self.states.entry(name, value.len(), slots)?;
        Ok(Prepared {
            lr,
            weight_decay,
            state,
        })
    }

    pub(crate) fn save(&self, optimizer: &'static str, slots: &[&str]) -> OptimizerState {
        self.states.save(optimizer, slots)
    }

    pub(crate) fn load(
        &mut self,
        state: OptimizerState,
        optimizer: &'static str,
        slots: &[&str],
    ) -> Result<(), OptimError> {
        self.states = States::load(state, optimizer, slots)?;
        Ok(())
    }
}

/// The `Optimizer` methods every optimizer implements the same way, through its `core`
/// field and its `slots()` (the names of its per-parameter buffers).
macro_rules! core_methods {
    () => {
        fn lr(&self) -> f32 {
            self.core.lr
        }

        fn set_lr(&mut self, lr: f32) {
            self.core.lr = lr;
        }

        fn add_group(&mut self, group: $crate::ParamGroup) {
            self.core.add_group(group);
        }

        fn state(&self) -> $crate::OptimizerState {
            self.core.save(self.name(), self.slots())
        }

        fn load_state(&mut self, state: $crate::OptimizerState) -> Result<(), $crate::OptimError> {
            self.core.load(state, self.name(), self.slots())
        }
    };
}
pub(crate) use core_methods;
