//! The embedded sample against the Debian Fashion-MNIST files it was cut from, and the
//! generator that writes it (`cargo test -p ember-data --release --test sample -- --ignored`).

mod common;

use std::path::Path;

use common::{DEBIAN_FASHION_MNIST as DEBIAN, debian_fashion_mnist as debian, gzip};
use ember_data::formats::{gunzip, idx, read_file};
use ember_data::{SAMPLE_TEST_PER_CLASS, SAMPLE_TRAIN_PER_CLASS};

fn read(dir: &Path, base: &str) -> idx::IdxArray {
    let p = dir.join(format!("{base}.gz"));
    let name = p.display().to_string();
    idx::parse(&name, &gunzip(&name, &read_file(&p).unwrap()).unwrap()).unwrap()
}

/// The first `per_class` images of each class, in file order: (images IDX, labels IDX) bytes.
fn select(dir: &Path, prefix: &str, per_class: usize) -> (Vec<u8>, Vec<u8>) {
    let images = read(dir, &format!("{prefix}-images-idx3-ubyte"));
    let labels = read(dir, &format!("{prefix}-labels-idx1-ubyte"));
    let item = images.dims[1] * images.dims[2];
    let mut taken = [0usize; 10];
    let (mut px, mut lb) = (Vec::new(), Vec::new());
    for (i, &l) in labels.data.iter().enumerate() {
        if taken[l as usize] < per_class {
            taken[l as usize] += 1;
            px.extend_from_slice(&images.data[i * item..(i + 1) * item]);
            lb.push(l);
        }
    }
    assert_eq!(taken, [per_class; 10]);
    let n = lb.len();
    (
        idx::write(&[n, images.dims[1], images.dims[2]], &px),
        idx::write(&[n], &lb),
    )
}

#[test]
#[ignore = "writes crates/data/sample/ from the Debian files"]
fn regenerate_sample() {
    let dir = Path::new(DEBIAN);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
    for (prefix, per) in [
        ("train", SAMPLE_TRAIN_PER_CLASS),
        ("t10k", SAMPLE_TEST_PER_CLASS),
    ] {
        let (images, labels) = select(dir, prefix, per);
        std::fs::write(
            out.join(format!("{prefix}-images-idx3-ubyte.gz")),
            gzip(&images),
        )
        .unwrap();
        std::fs::write(
            out.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            gzip(&labels),
        )
        .unwrap();
    }
}

#[test]
fn sample_is_the_balanced_subset_of_the_debian_files() {
    let s = ember_data::sample().unwrap();
    assert_eq!(s.format, "sample");
    assert_eq!(s.train.class_counts(), vec![SAMPLE_TRAIN_PER_CLASS; 10]);
    assert_eq!(s.test.class_counts(), vec![SAMPLE_TEST_PER_CLASS; 10]);
    assert_eq!(s.train.shape(), [1, 28, 28]);
    let Some(dir) = debian() else { return };
    for (prefix, per, part) in [
        ("train", SAMPLE_TRAIN_PER_CLASS, &s.train),
        ("t10k", SAMPLE_TEST_PER_CLASS, &s.test),
    ] {
        let (images, labels) = select(dir, prefix, per);
        assert_eq!(&images[16..], part.pixels(), "{prefix} images");
        let want: Vec<usize> = labels[8..].iter().map(|&l| l as usize).collect();
        assert_eq!(want, part.labels(), "{prefix} labels");
    }
}
