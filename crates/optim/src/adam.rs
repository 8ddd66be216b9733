//! Adam (with optional AMSGrad) and AdamW, exactly PyTorch's `torch.optim.Adam` and
//! `torch.optim.AdamW`.

use crate::core::{Core, core_methods};
use crate::group::{invalid, non_negative};
use crate::kernels::{self, AdamStep};
use crate::{OptimError, Optimizer};

/// Adam and AdamW share everything but where the weight decay goes; `DECOUPLED` picks.
/// Use the aliases [`Adam`] and [`AdamW`].
///
/// PyTorch's rule, with `t` the parameter's step (from 1):
/// AdamW first `p *= 1 − lr·wd` (Adam instead `g += wd·p`);
/// `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`;
/// with AMSGrad `v̂max = max(v̂max, v)` replaces `v` below;
/// `p −= lr/(1−β1^t) · m / (√v / √(1−β2^t) + eps)`.
#[derive(Clone, Debug)]
pub struct AdamCore<const DECOUPLED: bool> {
    core: Core,
    beta1: f32,
    beta2: f32,
    eps: f32,
    amsgrad: bool,
}

/// Adam with L2 weight decay added to the gradient (`torch.optim.Adam`).
pub type Adam = AdamCore<false>;

/// Adam with decoupled weight decay (`torch.optim.AdamW`).
pub type AdamW = AdamCore<true>;

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's defaults: betas (0.9, 0.999), eps 1e-8,
    /// weight decay 0, no AMSGrad.
    pub fn new(lr: f32) -> Self {
        Self::with_decay(lr, 0.0)
    }
}

impl AdamW {
    /// AdamW with learning rate `lr` and PyTorch's defaults: betas (0.9, 0.999), eps 1e-8,
    /// weight decay 0.01, no AMSGrad.
    pub fn new(lr: f32) -> Self {
        Self::with_decay(lr, 0.01)
    }
}

impl<const DECOUPLED: bool> AdamCore<DECOUPLED> {
    fn with_decay(lr: f32, weight_decay: f32) -> Self {
        AdamCore {
            core: Core::new(lr, weight_decay),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            amsgrad: false,
        }
    }

    /// Decay rates of the first and second moments (default 0.9, 0.999).
    pub fn betas(mut self, beta1: f32, beta2: f32) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Added to the denominator for stability (default 1e-8).
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// Weight decay: L2 on the gradient for Adam, decoupled for AdamW.
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.core.weight_decay = weight_decay;
        self
    }

    /// Use the maximum of past second moments (AMSGrad; default off).
    pub fn amsgrad(mut self, amsgrad: bool) -> Self {
        self.amsgrad = amsgrad;
        self
    }

    fn slots(&self) -> &'static [&'static str] {
        if self.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        }
    }
}

impl<const DECOUPLED: bool> Optimizer for AdamCore<DECOUPLED> {
    fn name(&self) -> &'static str {
        if DECOUPLED { "adamw" } else { "adam" }
    }

    core_methods!();

    fn validate(&self) -> Result<(), OptimError> {
        let name = self.name();
        self.core.validate(name)?;
        non_negative(name, "eps", self.eps)?;
        for (what, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(invalid(
                    name,
                    format!("{what} must be in [0, 1), got {beta}"),
                ));
            }
        }
        Ok(())
    }

    fn update(&mut self, name: &str, value: &mut [f32], grad: &[f32]) -> Result<(), OptimError> {
        self.validate()?;
        let slots = self.slots().len();
        let betas_eps = (self.beta1, self.beta2, self.eps);
        let p = self.core.prepare(name, value, grad, slots)?;
        let step = p.state.step + 1;
        let k = step_scalars(DECOUPLED, betas_eps, p.lr, p.weight_decay, step);
        let (m, rest) = p.state.bufs.split_first_mut().expect("exp_avg slot");
        let (v, rest) = rest.split_first_mut().expect("exp_avg_sq slot");
        let vmax = rest.first_mut().map_or(&mut [][..], |b| &mut b[..]);
        kernels::adam(value, grad, kernels::Moments { m, v, vmax }, &k);
        p.state.step = step;
        Ok(())
    }
}

/// The kernel's scalars for a parameter's step `t` (from 1), in f64 rounded once.
fn step_scalars(
    decoupled: bool,
    (beta1, beta2, eps): (f32, f32, f32),
    lr: f32,
    weight_decay: f32,
    t: u64,
) -> AdamStep {
    let (lr64, wd64) = (f64::from(lr), f64::from(weight_decay));
    let (b1, b2) = (f64::from(beta1), f64::from(beta2));
    let t = t as f64;
    let bias_correction1 = 1.0 - b1.powf(t);
    let bias_correction2 = 1.0 - b2.powf(t);
    let (decay_factor, coupled) = if decoupled {
        ((1.0 - lr64 * wd64) as f32, 0.0)
    } else {
        (1.0, weight_decay)
    };
    AdamStep {
        decay_factor,
        weight_decay: coupled,
        one_minus_beta1: (1.0 - b1) as f32,
        beta2,
        one_minus_beta2: (1.0 - b2) as f32,
        bias_correction2_sqrt: bias_correction2.sqrt() as f32,
        step_size: (lr64 / bias_correction1) as f32,
        eps,
    }
}
