//! Seeded `Dropout` (identity in eval mode).
