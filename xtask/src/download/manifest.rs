//! `ember-manifest.txt`: written last into a dataset folder, it records what was verified
//! (the archives' digests) and what was unpacked (every file with its size). A folder whose
//! manifest matches the current catalog entry and whose files all have their recorded sizes
//! is a verified dataset and is not fetched again.
//!
//! Format (text, one record per line):
//! ```text
//! ember-dataset 1
//! name fashion-mnist
//! catalog <sha256 of the catalog entry>
//! archive <file name> md5 <hex> sha256 <hex> verified <archive|content|unpacked>
//! file <size in bytes> <path relative to the dataset folder>
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::catalog::{Dataset, Unpack};
use super::error::Error;
use super::verify::{Digests, hex};

/// The manifest's file name inside a dataset folder.
pub const MANIFEST: &str = "ember-manifest.txt";
const HEADER: &str = "ember-dataset 1";

/// One verified source, as recorded in the manifest.
pub(crate) struct Record<'a> {
    pub file_name: &'a str,
    pub digests: &'a Digests,
    /// "archive", "content" or "unpacked".
    pub how: &'static str,
}

/// A fingerprint of the catalog entry: a change of URL-independent facts (names,
/// checksums, layout) makes old folders stale.
fn catalog_fingerprint(ds: &Dataset) -> String {
    let mut h = Sha256::new();
    h.update(ds.name.as_bytes());
    for a in ds.archives {
        let unpack = match a.unpack {
            Unpack::Gunzip {
                output,
                content_sha256,
            } => {
                format!("gunzip {output} {}", content_sha256.unwrap_or("-"))
            }
            Unpack::TarGz { strip } => format!("tar.gz {strip}"),
        };
        let line = format!(
            "\n{} {} {} {unpack}",
            a.file_name,
            a.md5.unwrap_or("-"),
            a.sha256.unwrap_or("-")
        );
        h.update(line.as_bytes());
    }
    for f in ds.files {
        h.update(b"\nfile ");
        h.update(f.as_bytes());
    }
    hex(&h.finalize())
}

/// Writes the manifest into `dir`, listing every file already there.
pub(crate) fn write(dir: &Path, ds: &Dataset, records: &[Record]) -> Result<(), Error> {
    let mut text = format!(
        "{HEADER}\nname {}\ncatalog {}\n",
        ds.name,
        catalog_fingerprint(ds)
    );
    for r in records {
        text += &format!(
            "archive {} md5 {} sha256 {} verified {}\n",
            r.file_name, r.digests.md5, r.digests.sha256, r.how
        );
    }
    let mut files = Vec::new();
    list_files(dir, Path::new(""), &mut files)?;
    files.sort();
    for (rel, size) in &files {
        // Manifest paths use '/' on every platform.
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>();
        text += &format!("file {size} {}\n", rel.join("/"));
    }
    let path = dir.join(MANIFEST);
    let mut f = fs::File::create(&path).map_err(|e| Error::io(&path, "create", e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(&path, "write", e))?;
    f.sync_all().map_err(|e| Error::io(&path, "sync", e))
}

fn list_files(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<(), Error> {
    let dir = root.join(rel);
    let entries = fs::read_dir(&dir).map_err(|e| Error::io(&dir, "list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, "list", e))?;
        let path = rel.join(entry.file_name());
        let meta = entry
            .metadata()
            .map_err(|e| Error::io(&entry.path(), "stat", e))?;
        if meta.is_dir() {
            list_files(root, &path, out)?;
        } else if path != Path::new(MANIFEST) {
            out.push((path, meta.len()));
        }
    }
    Ok(())
}

/// Whether `dir` holds a verified copy of `ds`: its manifest matches the catalog entry,
/// lists every file the entry requires, and every listed file exists with its size.
/// Contents are not re-hashed (sizes catch truncation; hashes were checked on install).
pub fn is_verified(ds: &Dataset, dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string(dir.join(MANIFEST)) else {
        return false;
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return false;
    }
    let mut name_ok = false;
    let mut catalog_ok = false;
    let mut listed = Vec::new();
    for line in lines {
        if let Some(name) = line.strip_prefix("name ") {
            name_ok = name == ds.name;
        } else if let Some(fp) = line.strip_prefix("catalog ") {
            catalog_ok = fp == catalog_fingerprint(ds);
        } else if let Some(rest) = line.strip_prefix("file ") {
            let Some((size, rel)) = rest.split_once(' ') else {
                return false;
            };
            let Ok(size) = size.parse::<u64>() else {
                return false;
            };
            let ok = fs::metadata(dir.join(rel)).is_ok_and(|m| m.is_file() && m.len() == size);
            if !ok {
                return false;
            }
            listed.push(rel);
        }
    }
    name_ok && catalog_ok && ds.files.iter().all(|f| listed.contains(f))
}
