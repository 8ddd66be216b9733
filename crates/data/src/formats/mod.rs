//! Readers for the file formats on disk. Each parser takes a name (for error messages) and
//! the file's bytes, validates everything against the byte count before allocating, and
//! returns a [`DataError`] on bad input, never a panic. The fuzz targets call these entry
//! points directly.

pub mod archive;
pub mod cifar;
pub mod folder;
pub mod folder_cache;
pub mod idx;
pub mod pickle;

use std::io::Read;
use std::path::Path;

use crate::DataError;

/// The largest decompressed size accepted from one gzip stream (the CIFAR-10 archive is
/// 180 MB unpacked): a bound on what a decompression bomb can make us allocate.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// The fuzz targets, by name: `idx`, `cifar_binary`, `pickle`, `image`, `archive`.
pub const FUZZ_TARGETS: [&str; 5] = ["idx", "cifar_binary", "pickle", "image", "archive"];

/// Feeds `data` to the parser entry points of one fuzz target (see [`FUZZ_TARGETS`]),
/// discarding the results: both `fuzz/` and the corpus replay test call this, so what CI
/// replays is exactly what the fuzzer exercises. Returns false for an unknown target.
pub fn fuzz_one(target: &str, data: &[u8]) -> bool {
    match target {
        "idx" => {
            if let Ok(bytes) = maybe_gunzip("fuzz", data.to_vec()) {
                let _ = idx::parse("fuzz", &bytes);
            }
        }
        "cifar_binary" => {
            let _ = cifar::parse_binary("fuzz", data, cifar::Kind::Cifar10);
            let _ = cifar::parse_binary("fuzz", data, cifar::Kind::Cifar100);
            let _ = cifar::parse_names_txt("fuzz", data, cifar::Kind::Cifar10);
        }
        "pickle" => {
            let _ = pickle::parse("fuzz", data);
            let _ = cifar::parse_python("fuzz", data, cifar::Kind::Cifar10);
            let _ = cifar::parse_python("fuzz", data, cifar::Kind::Cifar100);
            let _ = cifar::parse_python_meta("fuzz", data, cifar::Kind::Cifar10);
        }
        "image" => {
            let _ = folder::decode_image("fuzz", data, 3, 8, 8);
            let _ = folder::decode_image("fuzz", data, 1, 5, 3);
        }
        "archive" => {
            let _ = cifar::open_archive("fuzz", data);
        }
        _ => return false,
    }
    true
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, "a readable file", &e))
}

/// True if `bytes` start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses a gzip stream (all members), refusing more than [`MAX_DECOMPRESSED`] bytes.
pub fn gunzip(name: &str, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(bytes).take(MAX_DECOMPRESSED + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| DataError::new(name, "a valid gzip stream", format!("{e}")))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(DataError::new(
            name,
            format!("at most {MAX_DECOMPRESSED} bytes once decompressed"),
            "more",
        ));
    }
    Ok(out)
}

/// The bytes as they are, or decompressed if they are gzip.
pub fn maybe_gunzip(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if is_gzip(&bytes) {
        gunzip(name, &bytes)
    } else {
        Ok(bytes)
    }
}
