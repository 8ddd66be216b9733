//! Wall time per layer of a [`Sequential`](crate::Sequential): what a profiler's per-operator
//! table shows, kept by the container itself so that it costs nothing when off (one branch
//! per layer per pass) and needs no tool.

use std::time::{Duration, Instant};

/// Forward and backward wall time of one top-level layer, summed over the passes since
/// timing was switched on ([`Sequential::set_timing`](crate::Sequential::set_timing)).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTime {
    /// The layer's index in the container.
    pub index: usize,
    /// What the layer is ([`Layer::describe`](crate::Layer::describe)).
    pub layer: String,
    /// Time in `forward`.
    pub forward: Duration,
    /// Time in `backward`.
    pub backward: Duration,
    /// Forward passes timed.
    pub forward_calls: u64,
    /// Backward passes timed.
    pub backward_calls: u64,
}

/// The running sums of a container's layers: `[forward, backward]` per layer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timer {
    sums: Vec<[(Duration, u64); 2]>,
}

/// Which pass a time belongs to.
#[derive(Clone, Copy)]
pub(crate) enum Pass {
    Forward = 0,
    Backward = 1,
}

impl Timer {
    /// Runs `f` and adds its wall time to layer `i`'s `pass`.
    pub(crate) fn time<R>(&mut self, i: usize, pass: Pass, f: impl FnOnce() -> R) -> R {
        let t0 = Instant::now();
        let r = f();
        if self.sums.len() <= i {
            self.sums.resize(i + 1, Default::default());
        }
        let (sum, calls) = &mut self.sums[i][pass as usize];
        *sum += t0.elapsed();
        *calls += 1;
        r
    }

    /// The sums, one row per layer index below `layers` (zero for layers not yet run),
    /// described by `describe`.
    pub(crate) fn rows(&self, layers: usize, describe: impl Fn(usize) -> String) -> Vec<LayerTime> {
        (0..layers)
            .map(|i| {
                let [f, b] = self.sums.get(i).copied().unwrap_or_default();
                LayerTime {
                    index: i,
                    layer: describe(i),
                    forward: f.0,
                    backward: b.0,
                    forward_calls: f.1,
                    backward_calls: b.1,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pass's time and calls go to its own layer and pass; layers never run read zero.
    #[test]
    fn sums_per_layer_and_pass() {
        let mut t = Timer::default();
        let sleep = || std::thread::sleep(Duration::from_millis(2));
        t.time(1, Pass::Forward, sleep);
        t.time(1, Pass::Forward, sleep);
        t.time(0, Pass::Backward, sleep);
        let rows = t.rows(3, |i| format!("layer {i}"));
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[1].forward_calls, rows[1].backward_calls), (2, 0));
        assert!(rows[1].forward >= Duration::from_millis(4));
        assert_eq!(rows[1].backward, Duration::ZERO);
        assert_eq!((rows[0].forward_calls, rows[0].backward_calls), (0, 1));
        assert!(rows[0].backward >= Duration::from_millis(2));
        assert_eq!(
            (rows[2].layer.as_str(), rows[2].forward_calls),
            ("layer 2", 0)
        );
        assert_eq!(t.time(2, Pass::Forward, || 7), 7);
    }
}
