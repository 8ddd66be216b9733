//! The ranks of an MPI job (`mpirun -n N ember …`) as a [`Group`], with a watchdog that
//! ends the job when a collective waits longer than a timeout: MPI ends the job when a
//! rank dies, but a rank that hangs would hang all the others.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ember_layers::replica::ReplicaSum;
use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::Group;
use crate::error::{Error, Result};

/// `MPI_COMM_WORLD` of the job this process was started in. Holds no MPI handle itself
/// (the world communicator is fetched per call), so it is `Send + Sync` whatever MPI
/// library it is built against; MPI is initialised for calls from any one thread at a time,
/// which is how the trainer calls it.
pub struct MpiGroup {
    rank: usize,
    size: usize,
    scratch_f32: Mutex<Vec<f32>>,
    scratch_f64: Mutex<Vec<f64>>,
    watchdog: Arc<Watchdog>,
    /// Finalises MPI when dropped (last, after the fields above).
    _universe: Universe,
}

impl MpiGroup {
    /// Initialises MPI; collectives that wait more than `timeout_s` seconds end the job.
    pub fn join(timeout_s: f64) -> Result<MpiGroup> {
        let (universe, provided) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::msg("MPI is already initialised in this process"))?;
        if matches!(provided, Threading::Single | Threading::Funneled) {
            return Err(Error(format!(
                "the MPI library offers thread level {provided:?}; ember needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        if !(timeout_s > 0.0 && timeout_s.is_finite()) {
            return Err(Error(format!(
                "--collective-timeout {timeout_s} must be a positive number of seconds"
            )));
        }
        let watchdog = Watchdog::start(rank, size, Duration::from_secs_f64(timeout_s));
        Ok(MpiGroup {
            rank,
            size,
            scratch_f32: Mutex::new(Vec::new()),
            scratch_f64: Mutex::new(Vec::new()),
            watchdog,
            _universe: universe,
        })
    }

    fn world() -> SimpleCommunicator {
        SimpleCommunicator::world()
    }

    /// Sums `values` across the ranks in place (MPI wants distinct send and receive
    /// buffers: the send side is a copy in `scratch`).
    fn sum_in_place<T: Equivalence + Copy>(
        &self,
        what: &'static str,
        scratch: &Mutex<Vec<T>>,
        values: &mut [T],
    ) {
        let _armed = self.watchdog.arm(what);
        let mut send = scratch.lock().unwrap_or_else(|e| e.into_inner());
        send.clear();
        send.extend_from_slice(values);
        Self::world().all_reduce_into(&send[..], values, SystemOperation::sum());
    }
}

impl ReplicaSum for MpiGroup {
    fn sum_f64(&self, values: &mut [f64]) {
        self.sum_in_place("allreduce (batch statistics)", &self.scratch_f64, values);
    }

    fn replicas(&self) -> usize {
        self.size
    }
}

impl Group for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum_f32(&self, values: &mut [f32]) {
        self.sum_in_place("allreduce", &self.scratch_f32, values);
    }

    fn broadcast_f32(&self, values: &mut [f32]) {
        let _armed = self.watchdog.arm("broadcast from rank 0");
        Self::world().process_at_rank(0).broadcast_into(values);
    }

    fn abort(&self, message: &str, code: i32) -> ! {
        eprintln!("{message}");
        // MPI_Abort kills the job at once; give the launcher a moment to forward the
        // message first (under load it was lost: the job ended with only MPICH's notice).
        std::thread::sleep(Duration::from_millis(300));
        Self::world().abort(code)
    }
}

/// Watches the collective in progress, if any, from a thread of its own.
struct Watchdog {
    rank: usize,
    size: usize,
    timeout: Duration,
    armed: Mutex<Option<(Instant, &'static str)>>,
}

/// Disarms the watchdog when the collective returns.
struct Armed<'a>(&'a Watchdog);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        *self.0.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Watchdog {
    fn start(rank: usize, size: usize, timeout: Duration) -> Arc<Watchdog> {
        let dog = Arc::new(Watchdog {
            rank,
            size,
            timeout,
            armed: Mutex::new(None),
        });
        let watched = Arc::clone(&dog);
        let tick = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let spawned = std::thread::Builder::new()
            .name("ember-mpi-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    watched.check();
                }
            });
        if let Err(e) = spawned {
            eprintln!("warning: no collective timeout (cannot start its thread: {e})");
        }
        dog
    }

    fn arm(&self, what: &'static str) -> Armed<'_> {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), what));
        Armed(self)
    }

    /// Ends this process when the armed collective is overdue. The MPI launcher then ends
    /// the other ranks (a rank that exits without finalising fails the job).
    fn check(&self) {
        let armed = *self.armed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((since, what)) = armed
            && since.elapsed() > self.timeout
        {
            eprintln!(
                "ember: rank {} of {}: an MPI {what} has waited {:.0} s for the other ranks \
                 (--collective-timeout): a rank has died or hangs; ending the job",
                self.rank,
                self.size,
                since.elapsed().as_secs_f64()
            );
            std::process::exit(75);
        }
    }
}
