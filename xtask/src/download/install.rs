//! Putting a dataset in place: skip if already verified, otherwise obtain every archive
//! (download or `--from`), verify all of them, unpack into a temporary folder next to the
//! target, write the manifest, and rename the folder into place in one step.

use std::fs;
use std::path::{Path, PathBuf};

use super::catalog::{Archive, Dataset, Unpack};
use super::error::Error;
use super::extract::{self, Form};
use super::fetch::Fetcher;
use super::manifest::{self, Record};
use super::verify::{self, Digests, Verified};

/// Where and how to install a dataset.
#[derive(Clone, Debug)]
pub struct Options {
    /// The data directory; the dataset goes to `<data_dir>/<name>`.
    pub data_dir: PathBuf,
    /// Import from this local archive or folder instead of downloading.
    pub from: Option<PathBuf>,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// How often a cut transfer is resumed within one run before giving up.
    pub retries: u32,
}

impl Options {
    /// Download into `data_dir`, no progress bars, 3 resumes per file.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Options {
            data_dir: data_dir.into(),
            from: None,
            progress: false,
            retries: 3,
        }
    }
}

/// What [`install`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The folder already held a verified copy; nothing was fetched.
    AlreadyPresent(PathBuf),
    /// The dataset was verified and unpacked into this folder.
    Installed {
        /// The dataset folder.
        dir: PathBuf,
        /// Archives accepted through their decompressed content (re-compressed copies).
        content_verified: Vec<String>,
    },
}

/// Name of the folder (inside the data directory) where downloads are kept until unpacked.
pub const DOWNLOADS: &str = ".downloads";

/// Whether `<data_dir>/<name>` holds a verified copy of `ds`.
pub fn is_installed(ds: &Dataset, data_dir: &Path) -> bool {
    manifest::is_verified(ds, &ds.dir_in(data_dir))
}

/// A verified file ready to unpack.
struct Source<'a> {
    path: PathBuf,
    archive: &'a Archive<'a>,
    form: Form,
    how: &'static str,
    digests: Digests,
}

impl<'a> Source<'a> {
    /// The packed archive at `path`, verified as `verify::verify` found.
    fn packed(path: PathBuf, archive: &'a Archive<'a>, (v, digests): (Verified, Digests)) -> Self {
        Source {
            path,
            archive,
            form: Form::Packed,
            how: how(v),
            digests,
        }
    }
}

/// Installs `ds` under `opts.data_dir`: see the module doc for the steps.
pub fn install(ds: &Dataset, opts: &Options) -> Result<Outcome, Error> {
    let target = ds.dir_in(&opts.data_dir);
    if target.exists() {
        return if manifest::is_verified(ds, &target) {
            Ok(Outcome::AlreadyPresent(target))
        } else {
            Err(Error::NotVerified { path: target })
        };
    }
    let created_data_dir = !opts.data_dir.exists();
    fs::create_dir_all(&opts.data_dir)
        .map_err(|e| Error::io(&opts.data_dir, "create folder", e))?;
    let result = obtain_and_unpack(ds, opts, &target);
    if result.is_err() && created_data_dir {
        // Only removes it when empty, i.e. when nothing is kept for a resume.
        let _ = fs::remove_dir(&opts.data_dir);
    }
    result
}

fn obtain_and_unpack(ds: &Dataset, opts: &Options, target: &Path) -> Result<Outcome, Error> {
    remove_stale_temps(ds, &opts.data_dir);
    let sources = match &opts.from {
        Some(from) => import(ds, from)?,
        None => download(ds, opts)?,
    };
    let tmp = opts
        .data_dir
        .join(format!(".{}.tmp-{}", ds.name, std::process::id()));
    let unpacked = unpack_all(ds, &sources, &tmp).and_then(|()| {
        fs::rename(&tmp, target).map_err(|e| Error::io(target, "rename into place", e))
    });
    if unpacked.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    // Verified downloads are only needed until unpacked (or found unusable). An I/O
    // failure such as a full disk keeps them so that the next run need not fetch again.
    let keep = matches!(unpacked, Err(Error::Io { .. }));
    if opts.from.is_none() && !keep {
        for s in &sources {
            let _ = fs::remove_file(&s.path);
        }
        let _ = fs::remove_dir(opts.data_dir.join(DOWNLOADS));
    }
    unpacked?;
    let content_verified = sources
        .iter()
        .filter(|s| s.how == "content")
        .map(|s| s.archive.file_name.to_string())
        .collect();
    Ok(Outcome::Installed {
        dir: target.to_path_buf(),
        content_verified,
    })
}

fn unpack_all(ds: &Dataset, sources: &[Source], tmp: &Path) -> Result<(), Error> {
    fs::create_dir_all(tmp).map_err(|e| Error::io(tmp, "create folder", e))?;
    for s in sources {
        extract::unpack(&s.path, s.archive, s.form, tmp)?;
    }
    let missing: Vec<&str> = ds
        .files
        .iter()
        .copied()
        .filter(|f| !tmp.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        let names: Vec<&str> = sources.iter().map(|s| s.archive.file_name).collect();
        return Err(Error::Corrupt {
            path: sources
                .first()
                .map_or_else(|| tmp.to_path_buf(), |s| s.path.clone()),
            problem: format!(
                "unpacking {} did not produce {}",
                names.join(", "),
                missing.join(", ")
            ),
        });
    }
    let records: Vec<Record> = sources
        .iter()
        .map(|s| Record {
            file_name: s.archive.file_name,
            digests: &s.digests,
            how: s.how,
        })
        .collect();
    manifest::write(tmp, ds, &records)
}

