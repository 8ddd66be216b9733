//! CIFAR files in their official byte layouts: binary batches, python pickles as Python 2
//! wrote them and as Python 3 re-saves them, folders and `.tar.gz` archives, and bad input.

mod common;

use common::{TempDir, fixture, pattern, tar_gz};
use ember_data::formats::cifar::{Kind, parse_binary, parse_python, parse_python_meta};

const IMG: usize = 3072;

/// One CIFAR-10 binary record per label: `<label> <1024 R> <1024 G> <1024 B>`.
fn cifar10_bin(labels: &[u8], first: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend((0..IMG).map(|j| pattern(first + k, j)));
    }
    out
}

/// CIFAR-100 binary records: `<coarse> <fine> <3072 pixels>`.
fn cifar100_bin(labels: &[(u8, u8)], first: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, &(c, f)) in labels.iter().enumerate() {
        out.extend([c, f]);
        out.extend((0..IMG).map(|j| pattern(first + k, j)));
    }
    out
}

const NAMES10: &str = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";

fn check_images(ds: &ember_data::Dataset, first: usize) {
    for i in 0..ds.len() {
        let want: Vec<u8> = (0..IMG).map(|j| pattern(first + i, j)).collect();
        assert_eq!(ds.image(i), want.as_slice(), "image {i}");
    }
}

/// The official CIFAR-10 binary layout: five training batches of different sizes here
/// (record counts come from file sizes), a test batch and the names file.
fn cifar10_files() -> Vec<(String, Vec<u8>)> {
    let mut files = vec![("batches.meta.txt".to_string(), NAMES10.as_bytes().to_vec())];
    let mut first = 0;
    for b in 1..=5 {
        let labels: Vec<u8> = (0..b).map(|k| ((first + k) % 10) as u8).collect();
        files.push((format!("data_batch_{b}.bin"), cifar10_bin(&labels, first)));
        first += b;
    }
    files.push(("test_batch.bin".into(), cifar10_bin(&[9, 8, 7], 100)));
    files.push(("readme.html".into(), b"<html>".to_vec()));
    files
}

fn check_cifar10(s: &ember_data::Splits) {
    assert_eq!(s.format, "cifar10-binary");
    assert_eq!((s.train.len(), s.test.len()), (15, 3));
    assert_eq!(s.train.shape(), [3, 32, 32]);
    assert_eq!(s.train.classes()[0], "airplane");
    assert_eq!(s.train.classes().len(), 10);
    assert_eq!(
        s.train.labels(),
        (0..15).map(|k| k % 10).collect::<Vec<_>>().as_slice()
    );
    assert_eq!(s.test.labels(), &[9, 8, 7]);
    check_images(&s.train, 0);
    check_images(&s.test, 100);
}

#[test]
fn cifar10_binary_folder_and_archive() {
    let t = TempDir::new("c10");
    for (n, b) in cifar10_files() {
        t.write(&format!("cifar-10-batches-bin/{n}"), &b);
    }
    check_cifar10(&ember_data::open(&t.path().join("cifar-10-batches-bin")).unwrap());
    // The parent folder works too (it holds the official folder name).
    check_cifar10(&ember_data::open(t.path()).unwrap());
    let members: Vec<_> = cifar10_files()
        .into_iter()
        .map(|(n, b)| (format!("cifar-10-batches-bin/{n}"), b))
        .collect();
    let archive = t.write("cifar-10-binary.tar.gz", &tar_gz(&members));
    check_cifar10(&ember_data::open(&archive).unwrap());
}

