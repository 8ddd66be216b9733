//! Checksums: MD5 and SHA-256 of a file, compared with what the catalog expects.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use super::catalog::{Archive, Unpack};
use super::error::Error;

/// MD5 and SHA-256 of some bytes, lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    /// MD5, 32 hex digits.
    pub md5: String,
    /// SHA-256, 64 hex digits.
    pub sha256: String,
}

/// Both digests of everything `reader` yields.
pub fn digest_reader(mut reader: impl Read) -> io::Result<(Digests, u64)> {
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        total += n as u64;
    }
    Ok((
        Digests {
            md5: hex(&md5.finalize()),
            sha256: hex(&sha.finalize()),
        },
        total,
    ))
}

/// Both digests of the file at `path`.
pub fn digest_file(path: &Path) -> Result<Digests, Error> {
    let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
    digest_reader(file)
        .map(|(d, _)| d)
        .map_err(|e| Error::io(path, "read", e))
}

/// SHA-256 of the gzip-decompressed content of `path`.
pub fn content_sha256(path: &Path) -> Result<String, Error> {
    let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let decoder = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
    digest_reader(decoder)
        .map(|(d, _)| d.sha256)
        .map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            problem: format!("not a valid gzip file ({e})"),
        })
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// How a file passed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The file's own bytes match every checksum the catalog has for it.
    Archive,
    /// The compressed bytes differ (a re-compressed copy), but the decompressed content
    /// matches the catalog's `content_sha256`.
    Content,
}

/// Checks `path` (a copy of `archive`) against the catalog's checksums.
///
/// Every expected archive checksum must match. When one does not and the catalog has a
/// content checksum (gzip files), the decompressed content is checked instead, so that a
/// re-compressed copy with identical content (as Debian ships) is accepted.
pub fn verify(path: &Path, archive: &Archive) -> Result<(Verified, Digests), Error> {
    if archive.md5.is_none() && archive.sha256.is_none() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            problem: format!("the catalog has no checksum for {}", archive.file_name),
        });
    }
    let got = digest_file(path)?;
    let mismatch = first_mismatch(archive, &got);
    let Some((algo, expected, actual)) = mismatch else {
        return Ok((Verified::Archive, got));
    };
    if let Unpack::Gunzip {
        content_sha256: Some(want),
        ..
    } = archive.unpack
    {
        // A gzip file whose header was rewritten still carries the same content.
        if content_sha256(path).is_ok_and(|content| content.eq_ignore_ascii_case(want)) {
            return Ok((Verified::Content, got));
        }
    }
    Err(Error::Checksum {
        path: path.to_path_buf(),
        file_name: archive.file_name.to_string(),
        algo,
        expected: expected.to_ascii_lowercase(),
        actual,
        deleted: false,
    })
}

fn first_mismatch(archive: &Archive, got: &Digests) -> Option<(&'static str, String, String)> {
    let checks = [
        ("MD5", archive.md5, &got.md5),
        ("SHA-256", archive.sha256, &got.sha256),
    ];
    checks.into_iter().find_map(|(algo, want, actual)| {
        let want = want?;
        (!want.eq_ignore_ascii_case(actual)).then(|| (algo, want.to_string(), actual.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let (d, n) = digest_reader(&b"abc"[..]).expect("reading a slice cannot fail");
        assert_eq!(n, 3);
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
