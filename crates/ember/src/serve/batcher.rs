//! Dynamic batching: prediction requests from all connections are queued to one batching
//! thread, which gathers them into forward passes of up to `max_batch` images and runs
//! each (decoding included) on the compute pool, so that no HTTP thread waits for compute.
//!
//! A batch is closed when it holds `max_batch` images, when `max_wait` has passed since
//! its first request, or at once when no other prediction request is arriving (none is
//! between being received and being queued): a lone client is never kept waiting for
//! company, while under load the requests that come in during a forward pass form the
//! next batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use rayon::prelude::*;
use tokio::sync::oneshot;

use super::decode::decode_image;
use super::error::ApiError;
use super::metrics::Metrics;
use crate::predict::{Classifier, Prediction};

/// One request's images and where its answer goes.
pub struct Job {
    /// Encoded images.
    pub images: Vec<Bytes>,
    /// The answer: one prediction per image, or why there is none.
    pub reply: oneshot::Sender<Result<Vec<Prediction>, ApiError>>,
}

/// How batches are formed.
#[derive(Clone, Copy, Debug)]
pub struct BatchPolicy {
    /// The most images per forward pass.
    pub max_batch: usize,
    /// The longest a batch waits for more requests after its first.
    pub max_wait: Duration,
}

/// The handle the HTTP side holds: a queue to the batching thread and the count of
/// requests about to be queued.
#[derive(Clone)]
pub struct BatchQueue {
    jobs: Sender<Job>,
    arriving: Arc<AtomicUsize>,
}

/// Marks one request as arriving (received, not yet queued) while it lives.
pub struct Arriving(Arc<AtomicUsize>);

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl BatchQueue {
    /// Notes a prediction request that will probably be queued soon.
    pub fn arriving(&self) -> Arriving {
        self.arriving.fetch_add(1, Ordering::AcqRel);
        Arriving(self.arriving.clone())
    }

    /// Queues a job; fails only when the batching thread has stopped.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        self.jobs.send(job).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            )
        })
    }
}

/// Starts the batching thread. It ends once every [`BatchQueue`] is dropped and the jobs
/// already queued are answered.
pub fn start(
    clf: Arc<Classifier>,
    pool: Arc<rayon::ThreadPool>,
    policy: BatchPolicy,
    metrics: Arc<Metrics>,
) -> std::io::Result<(BatchQueue, JoinHandle<()>)> {
    let (tx, rx) = channel();
    let arriving = Arc::new(AtomicUsize::new(0));
    let worker = Worker {
        clf,
        pool,
        policy,
        metrics,
        arriving: arriving.clone(),
        held: None,
    };
    let handle = std::thread::Builder::new()
        .name("ember-batcher".into())
        .spawn(move || worker.run(rx))?;
    Ok((BatchQueue { jobs: tx, arriving }, handle))
}

struct Worker {
    clf: Arc<Classifier>,
    pool: Arc<rayon::ThreadPool>,
    policy: BatchPolicy,
    metrics: Arc<Metrics>,
    arriving: Arc<AtomicUsize>,
    /// A job that did not fit the last batch, first in the next.
    held: Option<Job>,
}

/// How often a waiting batch looks again whether requests are still arriving.
const POLL: Duration = Duration::from_micros(100);

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        while let Some(batch) = self.next_batch(&rx) {
            // A panic in a forward pass drops the batch's reply senders (their requests get
            // a 500) and must not stop the server.
            let run = std::panic::AssertUnwindSafe(|| self.pool.install(|| self.answer(batch)));
            if std::panic::catch_unwind(run).is_err() {
                eprintln!("ember serve: a batch failed with a panic; its requests got a 500");
            }
        }
    }

    /// The next batch, or None when the queue is closed and empty.
    fn next_batch(&mut self, rx: &Receiver<Job>) -> Option<Vec<Job>> {
        let first = match self.held.take() {
            Some(j) => j,
            None => rx.recv().ok()?,
        };
        let max = self.policy.max_batch;
        let mut images = first.images.len();
        let mut batch = vec![first];
        let deadline = Instant::now() + self.policy.max_wait;
        while images < max {
            let next = match rx.try_recv() {
                Ok(j) => Some(j),
                Err(_) => {
                    let now = Instant::now();
                    if self.arriving.load(Ordering::Acquire) == 0 || now >= deadline {
                        break;
                    }
                    match rx.recv_timeout(POLL.min(deadline - now)) {
                        Ok(j) => Some(j),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let Some(job) = next else { continue };
            if images + job.images.len() > max {
                self.held = Some(job);
                break;
            }
            images += job.images.len();
            batch.push(job);
        }
        Some(batch)
    }

    /// Decodes every image of the batch in parallel, answers the jobs with a bad image,
    /// predicts the rest in forward passes of at most `max_batch` images and answers them.
    fn answer(&self, batch: Vec<Job>) {
        let shape = self.clf.meta().input_shape;
        let decoded: Vec<Result<Vec<Vec<u8>>, ApiError>> = batch
            .par_iter()
            .map(|job| {
                let n = job.images.len();
                job.images
                    .par_iter()
                    .enumerate()
                    .map(|(i, bytes)| decode_image(bytes, shape).map_err(|e| e.for_image(i, n)))
                    .collect()
            })
            .collect();
        let mut ready = Vec::new();
        for (job, pixels) in batch.into_iter().zip(decoded) {
            match pixels {
                Ok(p) => ready.push((job, p)),
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        let refs: Vec<&[u8]> = ready
            .iter()
            .flat_map(|(_, p)| p.iter().map(Vec::as_slice))
            .collect();
        if refs.is_empty() {
            return;
        }
        for chunk in refs.chunks(self.policy.max_batch) {
            self.metrics.batch_size.observe(chunk.len() as f64);
        }
        let result = self.clf.predict_batch(&refs);
        self.metrics
            .images
            .fetch_add(refs.len() as u64, Ordering::Relaxed);
        drop(refs);
        match result {
            Ok(preds) => {
                let mut preds = preds.into_iter();
                for (job, p) in ready {
                    let mine: Vec<Prediction> = preds.by_ref().take(p.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let err = ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "prediction_failed",
                    e.to_string(),
                );
                for (job, _) in ready {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}
