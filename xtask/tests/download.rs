//! `cargo xtask download` against a loopback HTTP server serving small generated archives:
//! good and bad checksums, interrupted and resumed transfers, `--from`, idempotence, and
//! that a failure leaves nothing behind.

#[path = "download/fixtures.rs"]
mod fixtures;
#[path = "download/server.rs"]
mod server;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use fixtures::*;
use server::{Route, Server};
use xtask::download::{Dataset, Error, MANIFEST, Options, Outcome, install, is_installed};

#[test]
fn good_checksum_downloads_verifies_and_unpacks() {
    let toy_server = serve_toy(Route::new);
    let (server, md5, sha) = (&toy_server.server, &toy_server.md5, &toy_server.sha256);
    let ds = toy_at(&toy_server.url, Some(md5), Some(sha));
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");

    let outcome = install(&ds, &Options::new(&data)).expect("install");
    assert_eq!(
        outcome,
        Outcome::Installed {
            dir: data.join("toy"),
            content_verified: vec![]
        }
    );
    assert_toy_installed(&data);
    assert!(is_installed(&ds, &data));
    assert_eq!(server.seen().len(), 1);
    let manifest = fs::read_to_string(data.join("toy").join(MANIFEST)).expect("manifest");
    assert!(manifest.contains(&format!(
        "archive toy.tar.gz md5 {md5} sha256 {sha} verified archive"
    )));
    assert!(manifest.contains(&format!("file {A_BIN} a.bin")));
}

#[test]
fn second_install_makes_no_request() {
    let (server, ds) = served_toy();
    let tmp = tempfile::tempdir().expect("temp dir");

    install(&ds, &Options::new(tmp.path())).expect("first install");
    assert_eq!(server.seen().len(), 1);
    let again = install(&ds, &Options::new(tmp.path())).expect("second install");
    assert_eq!(again, Outcome::AlreadyPresent(tmp.path().join("toy")));
    assert_eq!(
        server.seen().len(),
        1,
        "a verified dataset must not be fetched again"
    );
    drop(server);
    // Still fine with the server gone.
    assert!(matches!(
        install(&ds, &Options::new(tmp.path())),
        Ok(Outcome::AlreadyPresent(_))
    ));
}

