//! Reading selected members of a `.tar.gz` (or plain `.tar`) archive into memory.

use std::io::Read;

use crate::DataError;
use crate::formats::{MAX_DECOMPRESSED, is_gzip};

/// The members of an archive that a reader asked for, keyed by their base name.
#[derive(Debug, Default)]
pub struct Members {
    /// The archive's name, for error messages.
    pub archive: String,
    /// (base name, member path inside the archive, bytes), in archive order.
    pub files: Vec<(String, String, Vec<u8>)>,
}

impl Members {
    /// True if a member with this base name was read.
    pub fn has(&self, base: &str) -> bool {
        self.files.iter().any(|(b, _, _)| b == base)
    }

    /// Removes and returns the member with this base name as (display name, bytes).
    pub fn take(&mut self, base: &str) -> Option<(String, Vec<u8>)> {
        let i = self.files.iter().position(|(b, _, _)| b == base)?;
        let (_, path, bytes) = self.files.swap_remove(i);
        Some((format!("{}:{path}", self.archive), bytes))
    }
}

/// Reads the regular-file members of a tar archive (gzip-compressed or not) whose base name
/// satisfies `wanted`. Sizes are bounded by [`MAX_DECOMPRESSED`] in total, and each buffer
/// grows only with data actually read, so a lying header cannot cause a large allocation.
pub fn read_tar(
    name: &str,
    bytes: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Result<Members, DataError> {
    let reader: Box<dyn Read + '_> = if is_gzip(bytes) {
        Box::new(flate2::read::MultiGzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let bad = |e: std::io::Error| DataError::new(name, "a valid tar archive", format!("{e}"));
    let mut archive = tar::Archive::new(reader);
    let mut members = Members {
        archive: name.to_string(),
        files: Vec::new(),
    };
    let mut total: u64 = 0;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let base = path.rsplit('/').next().unwrap_or("").to_string();
        if !wanted(&base) {
            continue;
        }
        let size = entry.size();
        total = total.saturating_add(size);
        if total > MAX_DECOMPRESSED {
            return Err(DataError::new(
                format!("{name}:{path}"),
                format!("at most {MAX_DECOMPRESSED} bytes of wanted members"),
                format!("{total} bytes"),
            ));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| {
            DataError::new(
                format!("{name}:{path}"),
                format!("{size} bytes of member data"),
                format!("{e}"),
            )
        })?;
        if data.len() as u64 != size {
            return Err(DataError::new(
                format!("{name}:{path}"),
                format!("{size} bytes (from the tar header)"),
                format!("{} bytes", data.len()),
            ));
        }
        members.files.push((base, path, data));
    }
    Ok(members)
}
