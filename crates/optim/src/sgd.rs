//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay,
//! exactly PyTorch's `torch.optim.SGD`.

use crate::core::{Core, core_methods};
use crate::group::{invalid, non_negative};
use crate::kernels::{self, SgdStep};
use crate::{OptimError, Optimizer};

/// SGD, PyTorch's update rule: `g += wd·p`; `buf = g` on a parameter's first step, else
/// `buf = μ·buf + (1 − dampening)·g`; `g = g + μ·buf` with Nesterov, else `g = buf`;
/// `p −= lr·g`. Without momentum there is no buffer and `p −= lr·(g + wd·p)`.
///
/// Defaults as PyTorch: momentum 0, dampening 0, no Nesterov, weight decay 0.
#[derive(Clone, Debug)]
pub struct Sgd {
    core: Core,
    momentum: f32,
    dampening: f32,
    nesterov: bool,
}

const NAME: &str = "sgd";

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Sgd {
            core: Core::new(lr, 0.0),
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
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
        self.core.weight_decay = weight_decay;
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

    core_methods!();

    fn validate(&self) -> Result<(), OptimError> {
        self.core.validate(NAME)?;
        non_negative(NAME, "momentum", self.momentum)?;
        non_negative(NAME, "dampening", self.dampening)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                NAME,
                "Nesterov momentum needs momentum > 0 and dampening 0".to_string(),
            ));
        }
        Ok(())
    }

    fn update(&mut self, name: &str, value: &mut [f32], grad: &[f32]) -> Result<(), OptimError> {
        self.validate()?;
        let slots = self.slots().len();
        let (momentum, dampening, nesterov) = (self.momentum, self.dampening, self.nesterov);
        let p = self.core.prepare(name, value, grad, slots)?;
        let k = SgdStep {
            lr: p.lr,
            momentum,
            dampening,
            weight_decay: p.weight_decay,
            nesterov,
            first: p.state.step == 0,
        };
        let buf = p.state.bufs.first_mut().map_or(&mut [][..], |b| &mut b[..]);
        kernels::sgd(value, grad, buf, &k);
        p.state.step += 1;
        Ok(())
    }
}