#[test]
fn bad_checksum_fails_and_leaves_nothing() {
    let wrong_md5 = md5_hex(b"something else");
    let ToyServer {
        server: _server,
        url,
        ..
    } = serve_toy(Route::new);
    let ds = toy_at(&url, Some(&wrong_md5), None);
    let tmp = tempfile::tempdir().expect("temp dir");

    // The data directory does not exist beforehand: it must not exist afterwards.
    let data = tmp.path().join("data");
    let err = install(&ds, &Options::new(&data)).expect_err("bad checksum must fail");
    match &err {
        Error::Checksum {
            file_name,
            algo,
            expected,
            deleted,
            ..
        } => {
            assert_eq!(
                (file_name.as_str(), *algo, expected.as_str(), *deleted),
                ("toy.tar.gz", "MD5", wrong_md5.as_str(), true)
            );
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(
        err.to_string().contains("toy.tar.gz.part"),
        "message names the file: {err}"
    );
    assert!(!data.exists(), "left behind: {:?}", tree(&data));

    // An existing data directory is left as it was (empty).
    let err = install(&ds, &Options::new(tmp.path())).expect_err("bad checksum must fail");
    assert!(matches!(err, Error::Checksum { .. }));
    assert_eq!(tree(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn bad_second_file_removes_the_first_download_too() {
    let (one, two) = (b"first file".to_vec(), b"second file".to_vec());
    let (gz1, gz2) = (gz(&one), gz(&two));
    let md5_1 = md5_hex(&gz1);
    let server = Server::start(HashMap::from([
        ("/one.gz".to_string(), Route::new(gz1)),
        ("/two.gz".to_string(), Route::new(gz2)),
    ]));
    let (u1, u2) = (server.url("/one.gz"), server.url("/two.gz"));
    let (urls1, urls2) = ([u1.as_str()], [u2.as_str()]);
    let wrong = sha256_hex(b"not it");
    let archives = [
        gz_archive("one.gz", "one", &urls1, Some(&md5_1), None, None),
        gz_archive("two.gz", "two", &urls2, None, Some(&wrong), None),
    ];
    let ds = pair(&archives);
    let tmp = tempfile::tempdir().expect("temp dir");
    let err = install(&ds, &Options::new(tmp.path())).expect_err("second file is bad");
    assert!(
        matches!(&err, Error::Checksum { file_name, algo: "SHA-256", .. } if file_name == "two.gz"),
        "{err}"
    );
    assert_eq!(tree(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn gzip_files_are_decompressed_into_the_dataset_folder() {
    let (one, two) = (noise(5000, 3), b"labels".to_vec());
    let (gz1, gz2) = (gz(&one), gz(&two));
    let (sha1, sha2) = (sha256_hex(&gz1), sha256_hex(&gz2));
    let server = Server::start(HashMap::from([
        ("/m/one.gz".to_string(), Route::new(gz1)),
        ("/m/two.gz".to_string(), Route::new(gz2)),
    ]));
    // The first mirror answers 404; the second is used.
    let (bad1, u1, bad2, u2) = (
        server.url("/x/one.gz"),
        server.url("/m/one.gz"),
        server.url("/x/two.gz"),
        server.url("/m/two.gz"),
    );
    let (urls1, urls2) = ([bad1.as_str(), u1.as_str()], [bad2.as_str(), u2.as_str()]);
    let archives = [
        gz_archive("one.gz", "one", &urls1, None, Some(&sha1), None),
        gz_archive("two.gz", "two", &urls2, None, Some(&sha2), None),
    ];
    let ds = pair(&archives);
    let tmp = tempfile::tempdir().expect("temp dir");
    install(&ds, &Options::new(tmp.path())).expect("install");
    assert_eq!(fs::read(tmp.path().join("pair/one")).expect("one"), one);
    assert_eq!(fs::read(tmp.path().join("pair/two")).expect("two"), two);
    assert_eq!(server.seen().len(), 4, "two 404s and two downloads");
    assert_eq!(
        tree(tmp.path()),
        ["pair", "pair/ember-manifest.txt", "pair/one", "pair/two"].map(PathBuf::from)
    );
}

#[test]
fn interrupted_transfer_is_resumed_within_the_run() {
    let cut = 20_000;
    let ToyServer {
        server,
        url,
        sha256,
        archive,
        ..
    } = serve_toy(|body| Route::cut_after(body, cut));
    assert!(archive.len() > 2 * cut);
    let ds = toy_at(&url, None, Some(&sha256));
    let tmp = tempfile::tempdir().expect("temp dir");

    install(&ds, &Options::new(tmp.path())).expect("install with one resume");
    assert_toy_installed(tmp.path());
    let ranges: Vec<_> = server.seen().into_iter().map(|s| s.range).collect();
    assert_eq!(ranges, vec![None, Some(format!("bytes={cut}-"))]);
}

#[test]
fn interrupted_run_keeps_the_part_file_and_the_next_run_resumes_it() {
    let cut = 30_000;
    let ToyServer {
        server, url, md5, ..
    } = serve_toy(|body| Route::cut_after(body, cut));
    let ds = toy_at(&url, Some(&md5), None);
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut opts = Options::new(tmp.path());
    opts.retries = 0;

    let err = install(&ds, &opts).expect_err("the cut transfer fails without retries");
    assert!(matches!(err, Error::Network { .. }), "{err}");
    assert!(
        err.to_string().contains("--from"),
        "says how to import: {err}"
    );
    let part = tmp.path().join(".downloads/toy.tar.gz.part");
    assert_eq!(fs::metadata(&part).map(|m| m.len()).ok(), Some(cut as u64));

    install(&ds, &opts).expect("second run resumes");
    assert_toy_installed(tmp.path());
    let ranges: Vec<_> = server.seen().into_iter().map(|s| s.range).collect();
    assert_eq!(ranges, vec![None, Some(format!("bytes={cut}-"))]);
}

#[test]
fn complete_part_file_and_servers_without_range_support() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let downloads = tmp.path().join(".downloads");

    // A part file that already holds everything: the server answers 416, verification passes.
    let ToyServer {
        server,
        url,
        md5,
        archive,
        ..
    } = serve_toy(Route::new);
    let ds = toy_at(&url, Some(&md5), None);
    fs::create_dir_all(&downloads).expect("mkdir");
    fs::write(downloads.join("toy.tar.gz.part"), &archive).expect("write part");
    install(&ds, &Options::new(tmp.path())).expect("install from a complete part file");
    assert_toy_installed(tmp.path());
    assert_eq!(
        server.seen()[0].range,
        Some(format!("bytes={}-", archive.len()))
    );

    // A server that ignores Range: the part file is rewritten from the start.
    let tmp = tempfile::tempdir().expect("temp dir");
    let downloads = tmp.path().join(".downloads");
    let ToyServer {
        server: _server,
        url,
        ..
    } = serve_toy(|body| Route {
        ignore_range: true,
        ..Route::new(body)
    });
    let ds = toy_at(&url, Some(&md5), None);
    fs::create_dir_all(&downloads).expect("mkdir");
    fs::write(downloads.join("toy.tar.gz.part"), &archive[..1000]).expect("write part");
    install(&ds, &Options::new(tmp.path())).expect("install despite ignored range");
    assert_toy_installed(tmp.path());
}

#[test]
fn no_network_error_explains_from_and_leaves_nothing() {
    // A port that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}/toy.tar.gz");
    let ds = toy_at(&url, Some(&md5_hex(b"x")), None);
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let err = install(&ds, &Options::new(&data)).expect_err("nothing listens");
    let msg = err.to_string();
    assert!(
        msg.contains(&url) && msg.contains("cargo xtask download toy --from PATH"),
        "{msg}"
    );
    assert!(msg.contains("toy.tar.gz"), "{msg}");
    assert!(!data.exists());
}

#[test]
fn from_local_archive_or_folder_is_verified_the_same_way() {
    let archive = tar_gz("top/", &toy_files());
    let md5 = md5_hex(&archive);
    let src = tempfile::tempdir().expect("temp dir");
    fs::write(src.path().join("toy.tar.gz"), &archive).expect("write archive");
    fs::write(src.path().join("renamed.tgz"), &archive).expect("write archive");
    let ds = toy_at("http://127.0.0.1:9/never-used", Some(&md5), None);

    for from in [src.path().to_path_buf(), src.path().join("renamed.tgz")] {
        let data = tempfile::tempdir().expect("temp dir");
        let mut opts = Options::new(data.path());
        opts.from = Some(from.clone());
        install(&ds, &opts).unwrap_or_else(|e| panic!("--from {}: {e}", from.display()));
        assert_toy_installed(data.path());
    }
    // The source is never touched.
    assert_eq!(
        fs::read(src.path().join("toy.tar.gz")).expect("source"),
        archive
    );

    // A corrupted copy: clear error naming the file, nothing created, source kept.
    let mut bad = archive.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    fs::write(src.path().join("toy.tar.gz"), &bad).expect("write corrupted");
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut opts = Options::new(&data);
    opts.from = Some(src.path().to_path_buf());
    let err = install(&ds, &opts).expect_err("corrupted copy");
    assert!(
        matches!(err, Error::Checksum { deleted: false, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&src.path().join("toy.tar.gz").display().to_string()),
        "{err}"
    );
    assert!(!data.exists());
    assert_eq!(
        fs::read(src.path().join("toy.tar.gz")).expect("source"),
        bad
    );

    // A folder without the archive.
    let empty = tempfile::tempdir().expect("temp dir");
    opts.from = Some(empty.path().to_path_buf());
    let err = install(&ds, &opts).expect_err("missing archive");
    assert!(
        matches!(err, Error::Source { .. }) && err.to_string().contains("toy.tar.gz"),
        "{err}"
    );
    opts.from = Some(empty.path().join("nope"));
    assert!(matches!(install(&ds, &opts), Err(Error::Source { .. })));
    assert!(!data.exists());
}

#[test]
fn from_accepts_recompressed_or_decompressed_copies_by_content_hash() {
    let content = noise(4000, 11);
    let published = gz(&content);
    // Same content, different gzip bytes (another compression level).
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&content).expect("gzip");
    let recompressed = enc.finish().expect("gzip");
    assert_ne!(published, recompressed);
    let (md5, content_sha) = (md5_hex(&published), sha256_hex(&content));
    let urls = ["http://127.0.0.1:9/never-used"];
    let archives = [gz_archive(
        "one.gz",
        "one",
        &urls,
        Some(&md5),
        None,
        Some(&content_sha),
    )];
    let ds = Dataset {
        name: "single",
        description: "test",
        archives: &archives,
        files: &["one"],
    };

    let src = tempfile::tempdir().expect("temp dir");
    fs::write(src.path().join("one.gz"), &recompressed).expect("write");
    let data = tempfile::tempdir().expect("temp dir");
    let mut opts = Options::new(data.path());
    opts.from = Some(src.path().to_path_buf());
    let outcome = install(&ds, &opts).expect("re-compressed copy");
    assert_eq!(
        outcome,
        Outcome::Installed {
            dir: data.path().join("single"),
            content_verified: vec!["one.gz".into()]
        }
    );
    assert_eq!(
        fs::read(data.path().join("single/one")).expect("one"),
        content
    );

    // An already decompressed copy in the folder.
    let src = tempfile::tempdir().expect("temp dir");
    fs::write(src.path().join("one"), &content).expect("write");
    let data = tempfile::tempdir().expect("temp dir");
    let mut opts = Options::new(data.path());
    opts.from = Some(src.path().to_path_buf());
    install(&ds, &opts).expect("decompressed copy");
    assert_eq!(
        fs::read(data.path().join("single/one")).expect("one"),
        content
    );

    // Different content is rejected whatever its form.
    let other = gz(&noise(4000, 12));
    fs::remove_file(src.path().join("one")).expect("rm");
    fs::write(src.path().join("one.gz"), other).expect("write");
    let data = tempfile::tempdir().expect("temp dir");
    let mut opts = Options::new(data.path());
    opts.from = Some(src.path().to_path_buf());
    assert!(matches!(
        install(&ds, &opts),
        Err(Error::Checksum { algo: "MD5", .. })
    ));
    assert_eq!(tree(data.path()), Vec::<PathBuf>::new());
}

#[test]
fn unsafe_or_incomplete_archives_are_refused_and_cleaned_up() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cases: [(&str, Vec<u8>); 3] = [
        // A member outside the expected top folder.
        ("outside", tar_gz("", &[("evil.txt", b"x".to_vec())])),
        // The expected files are missing.
        ("incomplete", tar_gz("top/", &[("a.bin", b"x".to_vec())])),
        // Verified but not a gzip file at all.
        ("not-gzip", b"plain bytes, not an archive".to_vec()),
    ];
    for (what, archive) in cases {
        let md5 = md5_hex(&archive);
        let server = serve_one("/toy.tar.gz", Route::new(archive));
        let url = server.url("/toy.tar.gz");
        let ds = toy_at(&url, Some(&md5), None);
        let data = tmp.path().join(what);
        let err = install(&ds, &Options::new(&data)).expect_err(what);
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err}");
        assert!(!data.exists(), "{what}: left behind {:?}", tree(&data));
    }
}

#[test]
fn an_unverified_dataset_folder_is_never_overwritten() {
    let (server, ds) = served_toy();
    let tmp = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(tmp.path().join("toy")).expect("mkdir");
    fs::write(tmp.path().join("toy/mine.txt"), "user data").expect("write");
    let err = install(&ds, &Options::new(tmp.path())).expect_err("not verified");
    assert!(matches!(err, Error::NotVerified { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("toy/mine.txt")).expect("kept"),
        "user data"
    );
    assert!(server.seen().is_empty());

    // A verified folder whose file was truncated is no longer verified.
    fs::remove_dir_all(tmp.path().join("toy")).expect("rm");
    install(&ds, &Options::new(tmp.path())).expect("install");
    fs::write(tmp.path().join("toy/a.bin"), b"short").expect("truncate");
    assert!(!is_installed(&ds, tmp.path()));
    assert!(matches!(
        install(&ds, &Options::new(tmp.path())),
        Err(Error::NotVerified { .. })
    ));
}
