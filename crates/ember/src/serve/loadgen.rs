//! `ember bench --serve`: the server on loopback under concurrent clients. Each client
//! keeps one HTTP/1.1 connection and sends prediction requests back to back (one PNG
//! image per request by default, or JSON with several); the figures are served images/s
//! and the latency percentiles per number of clients, beside `ember bench`'s inference
//! images/s for the same model (the ceiling: forward passes alone, batch 256).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use serde::Serialize;

use super::{ServeConfig, Server};
use crate::checkpoint::{self, CheckpointMeta, Normalization};
use crate::error::{Error, Result};
use crate::predict::Classifier;

/// What to measure.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Zoo name or spec file (random weights).
    pub model: String,
    /// Seconds per measurement (inference, and each client count).
    pub seconds: f64,
    /// Compute threads of the server and of the inference measurement (0: one per core).
    pub threads: usize,
    /// Client counts to measure.
    pub clients: Vec<usize>,
    /// Images per request (1: a PNG body; more: JSON with base64 images).
    pub images_per_request: usize,
}

/// One client count's figures.
#[derive(Clone, Debug, Serialize)]
pub struct LoadRow {
    /// Concurrent clients.
    pub clients: usize,
    /// Requests answered in the timed window.
    pub requests: u64,
    /// Images classified per second.
    pub images_per_s: f64,
    /// Median request latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile request latency, milliseconds.
    pub p99_ms: f64,
    /// Mean images per forward pass on the server.
    pub mean_batch: f64,
}

/// What `ember bench --serve` measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadResult {
    /// The model.
    pub model: String,
    /// `ember bench` inference images/s of the same model (batch 256, random tensors).
    pub infer_images_per_s: f64,
    /// Compute threads.
    pub threads: usize,
    /// SIMD level of the kernels.
    pub simd: String,
    /// Images per request.
    pub images_per_request: usize,
    /// One row per client count.
    pub rows: Vec<LoadRow>,
}

/// A checkpoint of `model` with random weights in a temporary folder, and that folder.
fn random_checkpoint(model: &str) -> Result<(std::path::PathBuf, usize)> {
    let (spec, zoo) = crate::resolve_model(model)?;
    let mut net = spec.build()?;
    ember_layers::Layer::reset_parameters(&mut net, &mut ember_tensor::Rng::new(7));
    let classes = spec.output_shape()?.item_numel();
    let channels = spec.input[0];
    let mut meta = CheckpointMeta::untrained(
        spec,
        zoo,
        (0..classes).map(|i| format!("class{i}")).collect(),
        Normalization {
            mean: vec![0.5; channels],
            std: vec![0.25; channels],
        },
    );
    let dir = std::env::temp_dir().join(format!("ember-bench-serve-{}", std::process::id()));
    let file = dir.join("best.safetensors");
    checkpoint::save(&file, &mut net, &mut meta)?;
    Ok((dir, channels))
}

/// A PNG of `[c, h, w]` noise (deterministic).
fn test_png(shape: [usize; 3]) -> Result<Vec<u8>> {
    let [c, h, w] = shape;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut pixels = vec![0u8; c * h * w];
    for p in &mut pixels {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *p = (state >> 32) as u8;
    }
    encode_png(&pixels, shape)
}

/// Encodes `[c, h, w]` pixels, grayscale (`c` 1) or RGB (3, interleaved), as a PNG.
pub fn encode_png(pixels: &[u8], [c, h, w]: [usize; 3]) -> Result<Vec<u8>> {
    let color = if c == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        pixels,
        w as u32,
        h as u32,
        color,
    )
    .map_err(|e| Error(format!("cannot encode the test image: {e}")))?;
    Ok(out)
}

/// The request body and its content type.
fn request_body(png: &[u8], images: usize) -> (Bytes, &'static str) {
    if images <= 1 {
        return (Bytes::copy_from_slice(png), "image/png");
    }
    let one = base64::engine::general_purpose::STANDARD.encode(png);
    let list = vec![serde_json::Value::String(one); images];
    let body = serde_json::json!({"images": list, "top_k": 3}).to_string();
    (Bytes::from(body), "application/json")
}

