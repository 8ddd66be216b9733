//! The real catalog: its checksums are well formed, the Fashion-MNIST ones match the files
//! Debian ships (skipped when `/usr/share/datasets/fashion-mnist` is absent), and the
//! command line behaves.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use md5::Md5;
use sha2::{Digest, Sha256};
use xtask::download::{DATASETS, Dataset, Error, Options, Outcome, Unpack, install};

const DEBIAN_FASHION: &str = "/usr/share/datasets/fashion-mnist";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn debian_copy() -> Option<PathBuf> {
    let dir = PathBuf::from(DEBIAN_FASHION);
    let complete = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    .iter()
    .all(|f| dir.join(f).is_file());
    if !complete {
        eprintln!("skipped: {DEBIAN_FASHION} not present (apt-get install dataset-fashion-mnist)");
    }
    complete.then_some(dir)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn catalog_is_well_formed() {
    let names: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "cifar10",
            "cifar10-python",
            "cifar100",
            "mnist",
            "fashion-mnist"
        ]
    );
    for ds in DATASETS {
        assert!(
            !ds.archives.is_empty() && !ds.files.is_empty(),
            "{}",
            ds.name
        );
        for a in ds.archives {
            assert!(
                a.md5.is_some() || a.sha256.is_some(),
                "{}: no checksum",
                a.file_name
            );
            assert!(
                a.md5.is_none_or(|h| is_hex(h, 32)),
                "{}: bad MD5",
                a.file_name
            );
            assert!(
                a.sha256.is_none_or(|h| is_hex(h, 64)),
                "{}: bad SHA-256",
                a.file_name
            );
            assert!(!a.urls.is_empty(), "{}: no URL", a.file_name);
            for url in a.urls {
                assert!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "{url}"
                );
                assert!(
                    url.ends_with(&format!("/{}", a.file_name)),
                    "{url} is not {}",
                    a.file_name
                );
            }
            match a.unpack {
                Unpack::Gunzip {
                    output,
                    content_sha256,
                } => {
                    assert!(
                        ds.files.contains(&output),
                        "{output} not in {}'s files",
                        ds.name
                    );
                    assert!(content_sha256.is_none_or(|h| is_hex(h, 64)));
                }
                Unpack::TarGz { strip } => assert!(!strip.is_empty()),
            }
        }
    }
}

/// Debian normalised the gzip headers (dropped the original file name, reset the mtime);
/// the compressed data is untouched. Restoring the two fields rebuilds the published files
/// exactly, which proves the recorded MD5s (published) and SHA-256s (computed) belong to
/// the official files. The mtimes were found by search and are recorded here.
#[test]
fn debian_fashion_mnist_rebuilds_the_published_files() {
    let Some(dir) = debian_copy() else { return };
    let ds = Dataset::find("fashion-mnist").expect("in the catalog");
    let mtimes = [
        ("train-images-idx3-ubyte", 1_504_176_606u32),
        ("train-labels-idx1-ubyte", 1_504_176_606),
        ("t10k-images-idx3-ubyte", 1_504_176_627),
        ("t10k-labels-idx1-ubyte", 1_504_176_627),
    ];
    for (stem, mtime) in mtimes {
        let file = format!("{stem}.gz");
        let debian = fs::read(dir.join(&file)).expect("read Debian copy");
        // gzip header: magic(2) method(1) flags(1) mtime(4) xfl(1) os(1); FNAME flag = 0x08.
        assert_eq!(
            &debian[..4],
            &[0x1f, 0x8b, 8, 0],
            "{file}: unexpected header"
        );
        let mut rebuilt = vec![0x1f, 0x8b, 8, 0x08];
        rebuilt.extend_from_slice(&mtime.to_le_bytes());
        rebuilt.extend_from_slice(&debian[8..10]);
        rebuilt.extend_from_slice(stem.as_bytes());
        rebuilt.push(0);
        rebuilt.extend_from_slice(&debian[10..]);
        let archive = ds
            .archives
            .iter()
            .find(|a| a.file_name == file)
            .expect("catalog entry");
        assert_eq!(
            Some(hex(&Md5::digest(&rebuilt)).as_str()),
            archive.md5,
            "{file}: published MD5"
        );
        assert_eq!(
            Some(hex(&Sha256::digest(&rebuilt)).as_str()),
            archive.sha256,
            "{file}: SHA-256"
        );
    }
}

fn idx_header(path: &Path) -> [u8; 8] {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes[..8].try_into().expect("8 bytes")
}