/// Temporary folders left by an earlier run that was killed mid-unpack.
fn remove_stale_temps(ds: &Dataset, data_dir: &Path) {
    let prefix = format!(".{}.tmp-", ds.name);
    let Ok(entries) = fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn how(v: Verified) -> &'static str {
    match v {
        Verified::Archive => "archive",
        Verified::Content => "content",
    }
}

/// Downloads every archive into `<data_dir>/.downloads`, verifying each. A checksum
/// failure deletes this dataset's downloads; a network failure keeps `.part` files.
fn download<'a>(ds: &'a Dataset<'a>, opts: &Options) -> Result<Vec<Source<'a>>, Error> {
    let dl = opts.data_dir.join(DOWNLOADS);
    fs::create_dir_all(&dl).map_err(|e| Error::io(&dl, "create folder", e))?;
    let fetcher = Fetcher::new(opts.progress, opts.retries);
    let mut sources = Vec::new();
    for archive in ds.archives {
        let done = dl.join(archive.file_name);
        let part = dl.join(format!("{}.part", archive.file_name));
        // A verified download kept from an interrupted unpack.
        if done.is_file() {
            if let Ok(verified) = verify::verify(&done, archive) {
                sources.push(Source::packed(done, archive, verified));
                continue;
            }
            let _ = fs::remove_file(&done);
        }
        let mut attempts = Vec::new();
        for url in archive.urls {
            match fetcher.fetch(url, &part, archive.file_name) {
                Ok(()) => {
                    attempts.clear();
                    break;
                }
                Err(e) => attempts.push((url.to_string(), e)),
            }
        }
        if !attempts.is_empty() || archive.urls.is_empty() {
            let _ = fs::remove_dir(&dl); // only if no partial download is kept
            return Err(Error::Network {
                dataset: ds.name.to_string(),
                file_name: archive.file_name.to_string(),
                attempts,
                needed: ds
                    .archives
                    .iter()
                    .map(|a| a.file_name.to_string())
                    .collect(),
            });
        }
        match verify::verify(&part, archive) {
            Ok(verified) => {
                fs::rename(&part, &done).map_err(|e| Error::io(&done, "rename", e))?;
                sources.push(Source::packed(done, archive, verified));
            }
            Err(mut e) => {
                let _ = fs::remove_file(&part);
                if let Error::Checksum { deleted, .. } = &mut e {
                    *deleted = true;
                }
                for s in &sources {
                    let _ = fs::remove_file(&s.path);
                }
                let _ = fs::remove_dir(&dl);
                return Err(e);
            }
        }
    }
    Ok(sources)
}

/// Verifies the local copy `from` (an archive, or a folder holding the archives or, for
/// gzip files with a known content checksum, their decompressed content). Never modifies it.
fn import<'a>(ds: &'a Dataset<'a>, from: &Path) -> Result<Vec<Source<'a>>, Error> {
    let meta = fs::metadata(from).map_err(|e| Error::Source {
        path: from.to_path_buf(),
        problem: format!("cannot read it: {e}"),
    })?;
    if meta.is_file() {
        let [archive] = ds.archives else {
            let names: Vec<&str> = ds.archives.iter().map(|a| a.file_name).collect();
            return Err(Error::Source {
                path: from.to_path_buf(),
                problem: format!(
                    "is a file, but {} is made of {} files ({}); pass the folder holding them",
                    ds.name,
                    names.len(),
                    names.join(", ")
                ),
            });
        };
        let verified = verify::verify(from, archive)?;
        return Ok(vec![Source::packed(from.to_path_buf(), archive, verified)]);
    }
    let mut sources = Vec::new();
    let mut missing = Vec::new();
    for archive in ds.archives {
        let packed = from.join(archive.file_name);
        if packed.is_file() {
            let verified = verify::verify(&packed, archive)?;
            sources.push(Source::packed(packed, archive, verified));
            continue;
        }
        if let Unpack::Gunzip {
            output,
            content_sha256: Some(want),
        } = archive.unpack
        {
            let raw = from.join(output);
            if raw.is_file() {
                let digests = verify::digest_file(&raw)?;
                if !digests.sha256.eq_ignore_ascii_case(want) {
                    return Err(Error::Checksum {
                        path: raw,
                        file_name: output.to_string(),
                        algo: "SHA-256",
                        expected: want.to_ascii_lowercase(),
                        actual: digests.sha256,
                        deleted: false,
                    });
                }
                sources.push(Source {
                    path: raw,
                    archive,
                    form: Form::Unpacked,
                    how: "unpacked",
                    digests,
                });
                continue;
            }
        }
        missing.push(archive.file_name);
    }
    if !missing.is_empty() {
        return Err(Error::Source {
            path: from.to_path_buf(),
            problem: format!(
                "is a folder without {} (needed for {})",
                missing.join(", "),
                ds.name
            ),
        });
    }
    Ok(sources)
}
