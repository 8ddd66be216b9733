//! Replicas of one model trained data-parallel: what a layer needs from the other
//! processes to compute batch statistics over the global batch (synchronised batch norm).

/// Sums buffers element-wise across the replicas of a data-parallel group, in place: on
/// return every replica holds the same sums. Implemented by the trainer's process group
/// (MPI under `mpirun`); a layer only calls it from `forward`/`backward`, on the thread
/// that drives the model, and every replica calls it in the same order.
pub trait ReplicaSum: Send + Sync {
    /// Replaces `values` by its element-wise sum over all replicas.
    fn sum_f64(&self, values: &mut [f64]);

    /// The number of replicas.
    fn replicas(&self) -> usize;
}

/// A group of one: sums are the values themselves. Useful to test the synchronised code
/// paths in a single process.
///
/// ```
/// use ember_layers::replica::{ReplicaSum, Solo};
/// let mut v = [1.0, 2.0];
/// Solo.sum_f64(&mut v);
/// assert_eq!(v, [1.0, 2.0]);
/// assert_eq!(Solo.replicas(), 1);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl ReplicaSum for Solo {
    fn sum_f64(&self, _values: &mut [f64]) {}

    fn replicas(&self) -> usize {
        1
    }
}
