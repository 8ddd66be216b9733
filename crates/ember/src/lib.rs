//! # ember
//!
//! The whole image-classification workflow on top of the Ember crates: prepare data, define
//! a CNN (zoo or spec file), train it with periodic validation keeping the best model,
//! evaluate it, persist it and use it for inference — as a library and as the `ember`
//! command line.
//!
//! ```no_run
//! use ember::{TrainConfig, trainer::{train, Output}};
//! let cfg = TrainConfig { epochs: 2, out: "runs/demo".into(), ..TrainConfig::default() };
//! let report = train(&cfg, None, Output::Quiet)?;
//! println!("test accuracy {:.3}", report.test_accuracy);
//! let clf = ember::Classifier::load(&report.run_dir)?;
//! # Ok::<(), ember::Error>(())
//! ```
//!
//! ## Deploying
//!
//! A [`Classifier`] is `Send + Sync`: load it once and predict from every thread (each
//! concurrent prediction runs on a replica of the network, its own scratch):
//!
//! ```no_run
//! use std::sync::Arc;
//! let clf = Arc::new(ember::Classifier::load("runs/latest".as_ref())?);
//! let workers: Vec<_> = ["trouser.png", "boot.png"]
//!     .into_iter()
//!     .map(|file| {
//!         let clf = Arc::clone(&clf);
//!         std::thread::spawn(move || clf.predict_file(file.as_ref()))
//!     })
//!     .collect();
//! for w in workers {
//!     let p = w.join().expect("worker")?;
//!     println!("{} {:.1}%", p.class, 100.0 * p.probabilities[p.index]);
//! }
//! # Ok::<(), ember::Error>(())
//! ```
//!
//! The same model behind HTTP with dynamic batching is [`serve`] (`ember serve`); as an
//! ONNX graph for other runtimes, [`export`] (`ember export --onnx`); weights trained in
//! PyTorch come in through [`import`] (`ember import`).

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod datasets;
pub mod distributed;
pub mod error;
mod evaluate;
pub mod export;
pub mod import;
pub mod info;
pub mod metrics;
pub mod optimizer;
pub mod plot;
pub mod predict;
pub mod serve;
pub mod spec;
pub mod trainer;
pub mod tta;
pub mod whiten;
pub mod zoo;

use std::path::Path;

pub use config::TrainConfig;
pub use error::{Error, Result};
pub use evaluate::{
    EVAL_BATCH, evaluate, evaluate_batched, evaluate_checkpoint, evaluate_checkpoint_with,
    evaluate_with,
};
pub use metrics::Evaluation;
pub use predict::{Classifier, Prediction};
pub use spec::ModelSpec;

/// Resolves `--model`: a zoo name or a spec file. Returns the spec and the zoo name.
pub fn resolve_model(name: &str) -> Result<(ModelSpec, Option<String>)> {
    resolve_model_for(name, None)
}

/// [`resolve_model`] for a dataset of images `input`: a spec file without `input` takes
/// the dataset's.
pub fn resolve_model_for(
    name: &str,
    input: Option<[usize; 3]>,
) -> Result<(ModelSpec, Option<String>)> {
    if let Some(spec) = zoo::get(name) {
        return Ok((spec, Some(name.to_string())));
    }
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error::io_error(path, "cannot read model spec", e))?;
        return Ok((ModelSpec::from_toml_for(&text, name, input)?, None));
    }
    Err(Error(format!(
        "unknown model {name:?}: use one of {:?} or a spec file (*.toml)",
        zoo::NAMES
    )))
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
