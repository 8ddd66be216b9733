//! Helpers shared by Ember's criterion benches.

/// A rayon pool with exactly `threads` threads, to measure scaling inside one bench run.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("building a rayon pool")
}
