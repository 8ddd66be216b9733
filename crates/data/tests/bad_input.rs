//! Bad files through the public entry points: errors that name the file, never a panic, and
//! mutated valid files through every parser (property tests).

mod common;

use std::io::Write;

use common::TempDir;
use ember_data::formats::{cifar, folder, idx, pickle};
use proptest::prelude::*;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn mnist_folder(t: &TempDir, n: usize) {
    t.write(
        "train-images-idx3-ubyte.gz",
        &gz(&idx::write(&[n, 2, 2], &vec![5; n * 4])),
    );
    t.write(
        "train-labels-idx1-ubyte.gz",
        &gz(&idx::write(&[n], &vec![1; n])),
    );
    t.write(
        "t10k-images-idx3-ubyte",
        &idx::write(&[1, 2, 2], &[1, 2, 3, 4]),
    );
    t.write("t10k-labels-idx1-ubyte", &idx::write(&[1], &[9]));
}

#[test]
fn idx_folder_good_and_bad() {
    let t = TempDir::new("idx");
    mnist_folder(&t, 3);
    let s = ember_data::open(t.path()).unwrap();
    assert_eq!(s.format, "idx");
    assert_eq!((s.train.len(), s.test.len()), (3, 1));
    assert_eq!(s.train.classes()[9], "9"); // not a "fashion" folder: digit names
    assert_eq!(s.test.image(0), &[1, 2, 3, 4]);

    let expect_err = |file: &str, bytes: &[u8], needle: &str| {
        let t = TempDir::new("idxbad");
        mnist_folder(&t, 3);
        t.write(file, bytes);
        let e = ember_data::open(t.path()).unwrap_err();
        assert!(e.file.ends_with(file), "{file}: {e}");
        assert!(e.to_string().contains(needle), "{file}: {e}");
    };
    // A header claiming a billion images in a 2 KB file.
    let mut lying = idx::write(&[1_000_000_000, 28, 28], &[]);
    lying.resize(2048, 0);
    expect_err("t10k-images-idx3-ubyte", &lying, "2032 bytes");
    expect_err("t10k-images-idx3-ubyte", &[], "0 bytes");
    expect_err("t10k-images-idx3-ubyte", &[0, 0, 8, 3, 0, 0], "header");
    expect_err("t10k-labels-idx1-ubyte", &[0x1f, 0x8b, 8, 0, 1, 2], "gzip");
    expect_err(
        "t10k-labels-idx1-ubyte",
        &[0, 0, 9, 1, 0, 0, 0, 1, 0],
        "type 0x08",
    );
    expect_err(
        "t10k-labels-idx1-ubyte",
        &idx::write(&[1], &[10]),
        "label 10",
    );
    expect_err("t10k-labels-idx1-ubyte", &idx::write(&[2], &[1, 1]), "2");
    let good = gz(&idx::write(&[3, 2, 2], &[5; 12]));
    expect_err(
        "train-images-idx3-ubyte.gz",
        &good[..good.len() - 9],
        "gzip",
    );
    // Images stored with a labels header shape.
    expect_err(
        "t10k-images-idx3-ubyte",
        &idx::write(&[4], &[1, 2, 3, 4]),
        "3 dimensions",
    );
}

#[test]
fn open_reports_missing_and_unknown_inputs() {
    let t = TempDir::new("none");
    let e = ember_data::open(&t.path().join("nope")).unwrap_err();
    assert!(e.file.ends_with("nope"));
    let e = ember_data::open(t.path()).unwrap_err();
    assert!(e.found.contains("none of them"), "{e}");
    let p = t.write("random.tar.gz", b"hello");
    assert!(ember_data::open(&p).is_err());
}

/// A small valid file of each format, to mutate.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut c10 = vec![3u8];
    c10.extend((0..3072).map(|j| j as u8));
    vec![
        ("idx", idx::write(&[2, 3, 3], &[7; 18])),
        ("cifar", c10),
        ("pickle", common::fixture("py3-p2-cifar10.pkl")),
        ("pickle", common::fixture("py3-p5-cifar100.pkl")),
    ]
}

fn feed(kind: &str, bytes: &[u8]) {
    match kind {
        "idx" => {
            let _ = idx::parse("f", bytes);
        }
        "cifar" => {
            let _ = cifar::parse_binary("f", bytes, cifar::Kind::Cifar10);
            let _ = cifar::parse_binary("f", bytes, cifar::Kind::Cifar100);
        }
        _ => {
            let _ = pickle::parse("f", bytes);
            let _ = cifar::parse_python("f", bytes, cifar::Kind::Cifar10);
            let _ = cifar::parse_python_meta("f", bytes, cifar::Kind::Cifar100);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutated_files_never_panic(which in 0usize..4, edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let (kind, mut bytes) = seeds().swap_remove(which);
        for (pos, val) in edits {
            let n = bytes.len();
            bytes[pos % n] = val;
        }
        let keep = if cut % 3 == 0 { cut % (bytes.len() + 1) } else { bytes.len() };
        feed(kind, &bytes[..keep]);
        let _ = folder::decode_image("f", &bytes[..keep], 3, 4, 4);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        feed("idx", &bytes);
        feed("cifar", &bytes);
        feed("pickle", &bytes);
        let mut p = vec![0x80, 2];
        p.extend(&bytes);
        feed("pickle", &p);
        let _ = folder::decode_image("f", &bytes, 1, 4, 4);
    }
}
