//! `Residual`: `block(x) + shortcut(x)`.