#[test]
fn cifar100_binary_uses_fine_labels_and_names() {
    let t = TempDir::new("c100");
    let fine: String = (0..100).map(|i| format!("fine{i}\n")).collect();
    let files = vec![
        (
            "cifar-100-binary/train.bin".to_string(),
            cifar100_bin(&[(19, 99), (0, 0), (4, 50)], 0),
        ),
        (
            "cifar-100-binary/test.bin".to_string(),
            cifar100_bin(&[(3, 7)], 3),
        ),
        (
            "cifar-100-binary/fine_label_names.txt".to_string(),
            fine.into_bytes(),
        ),
        (
            "cifar-100-binary/coarse_label_names.txt".to_string(),
            b"c\n".to_vec(),
        ),
    ];
    let archive = t.write("cifar-100-binary.tar.gz", &tar_gz(&files));
    let s = ember_data::open(&archive).unwrap();
    assert_eq!(s.format, "cifar100-binary");
    assert_eq!(s.train.labels(), &[99, 0, 50]);
    assert_eq!(s.test.labels(), &[7]);
    assert_eq!(s.train.classes()[99], "fine99");
    check_images(&s.train, 0);
    check_images(&s.test, 3);
    // Without the names file the built-in CIFAR-100 names are used.
    let t2 = TempDir::new("c100b");
    t2.write("train.bin", &files[0].1);
    t2.write("test.bin", &files[1].1);
    let s = ember_data::open(t2.path()).unwrap();
    assert_eq!(s.train.classes()[99], "worm");
}

#[test]
fn cifar_binary_bad_input_names_the_file() {
    let t = TempDir::new("c10bad");
    for (n, b) in cifar10_files() {
        t.write(&n, &b);
    }
    // A label 12 in CIFAR-10.
    let mut bad = cifar10_bin(&[1, 12], 0);
    t.write("data_batch_2.bin", &bad);
    let e = ember_data::open(t.path()).unwrap_err();
    assert!(e.file.ends_with("data_batch_2.bin"), "{e}");
    assert!(e.found.contains("12 in record 1"), "{e}");
    // Truncated by one byte.
    bad = cifar10_bin(&[1, 2], 0);
    bad.pop();
    t.write("data_batch_2.bin", &bad);
    let e = ember_data::open(t.path()).unwrap_err();
    assert!(
        e.file.ends_with("data_batch_2.bin") && e.found.contains("6145 bytes"),
        "{e}"
    );
    // Empty.
    t.write("data_batch_2.bin", &[]);
    let e = ember_data::open(t.path()).unwrap_err();
    assert!(e.file.ends_with("data_batch_2.bin"), "{e}");
    // A CIFAR-100 coarse label out of range.
    assert!(parse_binary("x", &cifar100_bin(&[(20, 1)], 0), Kind::Cifar100).is_err());
    // Wrong number of class names.
    t.write("data_batch_2.bin", &cifar10_bin(&[1], 0));
    t.write("batches.meta.txt", b"a\nb\n");
    let e = ember_data::open(t.path()).unwrap_err();
    assert!(e.file.ends_with("batches.meta.txt"), "{e}");
    // A truncated archive.
    let members: Vec<_> = cifar10_files()
        .into_iter()
        .map(|(n, b)| (format!("d/{n}"), b))
        .collect();
    let gz = tar_gz(&members);
    let p = t.write("cut.tar.gz", &gz[..gz.len() * 2 / 3]);
    let e = ember_data::open(&p).unwrap_err();
    assert!(e.file.contains("cut.tar.gz"), "{e}");
}

