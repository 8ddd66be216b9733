//! `ember serve` as a client sees it: started on port 0, spoken to over HTTP with a real
//! client (ureq): single and concurrent predictions equal the library's, every kind of bad
//! input gets a 4xx JSON error naming the problem while the server keeps serving, the
//! model description and metrics, and SIGTERM / Ctrl-C with requests in flight.

mod common;
mod deploy_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{run_ok, temp_dir};
use deploy_common::{ServeProcess, agent, png, random_checkpoint, read};
use ember::Classifier;
use serde_json::{Value, json};

/// The JSON of an answer, with its status.
fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let r = agent()
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .expect("request");
    let (status, text) = read(r);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

/// Asserts a JSON error answer: its status, its code and words of its message.
fn assert_error(got: (u16, Value), status: u16, code: &str, words: &[&str]) {
    let (s, v) = got;
    assert_eq!(s, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or("");
    for w in words {
        assert!(message.contains(w), "{w:?} not in {message:?}");
    }
}

/// A bad request and its answer: content type, body, status, error code and words of the
/// message.
type BadRequest = (
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
    &'static [&'static str],
);

/// The library's prediction for an encoded image, as the server decodes it.
fn expected(clf: &Classifier, image: &[u8]) -> ember::Prediction {
    let pixels = ember::serve::decode_image(image, clf.meta().input_shape).unwrap();
    clf.predict(&pixels).unwrap()
}

fn assert_same(got: &Value, want: &ember::Prediction, classes: &[String]) {
    assert_eq!(got["index"], want.index, "{got}");
    assert_eq!(got["class"], classes[want.index], "{got}");
    let p = got["probability"].as_f64().unwrap();
    assert!(
        (p - f64::from(want.probabilities[want.index])).abs() < 1e-5,
        "{got} vs {want:?}"
    );
    let top = got["top"].as_array().unwrap();
    for (entry, (i, name, prob)) in top.iter().zip(want.top_k(top.len(), classes)) {
        assert_eq!(entry["index"], i);
        assert_eq!(entry["class"], name);
        assert!((entry["probability"].as_f64().unwrap() - f64::from(prob)).abs() < 1e-5);
    }
}