/// One client: requests back to back until `end`; latencies of those sent after `start`,
/// and when the last of them was answered.
async fn client(
    addr: SocketAddr,
    body: Bytes,
    content_type: &'static str,
    start: Instant,
    end: Instant,
) -> std::result::Result<(Vec<Duration>, Instant), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let host = addr.to_string();
    let mut latencies = Vec::new();
    let mut last = start;
    loop {
        let sent = Instant::now();
        if sent >= end {
            return Ok((latencies, last));
        }
        let req = Request::post("/v1/predict")
            .header(HOST, &host)
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let answer = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
        if sent >= start {
            latencies.push(sent.elapsed());
            last = Instant::now();
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Runs the measurement.
pub fn run(cfg: &LoadConfig) -> Result<LoadResult> {
    if cfg.clients.is_empty() || cfg.clients.iter().any(|&c| c == 0 || c > 1024) {
        return Err(Error::msg("--clients: give client counts from 1 to 1024"));
    }
    if cfg.images_per_request == 0 || cfg.images_per_request > 4096 {
        return Err(Error::msg("--images-per-request must be from 1 to 4096"));
    }
    let inference = crate::bench::bench(&cfg.model, 128, cfg.seconds, cfg.threads)?;
    let (dir, _) = random_checkpoint(&cfg.model)?;
    let result = measure(cfg, &dir, inference);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    cfg: &LoadConfig,
    dir: &std::path::Path,
    inference: crate::bench::BenchResult,
) -> Result<LoadResult> {
    let clf = Classifier::load(dir)?;
    let png = test_png(clf.meta().input_shape)?;
    let config = ServeConfig {
        addr: "127.0.0.1:0".into(),
        threads: cfg.threads,
        ..ServeConfig::default()
    };
    let server = Server::bind(clf, &config)?;
    let addr = server.local_addr();
    let metrics = server.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = std::thread::spawn(move || {
        server.run(async {
            let _ = stopped.await;
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error(format!("cannot start the clients: {e}")))?;
    let (body, content_type) = request_body(&png, cfg.images_per_request);
    let warmup = Duration::from_secs_f64((cfg.seconds * 0.1).clamp(0.1, 1.0));
    let mut rows = Vec::new();
    for &n in &cfg.clients {
        let forwards0 = metrics.batch_size_count();
        let images0 = metrics.images.load(std::sync::atomic::Ordering::Relaxed);
        let start = Instant::now() + warmup;
        let end = start + Duration::from_secs_f64(cfg.seconds);
        let outcome: std::result::Result<Vec<(Vec<Duration>, Instant)>, String> =
            rt.block_on(async {
                let tasks: Vec<_> = (0..n)
                    .map(|_| tokio::spawn(client(addr, body.clone(), content_type, start, end)))
                    .collect();
                let mut all = Vec::new();
                for t in tasks {
                    all.push(t.await.map_err(|e| e.to_string())??);
                }
                Ok(all)
            });
        let latencies = match outcome {
            Ok(l) => l,
            Err(e) => {
                let _ = stop.send(());
                let _ = handle.join();
                return Err(Error(format!("a client failed: {e}")));
            }
        };
        // The window: from `start` to the last answer of a request sent in it.
        let window = latencies
            .iter()
            .map(|(_, last)| last.saturating_duration_since(start))
            .max()
            .unwrap_or_default()
            .as_secs_f64()
            .max(1e-9);
        let mut all: Vec<Duration> = latencies.into_iter().flat_map(|(l, _)| l).collect();
        all.sort();
        let requests = all.len() as u64;
        let forwards = metrics.batch_size_count() - forwards0;
        let images = metrics.images.load(std::sync::atomic::Ordering::Relaxed) - images0;
        rows.push(LoadRow {
            clients: n,
            requests,
            images_per_s: (requests as usize * cfg.images_per_request) as f64 / window,
            p50_ms: percentile(&all, 0.5),
            p99_ms: percentile(&all, 0.99),
            mean_batch: images as f64 / forwards.max(1) as f64,
        });
    }
    let _ = stop.send(());
    handle
        .join()
        .map_err(|_| Error::msg("the server thread panicked"))??;
    Ok(LoadResult {
        model: cfg.model.clone(),
        infer_images_per_s: inference.infer_images_per_s,
        threads: inference.threads,
        simd: inference.simd,
        images_per_request: cfg.images_per_request,
        rows,
    })
}

/// The result as a table, with the served share of inference images/s.
pub fn report(r: &LoadResult) -> String {
    let mut s = format!(
        "{}: inference {:.0} images/s (ember bench, batch 256), {} threads, simd {}; \
         {} image{} per request\n\n| clients | requests | images/s | share of inference | p50 ms | p99 ms | mean batch |\n|---:|---:|---:|---:|---:|---:|---:|\n",
        r.model,
        r.infer_images_per_s,
        r.threads,
        r.simd,
        r.images_per_request,
        if r.images_per_request == 1 { "" } else { "s" }
    );
    for row in &r.rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.1} |\n",
            row.clients,
            row.requests,
            row.images_per_s,
            100.0 * row.images_per_s / r.infer_images_per_s,
            row.p50_ms,
            row.p99_ms,
            row.mean_batch
        ));
    }
    s
}
