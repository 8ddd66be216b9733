//! # ember-data
//!
//! Image datasets on disk and in memory: CIFAR-10/100 (binary and python), IDX (MNIST,
//! Fashion-MNIST) and image folders; augmentation; a parallel, shuffled, seeded loader.
//!
//! Work in progress: the readers land with the data issue.
