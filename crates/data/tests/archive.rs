//! Reading selected members of a tar.gz archive: only the wanted members, and a cut
//! archive is an error.

mod common;

use common::tar_gz;
use ember_data::formats::archive::read_tar;

fn members(files: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(path, data)| (path.to_string(), data.to_vec()))
        .collect()
}

#[test]
fn reads_wanted_members_only() {
    let t = tar_gz(&members(&[("d/a.bin", b"abc"), ("d/readme.html", b"zz")]));
    let mut m = read_tar("t.tar.gz", &t, |b| b.ends_with(".bin")).unwrap();
    assert!(m.has("a.bin"));
    assert!(!m.has("readme.html"));
    assert_eq!(
        m.take("a.bin"),
        Some(("t.tar.gz:d/a.bin".to_string(), b"abc".to_vec()))
    );
}

#[test]
fn truncated_archive_is_an_error() {
    let t = tar_gz(&members(&[("d/a.bin", &[7u8; 5000])]));
    let e = read_tar("t.tar.gz", &t[..t.len() / 2], |_| true).unwrap_err();
    assert!(e.file.starts_with("t.tar.gz"), "{e}");
    if let Ok(m) = read_tar("junk", b"not an archive at all", |_| true) {
        assert!(m.files.is_empty());
    }
}
