//! Unpacking verified archives into a (temporary) dataset folder. Only plain files and
//! folders with relative, `..`-free paths are written; anything else is an error.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::catalog::{Archive, Unpack};
use super::error::Error;

/// What a verified source file is, which decides how it is unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The archive as published (or a re-compressed copy with the same content).
    Packed,
    /// An already decompressed copy of a [`Unpack::Gunzip`] archive's content.
    Unpacked,
}

/// Unpacks `src` (a verified copy of `archive`) into `dest`.
pub fn unpack(src: &Path, archive: &Archive, form: Form, dest: &Path) -> Result<(), Error> {
    match (archive.unpack, form) {
        (Unpack::Gunzip { output, .. }, Form::Unpacked) => {
            let to = dest.join(output);
            fs::copy(src, &to)
                .map(drop)
                .map_err(|e| Error::io(&to, "copy into", e))
        }
        (Unpack::Gunzip { output, .. }, Form::Packed) => gunzip(src, &dest.join(output)),
        (Unpack::TarGz { strip }, _) => untar_gz(src, strip, dest),
    }
}

fn open(src: &Path) -> Result<BufReader<File>, Error> {
    File::open(src)
        .map(BufReader::new)
        .map_err(|e| Error::io(src, "open", e))
}

fn gunzip(src: &Path, to: &Path) -> Result<(), Error> {
    let mut decoder = MultiGzDecoder::new(open(src)?);
    let file = File::create(to).map_err(|e| Error::io(to, "create", e))?;
    let mut out = BufWriter::new(file);
    copy_or_corrupt(&mut decoder, &mut out, src, to)?;
    out.flush().map_err(|e| Error::io(to, "write", e))
}

/// Copies, telling a decoding error in `src` (corrupt input) from a write error to `to`.
fn copy_or_corrupt(
    reader: &mut impl io::Read,
    out: &mut impl Write,
    src: &Path,
    to: &Path,
) -> Result<u64, Error> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Corrupt {
                    path: src.to_path_buf(),
                    problem: format!("cannot decompress: {e}"),
                });
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| Error::io(to, "write", e))?;
        total += n as u64;
    }
}

fn untar_gz(src: &Path, strip: &str, dest: &Path) -> Result<(), Error> {
    let corrupt = |problem: String| Error::Corrupt {
        path: src.to_path_buf(),
        problem,
    };
    let mut tar = tar::Archive::new(MultiGzDecoder::new(open(src)?));
    let entries = tar
        .entries()
        .map_err(|e| corrupt(format!("not a valid tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("bad tar entry: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| corrupt(format!("bad path in tar: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let Some(rel) = safe_relative(&raw, strip) else {
            return Err(corrupt(format!(
                "unexpected member {} (expected everything under {strip}/, no absolute or .. paths)",
                raw.display()
            )));
        };
        let to = dest.join(&rel);
        if kind.is_dir() {
            fs::create_dir_all(&to).map_err(|e| Error::io(&to, "create folder", e))?;
        } else if kind.is_file() {
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create folder", e))?;
            }
            let file = File::create(&to).map_err(|e| Error::io(&to, "create", e))?;
            let mut out = BufWriter::new(file);
            copy_or_corrupt(&mut entry, &mut out, src, &to)?;
            out.flush().map_err(|e| Error::io(&to, "write", e))?;
        } else {
            return Err(corrupt(format!(
                "member {} is not a plain file or folder ({kind:?}); refusing to unpack it",
                raw.display()
            )));
        }
    }
    Ok(())
}

/// `path` without its leading `strip` folder, when it is relative, free of `..`, and
/// under `strip`. The `strip` folder itself maps to the empty path.
fn safe_relative(path: &Path, strip: &str) -> Option<PathBuf> {
    let mut parts = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir));
    match parts.next()? {
        Component::Normal(first) if first == strip => {}
        _ => return None,
    }
    let mut rel = PathBuf::new();
    for part in parts {
        match part {
            Component::Normal(p) => rel.push(p),
            _ => return None,
        }
    }
    Some(rel)
}

#[cfg(test)]
mod tests {
    use super::safe_relative;
    use std::path::{Path, PathBuf};

    #[test]
    fn strips_the_top_folder_and_rejects_escapes() {
        assert_eq!(
            safe_relative(Path::new("top/a.bin"), "top"),
            Some(PathBuf::from("a.bin"))
        );
        assert_eq!(
            safe_relative(Path::new("./top/d/a"), "top"),
            Some(PathBuf::from("d/a"))
        );
        assert_eq!(
            safe_relative(Path::new("top/"), "top"),
            Some(PathBuf::new())
        );
        assert_eq!(safe_relative(Path::new("other/a"), "top"), None);
        assert_eq!(safe_relative(Path::new("top/../x"), "top"), None);
        assert_eq!(safe_relative(Path::new("/top/a"), "top"), None);
    }
}
