//! The scaling model of data-parallel training over a network: how much of each step a
//! ring allreduce of the gradients costs, for planning multi-host runs.

/// One step of data-parallel training on `nodes` hosts joined by a link of `gbit_per_s`.
///
/// A ring allreduce moves `2 (N - 1) / N` times the gradient's bytes in and out of every
/// node, plus `2 (N - 1)` latency-bound message rounds; without overlap the step takes
/// compute + communication, and the efficiency is compute / (compute + communication).
///
/// ```
/// use ember::distributed::scaling::ring_allreduce_seconds;
/// // 1 MB of gradients over 10 Gbit/s between 2 nodes: ~0.8 ms of transfer.
/// let t = ring_allreduce_seconds(1e6, 2, 10.0, 0.0);
/// assert!((t - 0.0008).abs() < 1e-9);
/// ```
pub fn ring_allreduce_seconds(bytes: f64, nodes: usize, gbit_per_s: f64, latency_s: f64) -> f64 {
    if nodes <= 1 {
        return 0.0;
    }
    let n = nodes as f64;
    let moved = 2.0 * (n - 1.0) / n * bytes;
    moved * 8.0 / (gbit_per_s * 1e9) + 2.0 * (n - 1.0) * latency_s
}

/// Parallel efficiency (0..1] of a step whose compute takes `compute_s`, when the gradient
/// allreduce is not overlapped with the backward pass.
///
/// ```
/// use ember::distributed::scaling::efficiency;
/// assert_eq!(efficiency(1.0, 0.0), 1.0);
/// assert_eq!(efficiency(1.0, 1.0), 0.5);
/// ```
pub fn efficiency(compute_s: f64, allreduce_s: f64) -> f64 {
    compute_s / (compute_s + allreduce_s)
}

/// Link speeds (Gbit/s) and node counts of [`efficiency_table`].
pub const LINKS_GBIT: [f64; 3] = [1.0, 10.0, 25.0];
/// Node counts of [`efficiency_table`].
pub const NODES: [usize; 6] = [2, 4, 8, 16, 32, 64];
/// Per-message latency assumed for TCP over Ethernet (seconds).
pub const TCP_LATENCY_S: f64 = 50e-6;

/// A Markdown table of the expected efficiency (and allreduce milliseconds per step) for
/// [`NODES`] x [`LINKS_GBIT`], for a model with `grad_bytes` of gradients whose step takes
/// `compute_s` on one node.
///
/// ```
/// let t = ember::distributed::scaling::efficiency_table(2.5e6, 0.08);
/// assert!(t.lines().count() == 8 && t.contains("| 64 |"));
/// ```
pub fn efficiency_table(grad_bytes: f64, compute_s: f64) -> String {
    let mut out = String::from("| nodes | 1 Gbit/s | 10 Gbit/s | 25 Gbit/s |\n|---|---|---|---|\n");
    for n in NODES {
        let cells: Vec<String> = LINKS_GBIT
            .iter()
            .map(|&g| {
                let t = ring_allreduce_seconds(grad_bytes, n, g, TCP_LATENCY_S);
                format!(
                    "{:.0}% ({:.1} ms)",
                    100.0 * efficiency(compute_s, t),
                    1e3 * t
                )
            })
            .collect();
        out += &format!("| {n} | {} |\n", cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_traffic_approaches_twice_the_gradient() {
        let bytes = 4e6;
        let two = ring_allreduce_seconds(bytes, 2, 8.0, 0.0);
        let many = ring_allreduce_seconds(bytes, 1000, 8.0, 0.0);
        assert!((two - bytes / 1e9).abs() < 1e-12); // 2*(1/2)*4 MB at 1 GB/s
        assert!((many - 2.0 * 0.999 * bytes / 1e9).abs() < 1e-12);
        assert_eq!(ring_allreduce_seconds(bytes, 1, 8.0, 1e-3), 0.0);
        assert!(ring_allreduce_seconds(0.0, 4, 8.0, 1e-5) > 5e-5);
    }
}