/// A protocol-2 pickle exactly as Python 2's cPickle writes a CIFAR batch: byte-string keys
/// (SHORT_BINSTRING), the array through `numpy.core.multiarray._reconstruct` with its raw
/// bytes in a BINSTRING, labels appended in batches of 1000, a memo past 255 entries.
fn py2_pickle(labels_key: &str, labels: &[u8], n_first: usize) -> Vec<u8> {
    let n = labels.len();
    let mut o = b"\x80\x02}q\x01(".to_vec();
    let mut memo = 2u32;
    let mut put = |o: &mut Vec<u8>| {
        if memo < 256 {
            o.extend([b'q', memo as u8]);
        } else {
            o.push(b'r');
            o.extend(memo.to_le_bytes());
        }
        memo += 1;
    };
    let string = |o: &mut Vec<u8>, s: &[u8], put: &mut dyn FnMut(&mut Vec<u8>)| {
        if s.len() < 256 {
            o.extend([b'U', s.len() as u8]);
        } else {
            o.push(b'T');
            o.extend((s.len() as u32).to_le_bytes());
        }
        o.extend(s);
        put(o);
    };
    let int = |o: &mut Vec<u8>, v: usize| {
        if v < 256 {
            o.extend([b'K', v as u8]);
        } else if v < 65536 {
            o.push(b'M');
            o.extend((v as u16).to_le_bytes());
        } else {
            o.push(b'J');
            o.extend((v as i32).to_le_bytes());
        }
    };
    string(&mut o, b"data", &mut put);
    o.extend(b"cnumpy.core.multiarray\n_reconstruct\n");
    put(&mut o);
    o.extend(b"cnumpy\nndarray\n");
    put(&mut o);
    o.extend(b"K\x00\x85U\x01b\x87R");
    put(&mut o);
    o.extend(b"(K\x01");
    int(&mut o, n);
    int(&mut o, IMG);
    o.push(0x86);
    o.extend(b"cnumpy\ndtype\n");
    put(&mut o);
    o.extend(b"U\x02u1K\x00K\x01\x87R");
    put(&mut o);
    o.extend(b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89");
    let pixels: Vec<u8> = (0..n)
        .flat_map(|i| (0..IMG).map(move |j| pattern(n_first + i, j)))
        .collect();
    string(&mut o, &pixels, &mut put);
    o.extend(b"tb");
    string(&mut o, labels_key.as_bytes(), &mut put);
    o.push(b']');
    put(&mut o);
    for chunk in labels.chunks(1000) {
        o.push(b'(');
        for &l in chunk {
            int(&mut o, l as usize);
        }
        o.push(b'e');
    }
    string(&mut o, b"batch_label", &mut put);
    string(&mut o, b"training batch 1 of 5", &mut put);
    string(&mut o, b"filenames", &mut put);
    o.push(b']');
    put(&mut o);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        o.push(b'(');
        for i in chunk {
            string(&mut o, format!("img_{i}.png").as_bytes(), &mut put);
        }
        o.push(b'e');
    }
    o.extend(b"u.");
    o
}

fn py2_meta() -> Vec<u8> {
    let mut o =
        b"\x80\x02}q\x01(U\x13num_cases_per_batchq\x02M\x10'U\x0blabel_namesq\x03]q\x04(".to_vec();
    for (k, n) in NAMES10.lines().filter(|l| !l.is_empty()).enumerate() {
        o.extend([b'U', n.len() as u8]);
        o.extend(n.as_bytes());
        o.extend([b'q', 5 + k as u8]);
    }
    o.extend(b"eU\x07num_visq\x10M\x00\x0cu.");
    o
}

