//! Element-wise activations: `ReLU`, `LeakyReLU`.