#[test]
fn predictions_single_and_json_equal_the_library() {
    let dir = temp_dir("serve-single");
    let ckpt = random_checkpoint(&dir, "fmnist-cnn", 1);
    let clf = Classifier::load(&ckpt).unwrap();
    let classes = clf.classes().to_vec();
    let server = ServeProcess::start(&dir, &[]);

    let img = png(1, 28, 28, 10);
    let (s, v) = post(&server.url("/v1/predict?top_k=4"), "image/png", &img);
    assert_eq!(s, 200, "{v}");
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 1);
    assert_eq!(preds[0]["top"].as_array().unwrap().len(), 4);
    assert_same(&preds[0], &expected(&clf, &img), &classes);

    // JSON: several images (one of another size, resized as `predict` resizes), top_k.
    let images = [png(1, 28, 28, 11), png(1, 40, 31, 12), png(1, 28, 28, 13)];
    let body = json!({
        "images": images.iter().map(|i| STANDARD.encode(i)).collect::<Vec<_>>(),
        "top_k": 2,
    });
    let (s, v) = post(
        &server.url("/v1/predict"),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(s, 200, "{v}");
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    for (got, img) in preds.iter().zip(&images) {
        assert_eq!(got["top"].as_array().unwrap().len(), 2);
        assert_same(got, &expected(&clf, img), &classes);
    }

    // top_k above the class count lists every class.
    let body = json!({"images": [STANDARD.encode(&img)], "top_k": 50});
    let (_, v) = post(
        &server.url("/v1/predict"),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(v["predictions"][0]["top"].as_array().unwrap().len(), 10);
}

#[test]
fn concurrent_requests_are_answered_each_with_its_own_prediction() {
    let dir = temp_dir("serve-concurrent");
    let ckpt = random_checkpoint(&dir, "fmnist-cnn", 2);
    let clf = Arc::new(Classifier::load(&ckpt).unwrap());
    let server = Arc::new(ServeProcess::start(&dir, &["--max-batch", "16"]));
    let threads: Vec<_> = (0..12u64)
        .map(|t| {
            let (server, clf) = (server.clone(), clf.clone());
            std::thread::spawn(move || {
                for r in 0..8u64 {
                    let img = png(1, 28, 28, 100 * t + r);
                    let (s, v) = post(&server.url("/v1/predict"), "image/png", &img);
                    assert_eq!(s, 200, "{v}");
                    assert_same(&v["predictions"][0], &expected(&clf, &img), clf.classes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }
    let (s, text) = read(agent().get(&server.url("/metrics")).call().unwrap());
    assert_eq!(s, 200);
    assert!(
        text.contains("ember_http_requests_total{route=\"/v1/predict\",status=\"200\"} 96"),
        "{text}"
    );
    assert!(text.contains("ember_images_predicted_total 96"), "{text}");
}

#[test]
fn bad_input_gets_a_4xx_json_error_and_the_server_keeps_serving() {
    let dir = temp_dir("serve-bad");
    random_checkpoint(&dir, "fmnist-cnn", 3);
    let server = ServeProcess::start(&dir, &["--max-body", "4KB"]);
    let predict = server.url("/v1/predict");
    let good = png(1, 28, 28, 5);

    let big = vec![b'x'; 5000];
    let json_body = |v: Value| v.to_string().into_bytes();
    let json = "application/json";
    // Each case: content type, body, and the answer's status, code and words.
    let cases: [BadRequest; 16] = [
        // Not an image: wrong media type, text bytes, an empty body, a GIF.
        (
            "text/plain",
            b"hello".to_vec(),
            415,
            "unsupported_media_type",
            &["text/plain", "image/png", "application/json"],
        ),
        (
            "image/png",
            b"hello, world".to_vec(),
            400,
            "not_an_image",
            &["not a PNG, JPEG or BMP"],
        ),
        ("image/png", vec![], 400, "not_an_image", &["empty"]),
        (
            "image/gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            400,
            "not_an_image",
            &["Gif", "PNG, JPEG and BMP"],
        ),
        // Undecodable: a PNG cut short, a JPEG header alone.
        (
            "image/png",
            good[..good.len() / 2].to_vec(),
            400,
            "undecodable_image",
            &["cannot decode"],
        ),
        (
            "image/jpeg",
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec(),
            400,
            "undecodable_image",
            &["cannot decode"],
        ),
        // Wrong channels: RGB for a grayscale model.
        (
            "image/png",
            png(3, 28, 28, 6),
            400,
            "wrong_channels",
            &["RGB", "grayscale"],
        ),
        // Over --max-body (4 KB).
        (
            "image/png",
            big.clone(),
            413,
            "body_too_large",
            &["5000 bytes", "4000"],
        ),
        // Bad JSON, in every way.
        (
            json,
            b"{\"images\": [\"abc\"".to_vec(),
            400,
            "bad_json",
            &["JSON"],
        ),
        (
            json,
            b"{\"image\": []}".to_vec(),
            400,
            "bad_json",
            &["image"],
        ),
        (
            json,
            b"{\"images\": []}".to_vec(),
            400,
            "no_images",
            &["empty"],
        ),
        (
            json,
            b"{\"images\": [7]}".to_vec(),
            400,
            "bad_json",
            &["images[0]", "not a string"],
        ),
        (
            json,
            b"{\"images\": [\"***\"]}".to_vec(),
            400,
            "bad_base64",
            &["images[0]", "base64"],
        ),
        (
            json,
            json_body(json!({"images": [STANDARD.encode(&good), STANDARD.encode(b"nope")]})),
            400,
            "not_an_image",
            &["images[1]"],
        ),
        (
            json,
            json_body(json!({"images": [STANDARD.encode(&good)], "top_k": 0})),
            400,
            "bad_top_k",
            &["top_k", "0"],
        ),
        (
            json,
            json_body(json!({"images": [STANDARD.encode(&good)], "top_k": "three"})),
            400,
            "bad_top_k",
            &["three"],
        ),
    ];
    for (content_type, body, status, code, words) in cases {
        assert_error(post(&predict, content_type, &body), status, code, words);
    }
    // Over --max-body also when sent in chunks, without a Content-Length to refuse it by.
    let chunked = agent()
        .post(&predict)
        .header("Content-Type", "image/png")
        .send(ureq::SendBody::from_reader(&mut &big[..]))
        .expect("request");
    let (s, text) = read(chunked);
    assert_error(
        (s, serde_json::from_str(&text).unwrap()),
        413,
        "body_too_large",
        &["4000"],
    );
    assert_error(
        post(&server.url("/v1/predict?top_k=-2"), "image/png", &good),
        400,
        "bad_top_k",
        &["-2"],
    );
    // Unknown route, wrong method.
    let (s, text) = read(agent().get(&server.url("/v2/nothing")).call().unwrap());
    assert_error(
        (s, serde_json::from_str(&text).unwrap()),
        404,
        "not_found",
        &["/v2/nothing", "POST /v1/predict"],
    );
    let (s, text) = read(agent().get(&predict).call().unwrap());
    assert_error(
        (s, serde_json::from_str(&text).unwrap()),
        405,
        "method_not_allowed",
        &["/v1/predict", "GET"],
    );

    // Still serving.
    let (s, text) = read(agent().get(&server.url("/healthz")).call().unwrap());
    assert_eq!((s, text.as_str()), (200, "{\"status\":\"ok\"}"));
    let (s, v) = post(&predict, "image/png", &good);
    assert_eq!(s, 200, "{v}");

    // The errors are counted by route, status and code.
    let (_, metrics) = read(agent().get(&server.url("/metrics")).call().unwrap());
    for line in [
        "ember_http_errors_total{route=\"/v1/predict\",status=\"400\",code=\"bad_json\"} 3",
        "ember_http_errors_total{route=\"/v1/predict\",status=\"413\",code=\"body_too_large\"} 2",
        "ember_http_errors_total{route=\"/v1/predict\",status=\"415\",code=\"unsupported_media_type\"} 1",
        "ember_http_errors_total{route=\"other\",status=\"404\",code=\"not_found\"} 1",
        "ember_http_requests_total{route=\"/v1/predict\",status=\"200\"} 1",
        "ember_http_requests_total{route=\"/healthz\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(metrics.contains("# TYPE ember_http_request_duration_seconds histogram"));
    assert!(metrics.contains("ember_batch_size_bucket{le=\"1\"}"));
}

#[test]
fn the_model_route_describes_the_checkpoint() {
    let dir = temp_dir("serve-model");
    let ckpt = random_checkpoint(&dir, "fmnist-cnn", 4);
    let server = ServeProcess::start(&dir, &[]);
    let (s, text) = read(agent().get(&server.url("/v1/model")).call().unwrap());
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["name"], "fmnist-cnn");
    assert_eq!(v["classes"].as_array().unwrap().len(), 10);
    assert_eq!(v["classes"][3], "c3");
    assert_eq!(v["input_shape"], json!([1, 28, 28]));
    assert_eq!(v["normalization"]["mean"], json!([0.4f32]));
    let sha = ember::checkpoint::file_sha256(&ckpt).unwrap();
    assert_eq!(v["checkpoint_sha256"], sha);
    assert_eq!(sha.len(), 64);
}

#[test]
fn bad_options_are_refused_before_listening() {
    let dir = temp_dir("serve-options");
    random_checkpoint(&dir, "fmnist-cnn", 5);
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
            .arg("serve")
            .arg("--checkpoint")
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    for (extra, words) in [
        (&["--max-batch", "0"][..], &["--max-batch"][..]),
        (&["--max-wait-ms", "-1"], &["--max-wait-ms"]),
        (&["--max-body", "10 parsecs"], &["--max-body", "unit"]),
        (&["--addr", "not-an-address"], &["--addr", "not-an-address"]),
    ] {
        let out = run(extra);
        assert!(!out.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for w in words {
            assert!(err.contains(w), "{w:?} not in {err}");
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["serve", "--checkpoint", "/nonexistent/run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/run"));
}

/// A model whose forward pass takes long enough (tens of ms per image on 2 cores) for
/// requests to be still in flight when the signal arrives.
const SLOW_SPEC: &str = include_str!("specs/slow.toml");

/// Sends `n` concurrent requests of `per` images, waits until the server counts them all
/// in flight, sends `signal`, and checks that every one is answered and the server exits 0.
fn shutdown_with_requests_in_flight(signal: &str) {
    let dir = temp_dir(&format!("serve-shutdown-{signal}"));
    random_checkpoint(&dir, SLOW_SPEC, 6);
    let mut server = ServeProcess::start(&dir, &["--max-batch", "8"]);
    let (n, per) = (6, 8);
    let body = json!({
        "images": (0..per).map(|i| STANDARD.encode(png(3, 64, 64, i))).collect::<Vec<_>>(),
    })
    .to_string();
    let url = server.url("/v1/predict");
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || post(&url, "application/json", body.as_bytes()))
        })
        .collect();
    let metrics = server.url("/metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = read(agent().get(&metrics).call().unwrap());
        if text.contains(&format!("ember_predict_in_flight {n}\n")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the requests never were all in flight:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.signal(signal);
    for c in clients {
        let (s, v) = c.join().expect("client");
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["predictions"].as_array().unwrap().len(), per as usize);
    }
    let status = wait_exit(&mut server.child, Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "ember serve did not exit 0 after {signal}"
    );
    // It no longer listens.
    assert!(agent().get(&server.url("/healthz")).call().is_err());
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < end,
            "ember serve did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_0() {
    shutdown_with_requests_in_flight("TERM");
}

#[test]
fn ctrl_c_finishes_requests_in_flight_then_exits_0() {
    shutdown_with_requests_in_flight("INT");
}

#[test]
fn concurrent_requests_share_forward_passes() {
    // With forward passes of tens of milliseconds, requests that arrive during one are
    // batched into the next: fewer passes than requests.
    let dir = temp_dir("serve-batching");
    random_checkpoint(&dir, SLOW_SPEC, 7);
    let server = Arc::new(ServeProcess::start(&dir, &["--max-batch", "64"]));
    let clients: Vec<_> = (0..8u64)
        .map(|i| {
            let server = server.clone();
            std::thread::spawn(move || {
                post(&server.url("/v1/predict"), "image/png", &png(3, 64, 64, i))
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap().0, 200);
    }
    let (_, text) = read(agent().get(&server.url("/metrics")).call().unwrap());
    let passes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ember_batch_size_count "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no batch count in\n{text}"));
    assert!(text.contains("ember_images_predicted_total 8"), "{text}");
    assert!(
        passes < 8,
        "8 concurrent requests took {passes} forward passes:\n{text}"
    );
}

#[test]
fn the_serving_benchmark_runs_and_reports_every_client_count() {
    // What `ember bench --serve` reports, not how fast (figures live in docs/BENCHMARKS.md).
    let out = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["bench", "--serve", "--seconds", "0.2", "--clients", "1,3"])
            .args(["--json", "--images-per-request", "2"]),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "fmnist-cnn");
    assert!(v["infer_images_per_s"].as_f64().unwrap() > 0.0);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for (row, clients) in rows.iter().zip([1, 3]) {
        assert_eq!(row["clients"], clients);
        assert!(row["requests"].as_u64().unwrap() > 0, "{v}");
        let (p50, p99) = (
            row["p50_ms"].as_f64().unwrap(),
            row["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{v}");
        assert!(row["mean_batch"].as_f64().unwrap() >= 2.0, "{v}");
    }
}
