//! The run's checkpoints: `best` and `last` (weights with their description), and
//! `last.state` (optimizer state and progress) read back by `--resume`.

use super::{Progress, Run};
use crate::checkpoint;
use crate::error::{Error, Result};

impl Run {
    pub(super) fn save_checkpoint(&mut self, stem: &str) -> Result<()> {
        if !self.lead() {
            return Ok(());
        }
        self.meta.epoch = self.progress.epoch;
        self.meta.step = self.progress.step;
        let path = self.dir.join(format!("{stem}.safetensors"));
        checkpoint::save(&path, &mut self.model, &mut self.meta)
    }

    /// Writes `last` (weights) and `last.state` (optimizer state and progress, tied to the
    /// weights by their hash).
    pub(super) fn save_last(&mut self) -> Result<()> {
        if !self.lead() {
            return Ok(());
        }
        self.save_checkpoint("last")?;
        self.progress.weights_sha256 = self.meta.content_sha256.clone();
        let progress = serde_json::to_string(&self.progress).unwrap_or_default();
        self.opt
            .save_state(&self.dir.join("last.state.safetensors"), &progress)
    }

    pub(super) fn restore(&mut self) -> Result<()> {
        let last = self.dir.join("last.safetensors");
        let (meta, model) = checkpoint::load(&last)?;
        if meta.model != self.meta.model {
            return Err(Error(format!(
                "{}: its architecture differs from the run's configuration",
                last.display()
            )));
        }
        self.model = model;
        let state_path = self.dir.join("last.state.safetensors");
        let progress_json = self.opt.load_state(&state_path)?;
        let progress: Progress = serde_json::from_str(&progress_json).map_err(|e| {
            Error(format!(
                "{}: unreadable progress record: {e}",
                state_path.display()
            ))
        })?;
        if progress.weights_sha256 != meta.content_sha256 {
            return Err(Error(format!(
                "{}: belongs to other weights than {} (was the run stopped while saving?)",
                state_path.display(),
                last.display()
            )));
        }
        self.meta.metrics = meta.metrics;
        if self.lead() {
            self.log.truncate_after(progress.epoch)?;
        }
        self.progress = progress;
        self.reporter.note(&format!(
            "resuming {} at epoch {}, step {}",
            self.dir.display(),
            self.progress.epoch + 1,
            self.progress.step
        ));
        Ok(())
    }
}
