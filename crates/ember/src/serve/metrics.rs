//! The server's counters, rendered as Prometheus text at `GET /metrics`: requests by route
//! and status, errors by route and code, requests in flight, images, batch sizes and
//! request latency (histograms).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A Prometheus histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, then the `+Inf` bucket (not cumulative).
    counts: Vec<AtomicU64>,
    /// The sum of observations, as f64 bits.
    sum_bits: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".into(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = f64::from_bits(self.sum_bits.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    /// (route, status) -> requests answered.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// (route, status, code) -> error answers.
    errors: Mutex<BTreeMap<(&'static str, u16, &'static str), u64>>,
    /// route -> latency histogram.
    latency: Mutex<BTreeMap<&'static str, std::sync::Arc<Histogram>>>,
    /// Prediction requests received and not yet answered.
    pub in_flight: AtomicU64,
    /// Images predicted.
    pub images: AtomicU64,
    /// Images per forward pass.
    pub batch_size: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            errors: Mutex::default(),
            latency: Mutex::default(),
            in_flight: AtomicU64::new(0),
            images: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH_BOUNDS),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// Records one answered request: its route label, status, error code (if it is an
    /// error) and how long it took.
    pub fn record(
        &self,
        route: &'static str,
        status: u16,
        error: Option<&'static str>,
        took: Duration,
    ) {
        *lock(&self.requests).entry((route, status)).or_default() += 1;
        if let Some(code) = error {
            *lock(&self.errors).entry((route, status, code)).or_default() += 1;
        }
        let h = lock(&self.latency)
            .entry(route)
            .or_insert_with(|| std::sync::Arc::new(Histogram::new(LATENCY_BOUNDS)))
            .clone();
        h.observe(took.as_secs_f64());
    }

    /// Forward passes so far.
    pub fn batch_size_count(&self) -> u64 {
        self.batch_size.count()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let help = "HTTP requests answered, by route and status.";
        header(&mut out, "ember_http_requests_total", "counter", help);
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "ember_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let help = "Error answers, by route, status and error code.";
        header(&mut out, "ember_http_errors_total", "counter", help);
        for ((route, status, code), n) in lock(&self.errors).iter() {
            let _ = writeln!(
                out,
                "ember_http_errors_total{{route=\"{route}\",status=\"{status}\",code=\"{code}\"}} {n}"
            );
        }
        let latency = "ember_http_request_duration_seconds";
        let help = "Time from request to answer, by route.";
        header(&mut out, latency, "histogram", help);
        for (route, h) in lock(&self.latency).iter() {
            h.render(&mut out, latency, &format!("route=\"{route}\""));
        }
        for (name, help, kind, value) in [
            (
                "ember_predict_in_flight",
                "Prediction requests received and not yet answered.",
                "gauge",
                &self.in_flight,
            ),
            (
                "ember_images_predicted_total",
                "Images classified.",
                "counter",
                &self.images,
            ),
        ] {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let batch = "ember_batch_size";
        header(&mut out, batch, "histogram", "Images per forward pass.");
        self.batch_size.render(&mut out, batch, "");
        out
    }
}

/// The `# HELP` and `# TYPE` lines of metric `name`.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_everything() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 5.0, 50.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(
            out.contains("x_sum 56.5\n") && out.contains("x_count 4\n"),
            "{out}"
        );
    }

    #[test]
    fn requests_and_errors_are_labelled() {
        let m = Metrics::default();
        m.record("/v1/predict", 200, None, Duration::from_millis(1));
        m.record(
            "/v1/predict",
            400,
            Some("bad_json"),
            Duration::from_millis(1),
        );
        let text = m.render();
        assert!(text.contains("ember_http_requests_total{route=\"/v1/predict\",status=\"200\"} 1"));
        assert!(text.contains(
            "ember_http_errors_total{route=\"/v1/predict\",status=\"400\",code=\"bad_json\"} 1"
        ));
        assert!(
            text.contains("ember_http_request_duration_seconds_count{route=\"/v1/predict\"} 2")
        );
    }
}
