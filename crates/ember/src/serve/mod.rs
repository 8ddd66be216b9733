//! `ember serve`: a checkpoint behind HTTP, on axum and tokio.
//!
//! - `POST /v1/predict`: an image body (PNG, JPEG or BMP with `Content-Type: image/*`,
//!   `?top_k=K`), or JSON `{"images": [base64, ...], "top_k": 3}`. The answer:
//!   `{"predictions": [{"class", "index", "probability", "top": [{"index", "class",
//!   "probability"}, ...]}, ...]}`, one per image in order.
//! - `GET /v1/model`: name, classes, input shape, normalisation, checkpoint SHA-256.
//! - `GET /healthz`, and `GET /metrics` (Prometheus text).
//!
//! Requests are batched across connections (see [`batcher`]) and computed on a rayon pool
//! of their own; bad input gets a 4xx JSON error naming the problem (see [`ApiError`]).
//! [`Server::run`] returns once its shutdown future fires and every request in flight has
//! been answered.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ember::serve::{ServeConfig, Server};
//! let clf = ember::Classifier::load("runs/latest".as_ref())?;
//! let config = ServeConfig { addr: "127.0.0.1:0".into(), ..ServeConfig::default() };
//! let server = Server::bind(clf, &config)?;
//! println!("listening on http://{}", server.local_addr());
//! server.run(ember::serve::shutdown_signal())?;
//! # Ok::<(), ember::Error>(())
//! ```

mod api;
pub mod batcher;
mod decode;
mod error;
pub mod loadgen;
mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use decode::{DEFAULT_TOP_K, decode_image};
pub use error::ApiError;
pub use metrics::Metrics;

use crate::error::{Error, Result};
use crate::predict::Classifier;

/// How the server listens and batches.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    /// `host:port` to listen on; port 0 takes a free port.
    pub addr: String,
    /// Compute threads (0: one per core).
    pub threads: usize,
    /// The most images in one forward pass.
    pub max_batch: usize,
    /// How long a batch waits for more requests after its first, in milliseconds.
    pub max_wait_ms: f64,
    /// The largest request body in bytes.
    pub max_body: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: "127.0.0.1:8080".into(),
            threads: 0,
            max_batch: 64,
            max_wait_ms: 5.0,
            max_body: 10_000_000,
        }
    }
}

impl ServeConfig {
    /// Checks the limits, naming the flag of a bad one.
    pub fn check(&self) -> Result<()> {
        crate::config::check_threads(self.threads)?;
        if self.max_batch == 0 {
            return Err(Error::msg("--max-batch must be at least 1"));
        }
        if !(self.max_wait_ms.is_finite() && (0.0..=60_000.0).contains(&self.max_wait_ms)) {
            return Err(Error(format!(
                "--max-wait-ms {} must be a number of milliseconds from 0 to 60000",
                self.max_wait_ms
            )));
        }
        if self.max_body == 0 {
            return Err(Error::msg("--max-body must be at least 1 byte"));
        }
        Ok(())
    }
}

/// Parses a size such as `10MB`, `512KB`, `1MiB` or `1048576` (bytes; KB and MB are powers
/// of 1000, KiB and MiB of 1024).
pub fn parse_byte_size(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 10MB or 1048576"))?;
    let bytes = value * scale;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes <= usize::MAX as f64) {
        return Err(format!("{text:?} must be at least 1 byte"));
    }
    Ok(bytes as usize)
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    state: Arc<api::AppState>,
    batcher: JoinHandle<()>,
}

impl Server {
    /// Checks `config`, starts the compute pool and the batching thread and binds the
    /// address (`local_addr` tells the port when it was 0).
    pub fn bind(clf: Classifier, config: &ServeConfig) -> Result<Server> {
        config.check()?;
        let checkpoint_sha256 = crate::checkpoint::file_sha256(clf.file())?;
        clf.meta()
            .model
            .sizes()?
            .check_batch(config.max_batch, "--max-batch")
            .map_err(Error)?;
        let clf = Arc::new(clf.with_batch_size(config.max_batch));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("ember-compute-{i}"))
            .build()
            .map_err(|e| Error(format!("cannot start the compute threads: {e}")))?;
        // One HTTP thread answers tens of thousands of requests a second; the cores are
        // the compute pool's (on 2 cores, 1 HTTP thread served as fast as 2 with a lower
        // single-client latency, docs/BENCHMARKS.md).
        let http_threads =
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(http_threads)
            .thread_name("ember-http")
            .enable_all()
            .build()
            .map_err(|e| Error(format!("cannot start the HTTP threads: {e}")))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(&config.addr))
            .map_err(|e| Error(format!("--addr {}: cannot listen: {e}", config.addr)))?;
        let metrics = Arc::new(Metrics::default());
        let policy = batcher::BatchPolicy {
            max_batch: config.max_batch,
            max_wait: Duration::from_secs_f64(config.max_wait_ms / 1e3),
        };
        let (queue, batcher) = batcher::start(clf.clone(), Arc::new(pool), policy, metrics.clone())
            .map_err(|e| Error(format!("cannot start the batching thread: {e}")))?;
        let state = Arc::new(api::AppState {
            clf,
            checkpoint_sha256,
            queue,
            metrics,
            config: config.clone(),
        });
        Ok(Server {
            runtime,
            listener,
            state,
            batcher,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The counters `/metrics` shows.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting connections, answers every
    /// request in flight and returns.
    pub fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server {
            runtime,
            listener,
            state,
            batcher,
        } = self;
        let app = api::router(state);
        // Small answers go out at once (no Nagle delay waiting for the client's ACK).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let served = runtime.block_on(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        // The router (and with it the last queue handle) is gone: the batching thread
        // answers what is queued and ends.
        runtime.shutdown_timeout(Duration::from_secs(5));
        let _ = batcher.join();
        served.map_err(|e| Error(format!("the server failed: {e}")))
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::parse_byte_size;

    #[test]
    fn byte_sizes_parse_with_units() {
        assert_eq!(parse_byte_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_byte_size("512KB"), Ok(512_000));
        assert_eq!(parse_byte_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_byte_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_byte_size("1.5kb"), Ok(1500));
        for bad in ["", "MB", "-1", "10 parsecs", "0"] {
            assert!(parse_byte_size(bad).is_err(), "{bad}");
        }
    }
}
