//! Helpers of the download tests: hashes, generated archives, dataset descriptions, and
//! what an installed dataset looks like.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};
use xtask::download::{Archive, Dataset, MANIFEST, Unpack};

use super::server::{Route, Server};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
pub fn md5_hex(b: &[u8]) -> String {
    hex(&Md5::digest(b))
}
pub fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// Deterministic, incompressible-looking bytes (an xorshift stream), so the archive is
/// about as large as its content and a cut mid-transfer lands inside the data.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub const A_BIN: usize = 96 * 1024;

/// `top/a.bin` (noise), `top/sub/b.txt`: the content of the toy tar.gz.
pub fn toy_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.bin", noise(A_BIN, 7)),
        ("sub/b.txt", b"hello from the toy dataset\n".to_vec()),
    ]
}

pub fn tar_gz(prefix: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{prefix}{name}"), &data[..])
            .expect("tar append");
    }
    tar.into_inner()
        .expect("tar finish")
        .finish()
        .expect("gzip finish")
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip write");
    enc.finish().expect("gzip finish")
}

pub const TOY_FILES: &[&str] = &["a.bin", "sub/b.txt"];

/// The one-archive dataset `toy`: `toy.tar.gz` from `url` with the given checksums. Its
/// strings are leaked (a few bytes a test) so that it borrows nothing from the test.
pub fn toy_at(url: &str, md5: Option<&str>, sha256: Option<&str>) -> Dataset<'static> {
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let archive = Archive {
        file_name: "toy.tar.gz",
        urls: Box::leak(Box::new([leak(url)])),
        md5: md5.map(leak),
        sha256: sha256.map(leak),
        unpack: Unpack::TarGz { strip: "top" },
    };
    Dataset {
        name: "toy",
        description: "test",
        archives: Box::leak(Box::new([archive])),
        files: TOY_FILES,
    }
}

pub fn serve_one(path: &str, route: Route) -> Server {
    Server::start(HashMap::from([(path.to_string(), route)]))
}

/// The toy archive, its checksums, and a server answering `/toy.tar.gz` at `url` with it.
pub struct ToyServer {
    pub archive: Vec<u8>,
    pub md5: String,
    pub sha256: String,
    pub server: Server,
    pub url: String,
}

/// Serves the toy archive at `/toy.tar.gz` through the route `route` makes of it.
pub fn serve_toy(route: impl FnOnce(Vec<u8>) -> Route) -> ToyServer {
    let archive = tar_gz("top/", &toy_files());
    let server = serve_one("/toy.tar.gz", route(archive.clone()));
    ToyServer {
        md5: md5_hex(&archive),
        sha256: sha256_hex(&archive),
        url: server.url("/toy.tar.gz"),
        archive,
        server,
    }
}

/// A gzip archive `file_name` unpacked to `output`.
pub fn gz_archive<'a>(
    file_name: &'a str,
    output: &'a str,
    urls: &'a [&'a str],
    md5: Option<&'a str>,
    sha256: Option<&'a str>,
    content_sha256: Option<&'a str>,
) -> Archive<'a> {
    Archive {
        file_name,
        urls,
        md5,
        sha256,
        unpack: Unpack::Gunzip {
            output,
            content_sha256,
        },
    }
}

/// The toy archive served as it is, and the dataset that downloads it (checked by MD5).
pub fn served_toy() -> (Server, Dataset<'static>) {
    let toy = serve_toy(Route::new);
    let ds = toy_at(&toy.url, Some(&toy.md5), None);
    (toy.server, ds)
}

/// The dataset `pair`: the files `one` and `two` from two gzip `archives`.
pub fn pair<'a>(archives: &'a [Archive<'a>]) -> Dataset<'a> {
    Dataset {
        name: "pair",
        description: "test",
        archives,
        files: &["one", "two"],
    }
}

/// Every entry under `dir` (relative paths), or nothing when `dir` does not exist.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(
                p.strip_prefix(root)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| p.clone()),
            );
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub fn assert_toy_installed(data: &Path) {
    let dir = data.join("toy");
    for (name, content) in toy_files() {
        let got = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == content, "{name} differs from what was archived");
    }
    assert!(dir.join(MANIFEST).is_file());
    // Nothing but the dataset folder remains: no downloads, no temporary folder.
    let top: Vec<_> = tree(data)
        .into_iter()
        .filter(|p| p.components().count() == 1)
        .collect();
    assert_eq!(top, vec![PathBuf::from("toy")]);
}
