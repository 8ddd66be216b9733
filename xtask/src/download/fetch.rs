//! HTTP download of one file into a `.part` file, resuming with a `Range` request when a
//! partial copy exists, with a progress bar.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A failed attempt: what went wrong and whether bytes were saved (so a retry resumes).
pub(crate) struct AttemptError {
    pub message: String,
    pub progressed: bool,
}

/// A blocking HTTP client for dataset files.
pub(crate) struct Fetcher {
    agent: ureq::Agent,
    progress: bool,
    retries: u32,
}

impl Fetcher {
    /// `retries`: how many times a transfer that was cut after saving some bytes is resumed
    /// within one call. `progress`: draw a progress bar on stderr.
    pub fn new(progress: bool, retries: u32) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent("ember-xtask-download")
            .build()
            .into();
        Fetcher {
            agent,
            progress,
            retries,
        }
    }

    /// Downloads `url` into `part`, resuming from `part`'s current length. On error the
    /// partial file is kept for a later resume.
    pub fn fetch(&self, url: &str, part: &Path, label: &str) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            match self.fetch_once(url, part, label) {
                Ok(()) => return Ok(()),
                Err(e) if e.progressed && attempt < self.retries => {
                    attempt += 1;
                    eprintln!(
                        "{label}: {}; resuming (retry {attempt} of {})",
                        e.message, self.retries
                    );
                }
                Err(e) => return Err(e.message),
            }
        }
    }

    fn fetch_once(&self, url: &str, part: &Path, label: &str) -> Result<(), AttemptError> {
        let fail = |message: String| AttemptError {
            message,
            progressed: false,
        };
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut request = self.agent.get(url);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        let response = request.call().map_err(|e| fail(e.to_string()))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let length: Option<u64> = header("content-length").and_then(|v| v.trim().parse().ok());
        let start = match status {
            206 if have > 0 && range_start(header("content-range").as_deref()) == Some(have) => {
                have
            }
            206 => {
                // A range we did not ask for: start over without one.
                truncate(part).map_err(|e| fail(format!("{}: {e}", part.display())))?;
                return Err(AttemptError {
                    message: "server answered an unexpected byte range".into(),
                    progressed: true,
                });
            }
            200 => 0,
            // The part file already holds the whole file (or more); verification decides.
            416 if have > 0 => return Ok(()),
            _ => return Err(fail(format!("HTTP status {status}"))),
        };
        let file = if start == 0 {
            File::create(part)
        } else {
            OpenOptions::new().append(true).open(part)
        }
        .map_err(|e| fail(format!("{}: cannot open for writing: {e}", part.display())))?;

        let bar = self.bar(label, length.map(|n| start + n), start);
        let mut reader = response.into_body().into_reader();
        let result = copy_counting(&mut reader, BufWriter::new(file), &bar);
        bar.finish_and_clear();
        let received = match result {
            Ok(n) => n,
            Err((n, e)) => {
                return Err(AttemptError {
                    message: format!("transfer interrupted after {} bytes: {e}", start + n),
                    progressed: n > 0,
                });
            }
        };
        match length {
            Some(len) if received != len => Err(AttemptError {
                message: format!(
                    "connection closed after {} of {} bytes",
                    start + received,
                    start + len
                ),
                progressed: received > 0,
            }),
            _ => Ok(()),
        }
    }

    fn bar(&self, label: &str, total: Option<u64>, done: u64) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        let template = if total.is_some() {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg} {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        bar.set_position(done);
        bar
    }
}

/// Copies until EOF, flushing what was received even when the transfer breaks off.
/// Returns the bytes copied, or the bytes copied before the error.
fn copy_counting(
    reader: &mut impl Read,
    mut out: BufWriter<File>,
    bar: &ProgressBar,
) -> Result<u64, (u64, io::Error)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let outcome = loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        if let Err(e) = out.write_all(&buf[..n]) {
            break Err(e);
        }
        total += n as u64;
        bar.inc(n as u64);
    };
    let flushed = out.flush();
    match (outcome, flushed) {
        (Ok(()), Ok(())) => Ok(total),
        (Err(e), _) | (Ok(()), Err(e)) => Err((total, e)),
    }
}

/// The first byte position of a `Content-Range: bytes START-END/TOTAL` header.
fn range_start(header: Option<&str>) -> Option<u64> {
    let spec = header?.trim().strip_prefix("bytes")?.trim_start();
    spec.split('-').next()?.trim().parse().ok()
}

fn truncate(path: &Path) -> io::Result<()> {
    File::create(path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::range_start;

    #[test]
    fn parses_content_range() {
        assert_eq!(range_start(Some("bytes 100-199/200")), Some(100));
        assert_eq!(range_start(Some("bytes 0-0/1")), Some(0));
        assert_eq!(range_start(Some("items 1-2/3")), None);
        assert_eq!(range_start(None), None);
    }
}
