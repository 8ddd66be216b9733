//! `Sequential`: the container a model is defined with, its parameter names and summary.