#[test]
fn python2_pickles() {
    let labels: Vec<u8> = (0..1100).map(|i| (i * 7 % 10) as u8).collect();
    let b = parse_python("py2", &py2_pickle("labels", &labels, 0), Kind::Cifar10).unwrap();
    assert_eq!(
        b.labels,
        labels.iter().map(|&l| l as usize).collect::<Vec<_>>()
    );
    assert_eq!(b.pixels.len(), 1100 * IMG);
    assert_eq!(b.pixels[1099 * IMG + 5], pattern(1099, 5));
    let names = parse_python_meta("meta", &py2_meta(), Kind::Cifar10).unwrap();
    assert_eq!(names[9], "truck");
    // A whole python folder, archived as distributed.
    let members = vec![
        ("cifar-10-batches-py/batches.meta".to_string(), py2_meta()),
        (
            "cifar-10-batches-py/data_batch_1".to_string(),
            py2_pickle("labels", &[1, 2], 0),
        ),
        (
            "cifar-10-batches-py/data_batch_2".to_string(),
            py2_pickle("labels", &[3], 2),
        ),
        (
            "cifar-10-batches-py/test_batch".to_string(),
            py2_pickle("labels", &[4, 5], 50),
        ),
        ("cifar-10-batches-py/readme.html".to_string(), b"x".to_vec()),
    ];
    let t = TempDir::new("py2");
    let p = t.write("cifar-10-python.tar.gz", &tar_gz(&members));
    let s = ember_data::open(&p).unwrap();
    assert_eq!(s.format, "cifar10-python");
    assert_eq!(s.train.labels(), &[1, 2, 3]);
    assert_eq!(s.test.labels(), &[4, 5]);
    assert_eq!(s.train.classes()[0], "airplane");
    check_images(&s.train, 0);
    check_images(&s.test, 50);
    // A label 12 and a truncated file, named.
    let e = parse_python("bad", &py2_pickle("labels", &[1, 12], 0), Kind::Cifar10).unwrap_err();
    assert!(e.file == "bad" && e.found.contains("Int(12)"), "{e}");
    let full = py2_pickle("labels", &[1, 2], 0);
    for cut in [0, 1, 2, 10, 100, full.len() / 2, full.len() - 1] {
        let e = parse_python("cut", &full[..cut], Kind::Cifar10).unwrap_err();
        assert_eq!(e.file, "cut");
    }
}

#[test]
fn python3_pickles_protocols_2_to_5() {
    for p in 2..=5 {
        let b = parse_python(
            "f",
            &fixture(&format!("py3-p{p}-cifar10.pkl")),
            Kind::Cifar10,
        )
        .unwrap();
        assert_eq!(b.labels, vec![3, 0, 9, 5], "protocol {p}");
        let want: Vec<u8> = (0..4)
            .flat_map(|i| (0..IMG).map(move |j| pattern(i, j)))
            .collect();
        assert_eq!(b.pixels, want, "protocol {p}");
        let b = parse_python(
            "f",
            &fixture(&format!("py3-p{p}-cifar100.pkl")),
            Kind::Cifar100,
        )
        .unwrap();
        assert_eq!(b.labels, vec![99, 0, 42, 7], "protocol {p}");
        assert_eq!(b.pixels, want, "protocol {p}");
        // The CIFAR-10 reader does not accept a CIFAR-100 batch (no 'labels').
        assert!(
            parse_python(
                "f",
                &fixture(&format!("py3-p{p}-cifar100.pkl")),
                Kind::Cifar10
            )
            .is_err()
        );
    }
    let b = parse_python("f", &fixture("py3-p4-strkeys-cifar10.pkl"), Kind::Cifar10).unwrap();
    assert_eq!(b.labels, vec![3, 0, 9, 5]);
    for m in ["py3-p2-meta10.pkl", "py3-p5-meta10.pkl"] {
        assert_eq!(
            parse_python_meta(m, &fixture(m), Kind::Cifar10).unwrap()[1],
            "automobile"
        );
    }
    let names = parse_python_meta("m", &fixture("py3-p3-meta100.pkl"), Kind::Cifar100).unwrap();
    assert_eq!(names[42], "fine42");
    // A CIFAR-100 python folder.
    let t = TempDir::new("py3");
    t.write("cifar-100-python/train", &fixture("py3-p5-cifar100.pkl"));
    t.write("cifar-100-python/test", &fixture("py3-p2-cifar100.pkl"));
    t.write("cifar-100-python/meta", &fixture("py3-p3-meta100.pkl"));
    let s = ember_data::open(t.path()).unwrap();
    assert_eq!(s.format, "cifar100-python");
    assert_eq!((s.train.len(), s.test.len()), (4, 4));
    assert_eq!(s.train.classes()[0], "fine0");
}

#[test]
fn evil_pickle_is_refused() {
    let e = ember_data::formats::pickle::parse("evil", &fixture("evil-os-system.pkl")).unwrap_err();
    assert!(e.found.contains("posix.system"), "{e}");
}
