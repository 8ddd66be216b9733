//! `BatchNorm2d` with running statistics.
