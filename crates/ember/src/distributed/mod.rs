//! Data-parallel training across processes: the process group the trainer sums gradients
//! and statistics through, one process ([`Solo`]) or the ranks of an MPI job
//! (`MpiGroup`, with the `mpi` feature).
//!
//! Every rank runs the same trainer on its shard of each epoch; the group makes them agree:
//! weights broadcast from rank 0 at the start, gradients averaged every step, evaluation
//! counts summed. Rank 0 alone writes files and prints progress.

use std::sync::Arc;

use ember_layers::replica::ReplicaSum;
pub use ember_layers::replica::Solo;
use ember_layers::{Layer, Param, Sequential};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

#[cfg(feature = "mpi")]
mod mpi_group;
pub mod scaling;

#[cfg(feature = "mpi")]
pub use mpi_group::MpiGroup;

/// The processes of one data-parallel job. Every method is collective: all ranks call it,
/// in the same order, with buffers of the same length.
pub trait Group: ReplicaSum {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;

    /// The number of processes.
    fn size(&self) -> usize;

    /// Replaces `values` by its element-wise sum over all ranks.
    fn sum_f32(&self, values: &mut [f32]);

    /// Replaces `values` on every rank by rank 0's.
    fn broadcast_f32(&self, values: &mut [f32]);

    /// Ends the whole job (every rank) with `code`, after `message` on stderr.
    fn abort(&self, message: &str, code: i32) -> !;
}

/// A job of one process: sums and broadcasts leave the values as they are.
impl Group for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn sum_f32(&self, _values: &mut [f32]) {}

    fn broadcast_f32(&self, _values: &mut [f32]) {}

    fn abort(&self, message: &str, code: i32) -> ! {
        eprintln!("{message}");
        std::process::exit(code)
    }
}

/// Joins the MPI job this process was started in (`mpirun -n N ember …`); collectives give
/// up after `timeout_s` seconds. Fails clearly in a build without the `mpi` feature.
pub fn join_mpi(timeout_s: f64) -> Result<Arc<dyn Group>> {
    #[cfg(feature = "mpi")]
    {
        Ok(Arc::new(MpiGroup::join(timeout_s)?))
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = timeout_s;
        Err(Error::msg(
            "--distributed needs ember built with the `mpi` feature (an MPI library such as \
             MPICH and libclang installed, then `cargo build --release -p ember --features mpi`)",
        ))
    }
}

/// The number of trainable values of a model (the length of its flat gradient).
pub fn param_count(model: &mut Sequential) -> usize {
    let mut n = 0;
    model.visit_params("", &mut |_, p: &mut Param| n += p.value.len());
    n
}

/// Averages every parameter gradient over the group and sums `extras` (per-step figures
/// that travel with them) in the same allreduce; returns the summed extras. `flat` is the
/// caller's buffer, kept between steps so that a step allocates nothing. In one process the
/// gradients are left as they are.
pub fn average_grads<'a>(
    group: &dyn Group,
    model: &mut Sequential,
    flat: &'a mut Vec<f32>,
    extras: &[f32],
) -> &'a [f32] {
    let np = if group.size() == 1 {
        0
    } else {
        param_count(model)
    };
    flat.resize(np + extras.len(), 0.0);
    flat[np..].copy_from_slice(extras);
    if np > 0 {
        pack_grads(model, &mut flat[..np]);
        group.sum_f32(flat);
        unpack_grads(model, &flat[..np], 1.0 / group.size() as f32);
    }
    &flat[np..]
}

/// Copies every parameter gradient into `flat` (in `visit_params` order) from offset 0.
fn pack_grads(model: &mut Sequential, flat: &mut [f32]) {
    let mut at = 0;
    model.visit_params("", &mut |_, p: &mut Param| {
        let g = p.grad.data();
        flat[at..at + g.len()].copy_from_slice(g);
        at += g.len();
    });
}

/// Sets every parameter gradient from `flat` times `scale` (the inverse of [`pack_grads`]).
fn unpack_grads(model: &mut Sequential, flat: &[f32], scale: f32) {
    let mut at = 0;
    model.visit_params("", &mut |_, p: &mut Param| {
        let g = p.grad.data_mut();
        let n = g.len();
        for (d, s) in g.iter_mut().zip(&flat[at..at + n]) {
            *d = s * scale;
        }
        at += n;
    });
}

/// Makes every rank's weights and buffers (batch-norm statistics) rank 0's.
pub fn broadcast_model(group: &dyn Group, model: &mut Sequential) {
    if group.size() == 1 {
        return;
    }
    let mut flat = Vec::new();
    model.visit_params("", &mut |_, p: &mut Param| {
        flat.extend_from_slice(p.value.data())
    });
    model.visit_buffers("", &mut |_, t| flat.extend_from_slice(t.data()));
    group.broadcast_f32(&mut flat);
    let mut at = 0;
    let mut take = |dst: &mut [f32]| {
        dst.copy_from_slice(&flat[at..at + dst.len()]);
        at += dst.len();
    };
    model.visit_params("", &mut |_, p: &mut Param| take(p.value.data_mut()));
    model.visit_buffers("", &mut |_, t| take(t.data_mut()));
}

/// Checks that every rank holds the same `text` (its configuration, say): a job started
/// with different arguments on different ranks fails on every rank instead of diverging or
/// hanging. The ranks compare 66 bits of the text's SHA-256.
pub fn check_agree(group: &dyn Group, what: &str, text: &str) -> Result<()> {
    if group.size() == 1 {
        return Ok(());
    }
    let digest = Sha256::digest(text.as_bytes());
    let fingerprint = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
    // Three 22-bit pieces: exact in f32.
    let piece = |i: u32| ((fingerprint >> (22 * i)) & 0x3f_ffff) as f32;
    let mine = [piece(0), piece(1), piece(2)];
    let mut root = mine;
    group.broadcast_f32(&mut root);
    let mut disagree = [f32::from(u8::from(root != mine))];
    group.sum_f32(&mut disagree);
    if disagree[0] > 0.0 {
        return Err(Error(format!(
            "{} of the {} ranks disagree with rank 0 on {what}; start every rank with the same arguments",
            disagree[0],
            group.size()
        )));
    }
    Ok(())
}
