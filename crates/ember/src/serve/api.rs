//! The HTTP routes: `POST /v1/predict`, `GET /v1/model`, `GET /healthz`, `GET /metrics`,
//! and JSON errors for everything else (unknown routes, wrong methods).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::oneshot;

use super::ServeConfig;
use super::batcher::{BatchQueue, Job};
use super::decode::{PredictRequest, parse_json, parse_top_k};
use super::error::{ApiError, ErrorCode};
use super::metrics::Metrics;
use crate::predict::{Classifier, Prediction};

/// What every handler shares.
pub struct AppState {
    /// The model (for its description).
    pub clf: Arc<Classifier>,
    /// SHA-256 of the checkpoint file.
    pub checkpoint_sha256: String,
    /// The queue to the batching thread.
    pub queue: BatchQueue,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The limits.
    pub config: ServeConfig,
}

/// Bodies larger than this are parsed off the HTTP threads.
const INLINE_PARSE_BYTES: usize = 64 << 10;

/// The routes, with metrics around every request.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/model", get(model))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// The route label of a path: a known route, or `other` (unknown paths are not labels).
fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/predict" => "/v1/predict",
        "/v1/model" => "/v1/model",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

async fn record(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let start = Instant::now();
    let response = next.run(req).await;
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    s.metrics
        .record(route, response.status().as_u16(), code, start.elapsed());
    response
}

/// Counts a prediction request as in flight while it lives.
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn new(m: &Arc<Metrics>) -> Self {
        m.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(m.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn predict(
    State(s): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let _in_flight = InFlight::new(&s.metrics);
    let arriving = s.queue.arriving();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let is_json = media == "application/json" || media.ends_with("+json");
    if !is_json && !media.starts_with("image/") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {:?}: send an image (image/png, image/jpeg, image/bmp) or \
                 application/json {{\"images\": [base64, ...], \"top_k\": 3}}",
                if media.is_empty() { "(none)" } else { &media }
            ),
        ));
    }
    let bytes = read_body(&headers, body, s.config.max_body).await?;
    let request = if is_json {
        if bytes.len() > INLINE_PARSE_BYTES {
            tokio::task::spawn_blocking(move || parse_json(&bytes))
                .await
                .map_err(|e| internal(format!("parsing the body failed: {e}")))??
        } else {
            parse_json(&bytes)?
        }
    } else {
        if bytes.is_empty() {
            return Err(ApiError::bad_request("not_an_image", "the body is empty"));
        }
        let top_k = query_top_k(&uri)?;
        PredictRequest {
            images: vec![bytes],
            top_k,
        }
    };
    let top_k = request.top_k.min(s.clf.classes().len()).max(1);
    let (tx, rx) = oneshot::channel();
    s.queue.submit(Job {
        images: request.images,
        reply: tx,
    })?;
    drop(arriving);
    let predictions = rx
        .await
        .map_err(|_| internal("the prediction failed (see the server's log)".into()))??;
    Ok(json_response(
        StatusCode::OK,
        &answer(&predictions, top_k, s.clf.classes()),
    ))
}

fn internal(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

/// `?top_k=K` of a raw-image request.
fn query_top_k(uri: &Uri) -> Result<usize, ApiError> {
    let Some(q) = uri.query() else {
        return parse_top_k(None);
    };
    match q.split('&').find_map(|kv| kv.strip_prefix("top_k=")) {
        None => parse_top_k(None),
        Some(v) => match v.parse::<u64>() {
            Ok(k) => parse_top_k(Some(&json!(k))),
            Err(_) => parse_top_k(Some(&json!(v))),
        },
    }
}

/// The body, at most `limit` bytes (refused from its Content-Length before reading when
/// it says more).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = |size: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is {size}, more than the server's --max-body of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        return Err(too_large(format!("{n} bytes")));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            too_large("larger".into())
        } else {
            ApiError::bad_request("bad_body", format!("cannot read the body: {e}"))
        }
    })
}

/// The JSON answer: per image the best class and the `top_k` best, with probabilities.
fn answer(predictions: &[Prediction], top_k: usize, classes: &[String]) -> serde_json::Value {
    let per_image: Vec<serde_json::Value> = predictions
        .iter()
        .map(|p| {
            let top: Vec<serde_json::Value> = p
                .top_k(top_k, classes)
                .into_iter()
                .map(|(index, class, probability)| {
                    json!({"index": index, "class": class, "probability": probability})
                })
                .collect();
            json!({
                "class": p.class,
                "index": p.index,
                "probability": p.probabilities.get(p.index).copied().unwrap_or(0.0),
                "top": top,
            })
        })
        .collect();
    json!({ "predictions": per_image })
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn model(State(s): State<Arc<AppState>>) -> Response {
    let meta = s.clf.meta();
    let [c, h, w] = meta.input_shape;
    let body = json!({
        "name": meta.model.name.clone().or_else(|| meta.zoo.clone()).unwrap_or_default(),
        "zoo": meta.zoo,
        "classes": meta.classes,
        "input_shape": [c, h, w],
        "input_channels": if c == 1 { "grayscale" } else { "RGB" },
        "normalization": meta.normalization,
        "checkpoint": s.clf.file().display().to_string(),
        "checkpoint_sha256": s.checkpoint_sha256,
        "content_sha256": meta.content_sha256,
        "epoch": meta.epoch,
        "metrics": meta.metrics.iter().filter(|(_, v)| v.is_finite()).collect::<std::collections::BTreeMap<_, _>>(),
        "max_batch": s.config.max_batch,
        "max_body": s.config.max_body,
    });
    json_response(StatusCode::OK, &body)
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

const ROUTES: &str = "POST /v1/predict, GET /v1/model, GET /healthz, GET /metrics";

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {method} {}: the routes are {ROUTES}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not take {method}: the routes are {ROUTES}",
            uri.path()
        ),
    )
}
