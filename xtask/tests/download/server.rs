//! A tiny HTTP/1.1 file server on 127.0.0.1 for the download tests: serves fixed bodies,
//! honours `Range: bytes=N-`, can cut the first transfer of a file short, and records every
//! request. It handles one connection at a time and stops when dropped or after 30 s.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How one path is served.
#[derive(Clone, Default)]
pub struct Route {
    pub body: Vec<u8>,
    /// The first request for this path gets the full headers but only this many body
    /// bytes, then the connection is closed.
    pub cut_first_after: Option<usize>,
    /// Answer 200 with the whole body even when a range is asked for.
    pub ignore_range: bool,
}

impl Route {
    pub fn new(body: Vec<u8>) -> Self {
        Route {
            body,
            ..Route::default()
        }
    }

    /// The first answer stops after `cut` body bytes.
    pub fn cut_after(body: Vec<u8>, cut: usize) -> Self {
        Route {
            cut_first_after: Some(cut),
            ..Route::new(body)
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

pub struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(routes: HashMap<String, Route>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &routes, &seen2),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, routes: &HashMap<String, Route>, seen: &Mutex<Vec<Seen>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let range = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("range")
            .then(|| v.trim().to_string())
    });
    let first = {
        let mut s = seen.lock().expect("request log");
        let first = !s.iter().any(|r| r.path == path);
        s.push(Seen {
            path: path.clone(),
            range: range.clone(),
        });
        first
    };
    let Some(route) = routes.get(&path) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let len = route.body.len();
    let start = range
        .as_deref()
        .filter(|_| !route.ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, extra, body) = match start {
        Some(s) if s >= len => (
            "416 Range Not Satisfiable",
            format!("Content-Range: bytes */{len}\r\n"),
            &[][..],
        ),
        Some(s) => (
            "206 Partial Content",
            format!("Content-Range: bytes {s}-{}/{len}\r\n", len - 1),
            &route.body[s..],
        ),
        None => ("200 OK", String::new(), &route.body[..]),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(header.as_bytes());
    let body = match route.cut_first_after {
        Some(n) if first => &body[..n.min(body.len())],
        _ => body,
    };
    let _ = stream.write_all(body);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}
