//! A cache of decoded image folders, so that a folder of 60,000 JPEGs is decoded once, not
//! on every run: one file per (folder, image size) in a cache folder, holding the classes,
//! labels and pixels, and a fingerprint of the folder's files (relative paths, sizes,
//! modification times) that must match for the cache to be used.
//!
//! The file is `EMBERIMG`, a version, the fingerprint, the image size, the class names, the
//! counts, the labels and the pixels of the training then the test part, all little-endian.
//! It is written to a temporary name and renamed into place, so a reader never sees half of
//! one; a file that does not check out (other version, other fingerprint, wrong length) is
//! ignored and rewritten.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::{DataError, Dataset, Splits};

use super::folder::ImageSize;

const MAGIC: &[u8; 8] = b"EMBERIMG";
const VERSION: u32 = 1;

/// The files of one part of an image folder: class names (sorted) and their image files.
pub(crate) type ClassFiles = [(String, Vec<PathBuf>)];

/// Where the cached copy of a folder would be, and whether it is usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheState {
    /// The cache file for this folder and image size.
    pub path: PathBuf,
    /// Whether it exists and matches the folder's files as they are now.
    pub valid: bool,
    /// Its size in bytes (0 when missing).
    pub bytes: u64,
}

/// 64-bit FNV-1a: a stable hash for names and fingerprints (not for security).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        for &x in b {
            self.0 = (self.0 ^ x as u64).wrapping_mul(0x100_0000_01b3);
        }
        // Separate consecutive fields so that ("ab", "c") and ("a", "bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x100_0000_01b3);
        self
    }
    fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
}

/// The cache file for the folder `root` converted to `size`, in `dir`.
pub(crate) fn cache_path(dir: &Path, root: &Path, size: ImageSize) -> PathBuf {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let key = Fnv::new().bytes(root.to_string_lossy().as_bytes()).0;
    let [c, h, w] = size;
    dir.join(format!("folder-{key:016x}-{c}x{h}x{w}.emberimg"))
}

/// A fingerprint of the folder's parts: every file's path below `root`, size and
/// modification time, and the image size. Any added, removed, renamed, resized or touched
/// file changes it.
pub(crate) fn fingerprint(
    root: &Path,
    parts: &[&ClassFiles],
    size: ImageSize,
) -> Result<u64, DataError> {
    let mut h = Fnv::new();
    for d in size {
        h = h.u64(d as u64);
    }
    for part in parts {
        h = h.u64(part.len() as u64);
        for (class, files) in part.iter() {
            h = h.bytes(class.as_bytes()).u64(files.len() as u64);
            for f in files {
                let meta = std::fs::metadata(f)
                    .map_err(|e| DataError::io(f, "a readable image file", &e))?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as u64);
                let rel = f.strip_prefix(root).unwrap_or(f);
                h = h
                    .bytes(rel.to_string_lossy().as_bytes())
                    .u64(meta.len())
                    .u64(mtime);
            }
        }
    }
    Ok(h.0)
}

/// The state of the cache file `path` for a folder whose files have `fingerprint`.
pub(crate) fn state(path: &Path, fingerprint: u64) -> CacheState {
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let valid = read_header(path).is_some_and(|h| h.fingerprint == fingerprint);
    CacheState {
        path: path.to_path_buf(),
        valid,
        bytes,
    }
}

struct Header {
    fingerprint: u64,
    size: ImageSize,
    classes: Vec<String>,
    counts: [usize; 2],
}

/// Reads exactly `n` bytes, or `None`.
fn take(r: &mut impl Read, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0; n];
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn u32_of(r: &mut impl Read) -> Option<u32> {
    Some(u32::from_le_bytes(take(r, 4)?.try_into().ok()?))
}

fn u64_of(r: &mut impl Read) -> Option<u64> {
    Some(u64::from_le_bytes(take(r, 8)?.try_into().ok()?))
}

/// The header, or `None` when the file is missing or not a cache of this version. Sizes are
/// bounded before anything is allocated from them.
fn header(r: &mut impl Read) -> Option<Header> {
    if take(r, 8)? != MAGIC || u32_of(r)? != VERSION {
        return None;
    }
    let fingerprint = u64_of(r)?;
    let size = [u32_of(r)?, u32_of(r)?, u32_of(r)?].map(|d| d as usize);
    let n_classes = u32_of(r)? as usize;
    if n_classes > 1 << 20 {
        return None;
    }
    let mut classes = Vec::with_capacity(n_classes);
    for _ in 0..n_classes {
        let len = u32_of(r)? as usize;
        if len > 4096 {
            return None;
        }
        classes.push(String::from_utf8(take(r, len)?).ok()?);
    }
    let counts = [u64_of(r)? as usize, u64_of(r)? as usize];
    Some(Header {
        fingerprint,
        size,
        classes,
        counts,
    })
}

fn read_header(path: &Path) -> Option<Header> {
    header(&mut std::io::BufReader::new(File::open(path).ok()?))
}

/// The cached splits, if `path` holds a valid cache of a folder with `fingerprint`,
/// `size` and `classes`.
pub(crate) fn load(
    path: &Path,
    fingerprint: u64,
    size: ImageSize,
    classes: &[String],
) -> Option<Splits> {
    let file = File::open(path).ok()?;
    let total = file.metadata().ok()?.len();
    let mut r = std::io::BufReader::new(file);
    let h = header(&mut r)?;
    if h.fingerprint != fingerprint || h.size != size || h.classes != classes {
        return None;
    }
    let image = size.iter().product::<usize>();
    let n = h.counts[0].checked_add(h.counts[1])?;
    // The file must hold exactly the labels and pixels the header announces.
    let body = n.checked_mul(4)?.checked_add(n.checked_mul(image)?)?;
    let head = 8 + 4 + 8 + 12 + 4 + 16 + classes.iter().map(|c| 4 + c.len()).sum::<usize>();
    if total != (head + body) as u64 {
        return None;
    }
    let labels = take(&mut r, n * 4)?;
    let labels: Vec<usize> = labels
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    if labels.iter().any(|&l| l >= classes.len()) {
        return None;
    }
    let mut part = |count: usize, labels: &[usize]| {
        let pixels = take(&mut r, count * image)?;
        Dataset::new(size, pixels, labels.to_vec(), classes.to_vec()).ok()
    };
    let train = part(h.counts[0], &labels[..h.counts[0]])?;
    let test = part(h.counts[1], &labels[h.counts[0]..])?;
    Some(Splits {
        format: "image-folder".into(),
        train,
        test,
    })
}

/// Writes `splits` as the cache of a folder with `fingerprint` to `path` (through a temporary
/// file and a rename). Errors are returned for the caller to report; the data is unaffected.
pub(crate) fn store(path: &Path, fingerprint: u64, splits: &Splits) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        w.write_all(&fingerprint.to_le_bytes())?;
        for d in splits.train.shape() {
            w.write_all(&(d as u32).to_le_bytes())?;
        }
        let classes = splits.train.classes();
        w.write_all(&(classes.len() as u32).to_le_bytes())?;
        for c in classes {
            w.write_all(&(c.len() as u32).to_le_bytes())?;
            w.write_all(c.as_bytes())?;
        }
        for part in [&splits.train, &splits.test] {
            w.write_all(&(part.len() as u64).to_le_bytes())?;
        }
        for part in [&splits.train, &splits.test] {
            for &l in part.labels() {
                w.write_all(&(l as u32).to_le_bytes())?;
            }
        }
        w.write_all(splits.train.pixels())?;
        w.write_all(splits.test.pixels())?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
