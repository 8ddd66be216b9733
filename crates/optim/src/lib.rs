//! # ember-optim
//!
//! Optimizers over named flat f32 parameter buffers and their gradients (SGD with momentum
//! and Nesterov, Adam, AdamW), learning-rate schedules and gradient clipping. The optimizer
//! knows nothing about layers.
//!
//! Work in progress: the optimizers land with the optim issue.
