//! # ember-optim
//!
//! Optimizers over named flat f32 parameter buffers and their gradients (SGD with momentum
//! and Nesterov, Adam with optional AMSGrad, AdamW), each with exactly PyTorch's update
//! rule; learning-rate [`schedule`]s as pure functions of the step; gradient [`clip`]ping;
//! and state that saves and loads for exact resumption. The optimizer knows nothing about
//! layers: it is handed one parameter at a time, by name.
//!
//! The updates are fused SIMD kernels (one pass reads the parameter, its gradient and its
//! state), split over rayon threads for buffers above 64 K elements.
//!
//! ## Driving it from a training loop
//! ```
//! use ember_optim::{clip, Adam, AdamW, Optimizer, ParamGroup, Schedule, Sgd};
//!
//! // Two named parameters with gradients (in Ember: visited with `visit_params`).
//! let mut params = vec![
//!     ("0.weight".to_string(), vec![0.5f32; 12], vec![0.1f32; 12], true),
//!     ("0.bias".to_string(), vec![0.0f32; 4], vec![0.2f32; 4], false),
//! ];
//! let mut opt: Box<dyn Optimizer> = Box::new(Sgd::new(0.1).momentum(0.9).weight_decay(5e-4));
//! // Or: Box::new(Adam::new(1e-3).betas(0.9, 0.999)), Box::new(AdamW::new(1e-3)).
//! // Exempt parameters with decay == false from weight decay, once at setup:
//! opt.add_group(ParamGroup::no_decay(
//!     params.iter().filter(|p| !p.3).map(|p| p.0.clone()),
//! ));
//! opt.validate().expect("hyper-parameters");
//! let schedule = Schedule::parse("cosine:warmup=2", 0.1, 10).expect("schedule");
//! for step in 0..10 {
//!     // Global-norm clipping: one pass for the norm, one to scale.
//!     let norm_sq: f64 = params.iter().map(|p| clip::grad_norm_sq(&p.2)).sum();
//!     let factor = clip::clip_coefficient(norm_sq, 1.0);
//!     opt.set_lr(schedule.lr(step));
//!     for (name, value, grad, _) in &mut params {
//!         clip::scale_grad(grad, factor);
//!         opt.update(name, value, grad).expect("update");
//!     }
//! }
//! // Checkpoint and resume:
//! let saved = opt.state();
//! let mut resumed = Sgd::new(0.1).momentum(0.9).weight_decay(5e-4);
//! resumed.load_state(saved).expect("matching state");
//! ```

mod adam;
pub mod clip;
mod core;
mod error;
mod group;
mod kernels;
mod lookahead;
pub mod schedule;
mod sgd;
mod state;

pub use adam::{Adam, AdamCore, AdamW};
pub use error::OptimError;
pub use group::ParamGroup;
pub use lookahead::Lookahead;
pub use schedule::{OneCycle, Schedule, ScheduleError, ScheduleKind};
pub use sgd::Sgd;
pub use state::OptimizerState;

/// An optimizer over named flat parameter buffers. Object safe: the trainer holds a
/// `Box<dyn Optimizer>`.
///
/// Per training step: [`set_lr`](Optimizer::set_lr) with the schedule's rate, then
/// [`update`](Optimizer::update) each parameter once (in any order; state is kept per
/// name and created on a parameter's first update, and each parameter counts its own
/// steps for bias correction and momentum start-up, as in PyTorch).
pub trait Optimizer: Send {
    /// `"sgd"`, `"adam"` or `"adamw"`; also the tag in [`OptimizerState::optimizer`].
    fn name(&self) -> &'static str;

    /// The base learning rate (groups scale it).
    fn lr(&self) -> f32;

    /// Sets the base learning rate, typically `schedule.lr(step)` before each step.
    fn set_lr(&mut self, lr: f32);

    /// Adds a parameter group (learning-rate scale, weight decay); see [`ParamGroup`].
    fn add_group(&mut self, group: ParamGroup);

    /// Checks the hyper-parameters and groups (`update` checks them too); call it once
    /// after building so that a bad configuration fails before training starts.
    fn validate(&self) -> Result<(), OptimError>;

    /// Applies one step to the parameter `name`: reads `grad`, updates `value` and the
    /// parameter's state in place. Errors (leaving everything untouched) if the lengths
    /// of `value` and `grad` differ, if `value`'s length differs from the one its state
    /// was created with, or if a hyper-parameter is invalid.
    fn update(&mut self, name: &str, value: &mut [f32], grad: &[f32]) -> Result<(), OptimError>;

    /// A copy of the complete state (moments, step counts) for a checkpoint.
    fn state(&self) -> OptimizerState;

    /// Replaces the state with a saved one. Errors if it was saved by another optimizer
    /// kind, lacks a buffer this configuration needs, has unknown entries or buffers of
    /// inconsistent length; the current state is kept on error.
    fn load_state(&mut self, state: OptimizerState) -> Result<(), OptimError>;
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
