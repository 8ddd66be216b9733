//! Replays every seed of `fuzz/corpus/<target>/` through the fuzz targets' entry point
//! (`ember_data::formats::fuzz_one`): CI runs on stable Rust, so this is how it exercises
//! the fuzz targets. `write_fuzz_corpus` (ignored) regenerates the seeds.

mod common;

use std::path::{Path, PathBuf};

use ember_data::Dataset;
use ember_data::formats::{FUZZ_TARGETS, fuzz_one, idx, parquet};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

#[test]
fn replay_fuzz_corpus() {
    let mut total = 0;
    for target in FUZZ_TARGETS {
        let dir = corpus_root().join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{target}: only {} seeds", files.len());
        for f in files {
            let data = std::fs::read(&f).unwrap();
            assert!(fuzz_one(target, &data));
            // Every prefix of small seeds too: truncation is the commonest damage.
            if data.len() <= 4096 {
                for cut in 0..data.len() {
                    fuzz_one(target, &data[..cut]);
                }
            }
            total += 1;
        }
    }
    assert!(total >= 15);
    assert!(!fuzz_one("no-such-target", b""));
}

#[test]
#[ignore = "writes fuzz/corpus/"]
fn write_fuzz_corpus() {
    let root = corpus_root();
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    // IDX
    let img = idx::write(&[2, 3, 3], &(0..18).collect::<Vec<u8>>());
    put("idx", "images-2x3x3", &img);
    put("idx", "labels-4", &idx::write(&[4], &[0, 9, 3, 1]));
    put("idx", "images-2x3x3.gz", &common::gzip(&img));
    let mut lying = idx::write(&[1_000_000_000, 28, 28], &[]);
    lying.resize(64, 0);
    put("idx", "lying-header", &lying);
    // CIFAR binary
    let mut c10 = vec![3u8];
    c10.extend((0..3072).map(|j| (j * 7) as u8));
    put("cifar_binary", "cifar10-one-record", &c10);
    let mut c100 = vec![4u8, 42];
    c100.extend((0..3072).map(|j| (j * 5) as u8));
    put("cifar_binary", "cifar100-one-record", &c100);
    let mut bad = c10.clone();
    bad[0] = 12;
    put("cifar_binary", "cifar10-label-12", &bad);
    put(
        "cifar_binary",
        "names.txt",
        b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n",
    );
    // Pickles: the Python 3 fixtures (metadata and protocol 2 and 5 batches) and the evil one.
    for f in [
        "py3-p2-meta10.pkl",
        "py3-p5-meta10.pkl",
        "py3-p3-meta100.pkl",
        "py3-p4-cifar10.pkl",
        "py3-p5-cifar100.pkl",
        "evil-os-system.pkl",
    ] {
        put("pickle", f, &common::fixture(f));
    }
    // Images
    let rgb = image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 128]));
    for (name, fmt) in [
        ("tiny.png", image::ImageFormat::Png),
        ("tiny.bmp", image::ImageFormat::Bmp),
        ("tiny.jpg", image::ImageFormat::Jpeg),
    ] {
        let mut buf = std::io::Cursor::new(Vec::new());
        rgb.write_to(&mut buf, fmt).unwrap();
        put("image", name, &buf.into_inner());
    }
    // Archive: a tiny CIFAR-10 binary tar.gz.
    let mut files = vec![(
        "cifar-10-batches-bin/batches.meta.txt".to_string(),
        b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n".to_vec(),
    )];
    files.push(("cifar-10-batches-bin/data_batch_1.bin".into(), c10.clone()));
    files.push(("cifar-10-batches-bin/test_batch.bin".into(), c10.clone()));
    put("archive", "cifar10-bin.tar.gz", &common::tar_gz(&files));
    let py = vec![
        (
            "cifar-10-batches-py/data_batch_1".to_string(),
            common::fixture("py3-p2-cifar10.pkl"),
        ),
        (
            "cifar-10-batches-py/test_batch".to_string(),
            common::fixture("py3-p4-cifar10.pkl"),
        ),
    ];
    put("archive", "cifar10-py.tar.gz", &common::tar_gz(&py));
    put("archive", "not-gzip", b"hello");
    // Parquet: Spark's image schema, grayscale and colour, string and integer labels, a
    // split column (the target reads it with and without `split` as the split column).
    let px: Vec<u8> = (0..2 * 4 * 4).map(|i| (i * 9) as u8).collect();
    let gray = Dataset::new([1, 4, 4], px, vec![0, 1], vec!["a".into(), "b".into()]).unwrap();
    let rgb: Vec<u8> = (0..2 * 3 * 2 * 2).map(|i| (i * 11) as u8).collect();
    let rgb = Dataset::new([3, 2, 2], rgb, vec![1, 0], vec!["x".into(), "y".into()]).unwrap();
    let pq = |name: &str, ds: &Dataset, opts: parquet::WriteOptions| {
        let mut buf = Vec::new();
        parquet::write_spark_images(&mut buf, ds, &opts).unwrap();
        put("parquet", name, &buf);
    };
    pq("gray-names.parquet", &gray, Default::default());
    let split = parquet::WriteOptions {
        label_names: false,
        split: Some(("split".into(), "test".into())),
        ..Default::default()
    };
    pq("rgb-ints-split.parquet", &rgb, split);
    pq("rgb-names.parquet", &rgb, Default::default());
    let spark = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parquet/spark-3-images-4x3.parquet");
    put(
        "parquet",
        "spark-written.parquet",
        &std::fs::read(spark).unwrap(),
    );
}
