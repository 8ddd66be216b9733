//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay,
//! exactly PyTorch's `torch.optim.SGD`.

use crate::group::{Groups, invalid, non_negative};
use crate::kernels::{self, SgdStep};
use crate::state::States;
use crate::{OptimError, Optimizer, OptimizerState, ParamGroup};

/// SGD, PyTorch's update rule: `g += wd·p`; `buf = g` on a parameter's first step, else
/// `buf = μ·buf + (1 − dampening)·g`; `g = g + μ·buf` with Nesterov, else `g = buf`;
/// `p −= lr·g`. Without momentum there is no buffer and `p −= lr·(g + wd·p)`.
///
/// Defaults as PyTorch: momentum 0, dampening 0, no Nesterov, weight decay 0.
#[derive(Clone, Debug)]
pub struct Sgd {
    lr: f32,
    momentum: f32,
    dampening: f32,
    nesterov: bool,
    weight_decay: f32,
    groups: Groups,
    states: States,
}

const NAME: &str = "sgd";

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            groups: Groups::default(),
            states: States::default(),
        }
    }

    /// Momentum factor μ (default 0).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// Dampening of the gradient added to the momentum buffer (default 0).
    pub fn dampening(mut self, dampening: f32) -> Self {
        self.dampening = dampening;
        self
    }

    /// Nesterov momentum (default off; needs momentum > 0 and dampening 0).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// L2 weight decay added to the gradient (default 0).
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    fn slots(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        }
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        NAME
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn add_group(&mut self, group: ParamGroup) {
        self.groups.push(group);
    }

    fn validate(&self) -> Result<(), OptimError> {
        non_negative(NAME, "lr", self.lr)?;
        non_negative(NAME, "momentum", self.momentum)?;
        non_negative(NAME, "dampening", self.dampening)?;
        non_negative(NAME, "weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                NAME,
                "Nesterov momentum needs momentum > 0 and dampening 0".to_string(),
            ));
        }
        self.groups.validate(NAME)
    }

    fn update(&mut self, name: &str, value: &mut [f32], grad: &[f32]) -> Result<(), OptimError> {
        check_grad(name, value, grad)?;
        self.validate()?;
        let (lr, weight_decay) = self.groups.resolve(name, self.lr, self.weight_decay);
        let slots = self.slots().len();
        let st = self.states.entry(name, value.len(), slots)?;
        let k = SgdStep {
            lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay,
            nesterov: self.nesterov,
            first: st.step == 0,
        };
        let buf = st.bufs.first_mut().map_or(&mut [][..], |b| &mut b[..]);
        kernels::sgd(value, grad, buf, &k);
        st.step += 1;
        Ok(())
    }

    fn state(&self) -> OptimizerState {
        self.states.save(NAME, self.slots())
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<(), OptimError> {
        self.states = States::load(state, NAME, self.slots())?;
        Ok(())
    }
}

/// The gradient must be as long as the value.
pub(crate) fn check_grad(name: &str, value: &[f32], grad: &[f32]) -> Result<(), OptimError> {
    if value.len() == grad.len() {
        Ok(())
    } else {
        Err(OptimError::GradLength {
            name: name.to_string(),
            value: value.len(),
            grad: grad.len(),
        })
    }
}