#[test]
fn from_the_debian_folder_installs_fashion_mnist() {
    let Some(dir) = debian_copy() else { return };
    let ds = Dataset::find("fashion-mnist").expect("in the catalog");
    let data = tempfile::tempdir().expect("temp dir");
    let mut opts = Options::new(data.path());
    opts.from = Some(dir);
    let outcome = install(ds, &opts).expect("install from the Debian copy");
    let Outcome::Installed {
        dir,
        content_verified,
    } = outcome
    else {
        panic!("not installed")
    };
    assert_eq!(
        content_verified.len(),
        4,
        "Debian's copies verify by content"
    );
    // Name, size in bytes, IDX dimensions (the magic's last byte) and item count.
    let expect = [
        ("train-images-idx3-ubyte", 47_040_016, 3, 60_000u32),
        ("train-labels-idx1-ubyte", 60_008, 1, 60_000),
        ("t10k-images-idx3-ubyte", 7_840_016, 3, 10_000),
        ("t10k-labels-idx1-ubyte", 10_008, 1, 10_000),
    ];
    for (name, size, dims, count) in expect {
        let path = dir.join(name);
        assert_eq!(
            fs::metadata(&path).map(|m| m.len()).ok(),
            Some(size),
            "{name}"
        );
        let [c0, c1, c2, c3] = count.to_be_bytes();
        let header = [0, 0, 8, dims, c0, c1, c2, c3];
        assert_eq!(idx_header(&path), header, "{name}: IDX magic and count");
    }
    assert!(matches!(install(ds, &opts), Ok(Outcome::AlreadyPresent(_))));
}

#[test]
fn a_corrupted_fashion_mnist_copy_is_refused() {
    let Some(dir) = debian_copy() else { return };
    let ds = Dataset::find("fashion-mnist").expect("in the catalog");
    let src = tempfile::tempdir().expect("temp dir");
    for a in ds.archives {
        fs::copy(dir.join(a.file_name), src.path().join(a.file_name)).expect("copy");
    }
    let victim = src.path().join("train-labels-idx1-ubyte.gz");
    let mut bytes = fs::read(&victim).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&victim, bytes).expect("write");

    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut opts = Options::new(&data);
    opts.from = Some(src.path().to_path_buf());
    let err = install(ds, &opts).expect_err("corrupted copy");
    assert!(
        matches!(&err, Error::Checksum { file_name, .. } if file_name == "train-labels-idx1-ubyte.gz"),
        "{err}"
    );
    assert!(err.to_string().contains("train-labels-idx1-ubyte.gz"));
    assert!(!data.exists(), "nothing may be left behind");
}

fn xtask(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("download").args(args);
    cmd.env_remove("EMBER_DATA");
    cmd.envs(envs.iter().copied());
    let out = cmd.output().expect("run xtask");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn default_data_dir_rule() {
    let dir_of = |envs: &[(&str, &str)]| {
        let (code, out, _) = xtask(&["list"], envs);
        assert_eq!(code, 0);
        out.lines()
            .find_map(|l| l.strip_prefix("data directory: "))
            .map(str::to_string)
    };
    assert_eq!(
        dir_of(&[("EMBER_DATA", "/e"), ("HOME", "/h")]).as_deref(),
        Some("/e")
    );
    assert_eq!(
        dir_of(&[("EMBER_DATA", ""), ("HOME", "/h")]).as_deref(),
        Some("data")
    );
    assert_eq!(dir_of(&[]).as_deref(), Some("data"));
    assert_eq!(
        xtask(&["list", "--dir", "/d"], &[("EMBER_DATA", "/e")])
            .1
            .lines()
            .last(),
        Some("data directory: /d")
    );
}

#[test]
fn command_line_errors() {
    let (code, _, err) = xtask(&["imagenet"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown dataset") && err.contains("fashion-mnist"),
        "{err}"
    );
    let (code, _, err) = xtask(&["mnist", "--dir"], &[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = xtask(&["mnist", "--bogus"], &[]);
    assert_eq!(code, 2, "{err}");

    let tmp = tempfile::tempdir().expect("temp dir");
    let bad = tmp.path().join("cifar-10-binary.tar.gz");
    fs::write(&bad, b"not the archive").expect("write");
    let data = tmp.path().join("data");
    let (code, _, err) = xtask(
        &[
            "cifar10",
            "--dir",
            &data.to_string_lossy(),
            "--from",
            &bad.to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("MD5 checksum mismatch") && err.contains(&bad.display().to_string()),
        "{err}"
    );
    assert!(!data.exists());
}
