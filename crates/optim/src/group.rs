//! Parameter groups: per-group learning-rate scale and weight decay, matched by name.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::OptimError;

type Predicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
enum Selector {
    Names(HashSet<String>),
    Predicate(Predicate),
}

/// A set of parameters (chosen by name) with their own learning-rate scale and/or weight
/// decay. Add it with [`crate::Optimizer::add_group`].
///
/// Every group that matches a parameter applies: learning-rate scales multiply, and the
/// weight decay of the last matching group that sets one wins (else the optimizer's own).
///
/// ```
/// use ember_optim::{Optimizer, ParamGroup, Sgd};
/// let mut opt = Sgd::new(0.1).momentum(0.9).weight_decay(5e-4);
/// // Biases and norm parameters (Param::decay == false), collected in one visitor pass:
/// opt.add_group(ParamGroup::no_decay(["0.bias", "1.weight"]));
/// // A head trained ten times faster:
/// opt.add_group(ParamGroup::matching(|name| name.starts_with("head.")).lr_scale(10.0));
/// ```
#[derive(Clone)]
pub struct ParamGroup {
    select: Selector,
    lr_scale: f32,
    weight_decay: Option<f32>,
}

impl ParamGroup {
    /// A group of exactly these parameter names (learning-rate scale 1, optimizer's decay).
    pub fn names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ParamGroup {
            select: Selector::Names(names.into_iter().map(Into::into).collect()),
            lr_scale: 1.0,
            weight_decay: None,
        }
    }

    /// A group of the parameters whose name satisfies `predicate`.
    pub fn matching(predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        ParamGroup {
            select: Selector::Predicate(Arc::new(predicate)),
            lr_scale: 1.0,
            weight_decay: None,
        }
    }

    /// These parameters get no weight decay: the one-liner for biases and normalisation
    /// parameters (`Param::decay == false`). Same as `names(names).weight_decay(0.0)`.
    pub fn no_decay<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::names(names).weight_decay(0.0)
    }

    /// Multiplies the optimizer's learning rate for this group (default 1).
    pub fn lr_scale(mut self, scale: f32) -> Self {
        self.lr_scale = scale;
        self
    }

    /// Replaces the optimizer's weight decay for this group.
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// Whether the parameter `name` belongs to this group.
    pub fn contains(&self, name: &str) -> bool {
        match &self.select {
            Selector::Names(set) => set.contains(name),
            Selector::Predicate(p) => p(name),
        }
    }
}

impl fmt::Debug for ParamGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let select = match &self.select {
            Selector::Names(set) => format!("{} names", set.len()),
            Selector::Predicate(_) => "predicate".to_string(),
        };
        f.debug_struct("ParamGroup")
            .field("select", &select)
            .field("lr_scale", &self.lr_scale)
            .field("weight_decay", &self.weight_decay)
            .finish()
    }
}

/// The groups of one optimizer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Groups(Vec<ParamGroup>);

impl Groups {
    pub(crate) fn push(&mut self, group: ParamGroup) {
        self.0.push(group);
    }

    /// The learning rate and weight decay for `name`, given the optimizer's own.
    pub(crate) fn resolve(&self, name: &str, lr: f32, weight_decay: f32) -> (f32, f32) {
        let (mut lr, mut wd) = (lr, weight_decay);
        for g in self.0.iter().filter(|g| g.contains(name)) {
            lr *= g.lr_scale;
            if let Some(d) = g.weight_decay {
                wd = d;
            }
        }
        (lr, wd)
    }

    pub(crate) fn validate(&self, optimizer: &'static str) -> Result<(), OptimError> {
        for (i, g) in self.0.iter().enumerate() {
            if !(g.lr_scale >= 0.0 && g.lr_scale.is_finite()) {
                return Err(invalid(
                    optimizer,
                    format!("group {i}: lr_scale {}", g.lr_scale),
                ));
            }
            if let Some(d) = g.weight_decay
                && !(d >= 0.0 && d.is_finite())
            {
                return Err(invalid(optimizer, format!("group {i}: weight_decay {d}")));
            }
        }
        Ok(())
    }
}

pub(crate) fn invalid(optimizer: &'static str, message: String) -> OptimError {
    OptimError::InvalidHyperParameter { optimizer, message }
}

/// `Ok` when `value` is finite and `>= 0`.
pub(crate) fn non_negative(
    optimizer: &'static str,
    what: &str,
    value: f32,
) -> Result<(), OptimError> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(
            optimizer,
            format!("{what} must be finite and >= 0, got {value}"),
        ))
    }
}
