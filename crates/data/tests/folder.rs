//! Image folders and single-image decoding through the `image` crate.

mod common;

use common::TempDir;
use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};

fn rgb(w: u32, h: u32, seed: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([seed.wrapping_add(x as u8), (y * 10) as u8, 200 - seed])
    })
}

fn save(img: &RgbImage, t: &TempDir, rel: &str, fmt: ImageFormat) {
    let p = t.path().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    img.save_with_format(&p, fmt).unwrap();
}

#[test]
fn train_test_folders_decode_to_chw() {
    let t = TempDir::new("imgs");
    save(&rgb(4, 3, 1), &t, "train/cat/a.png", ImageFormat::Png);
    save(&rgb(4, 3, 2), &t, "train/cat/b.bmp", ImageFormat::Bmp);
    save(&rgb(4, 3, 3), &t, "train/ant/c.PNG", ImageFormat::Png);
    save(&rgb(8, 6, 4), &t, "test/cat/d.jpg", ImageFormat::Jpeg);
    t.write("train/cat/notes.txt", b"not an image");
    let s = ember_data::open(t.path()).unwrap();
    assert_eq!(s.format, "image-folder");
    assert_eq!(s.train.classes(), &["ant".to_string(), "cat".to_string()]);
    assert_eq!(s.train.shape(), [3, 3, 4]);
    assert_eq!(s.train.labels(), &[0, 1, 1]);
    assert_eq!(s.test.labels(), &[1]);
    // ant/c.PNG is image 0: exact CHW planes (PNG is lossless and no resize happens).
    let img = rgb(4, 3, 3);
    let im0 = s.train.image(0);
    for y in 0..3 {
        for x in 0..4 {
            let px = img.get_pixel(x, y);
            for c in 0..3 {
                assert_eq!(im0[c * 12 + y as usize * 4 + x as usize], px[c]);
            }
        }
    }
    // BMP is lossless too.
    let bmp = rgb(4, 3, 2);
    assert_eq!(s.train.image(2)[5], bmp.get_pixel(1, 1)[0]);
}

#[test]
fn flat_folder_grayscale_and_resize() {
    let t = TempDir::new("flat");
    let g = GrayImage::from_fn(10, 10, |x, _| Luma([(x * 20) as u8]));
    for (i, class) in ["b", "a"].iter().enumerate() {
        let p = t.path().join(class).join(format!("{i}.png"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        g.save(&p).unwrap();
    }
    let s = ember_data::open(t.path()).unwrap();
    assert_eq!(s.train.shape(), [1, 10, 10]);
    assert!(s.test.is_empty());
    assert_eq!(s.train.classes(), &["a".to_string(), "b".to_string()]);
    let opts = ember_data::OpenOptions {
        image_size: Some([3, 5, 5]),
        ..Default::default()
    };
    let s = ember_data::open_with(t.path(), opts).unwrap();
    assert_eq!(s.train.shape(), [3, 5, 5]);
    // A horizontal ramp stays a ramp after resizing, and gray stays gray in RGB.
    let im = s.train.image(0);
    assert!(im[..5].windows(2).all(|w| w[0] < w[1]), "{:?}", &im[..5]);
    assert_eq!(&im[..25], &im[25..50]);
}

#[test]
fn load_image_and_bad_images() {
    let t = TempDir::new("one");
    save(&rgb(6, 6, 9), &t, "x.png", ImageFormat::Png);
    let p = t.path().join("x.png");
    let px = ember_data::load_image(&p, 1, 6, 6).unwrap();
    assert_eq!(px.len(), 36);
    assert_eq!(ember_data::load_image(&p, 3, 2, 3).unwrap().len(), 18);
    assert!(ember_data::load_image(&p, 2, 6, 6).is_err());
    let e = ember_data::load_image(&t.path().join("missing.png"), 3, 6, 6).unwrap_err();
    assert!(e.file.ends_with("missing.png"), "{e}");
    // A truncated PNG inside a class folder: the error names it.
    let bytes = std::fs::read(&p).unwrap();
    t.write("cls/ok.png", &bytes);
    t.write("cls/zz.png", &bytes[..bytes.len() / 2]);
    let e = ember_data::open(t.path()).unwrap_err();
    assert!(e.file.ends_with("zz.png"), "{e}");
    // A PNG header claiming 1,000,000 x 1,000,000 pixels is refused without allocating.
    let mut huge = bytes[..33].to_vec();
    huge[16..20].copy_from_slice(&1_000_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert!(ember_data::decode_image("huge.png", &huge, 3, 8, 8).is_err());
    assert!(ember_data::decode_image("empty", &[], 3, 8, 8).is_err());
}

#[test]
fn a_large_first_image_needs_a_size_and_resize_keeps_its_channels() {
    let t = TempDir::new("large");
    // 2048 x 2048 would make every image of the folder that large in memory.
    let big = GrayImage::from_pixel(2048, 2048, Luma([9]));
    for class in ["a", "b"] {
        let p = t.path().join(class).join("0.png");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        big.save(&p).unwrap();
    }
    let e = ember_data::open(t.path()).unwrap_err().to_string();
    assert!(e.contains("2048x2048") && e.contains("--image-size"), "{e}");
    let opts = ember_data::OpenOptions {
        resize: Some([16, 12]),
        ..Default::default()
    };
    let s = ember_data::open_with(t.path(), opts).unwrap();
    assert_eq!(s.train.shape(), [1, 16, 12]);
    assert!(s.train.pixels().iter().all(|&p| p == 9));
}

#[test]
fn a_flat_folder_can_hold_out_a_test_set() {
    let t = TempDir::new("holdout");
    let g = GrayImage::from_fn(4, 4, |x, y| Luma([(x + y) as u8]));
    for class in ["a", "b", "c"] {
        for i in 0..10 {
            let p = t.path().join(class).join(format!("{i}.png"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            g.save(&p).unwrap();
        }
    }
    let mut s = ember_data::open(t.path()).unwrap();
    assert!(s.test.is_empty());
    s.hold_out_test(0.2, 5);
    assert_eq!(s.test.class_counts(), vec![2, 2, 2]);
    assert_eq!(s.train.class_counts(), vec![8, 8, 8]);
    // Seeded: the same split again; a dataset with a test part is left alone.
    let mut again = ember_data::open(t.path()).unwrap();
    again.hold_out_test(0.2, 5);
    assert_eq!(again.test, s.test);
    let before = s.clone();
    s.hold_out_test(0.5, 1);
    assert_eq!((s.train, s.test), (before.train, before.test));
}

/// A JPEG/PNG folder opened with a cache folder: decoded once and written, read back while
/// the files are unchanged, decoded again when a file changes, and a damaged cache file
/// ignored and rewritten. Decoding reports its progress; reading the cache does not.
#[test]
fn a_cached_folder_is_read_back_until_a_file_changes() {
    use std::sync::{Arc, Mutex};
    let t = TempDir::new("cached");
    for (i, class) in ["cat", "dog"].iter().enumerate() {
        for k in 0..3u8 {
            let (fmt, ext) = match k {
                0 => (ImageFormat::Jpeg, "jpg"),
                1 => (ImageFormat::Bmp, "bmp"),
                _ => (ImageFormat::Png, "png"),
            };
            let rel = format!("train/{class}/{k}.{ext}");
            save(&rgb(6, 5, k * 10 + i as u8), &t, &rel, fmt);
        }
        save(
            &rgb(6, 5, 99),
            &t,
            &format!("test/{class}/t.png"),
            ImageFormat::Png,
        );
    }
    let cache = t.path().join("cache");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let opts = ember_data::OpenOptions {
        cache_dir: Some(cache.clone()),
        progress: Some(Arc::new(move |done, total| {
            log.lock().unwrap().push((done, total))
        })),
        ..Default::default()
    };
    let root = t.path().join(".");
    let state = ember_data::formats::folder::cache_state(&root, &opts)
        .unwrap()
        .unwrap();
    assert!(!state.valid && state.bytes == 0, "{state:?}");
    let first = ember_data::open_with(&root, opts.clone()).unwrap();
    assert_eq!(seen.lock().unwrap().last(), Some(&(8, 8)));
    let state = ember_data::formats::folder::cache_state(&root, &opts)
        .unwrap()
        .unwrap();
    assert!(state.valid && state.bytes > 8 * 90, "{state:?}");

    // Same pixels back, with no decoding: an image rewritten with other pixels but the same
    // length (a BMP of the same size) and modification time is not noticed: the cache is
    // what was read.
    seen.lock().unwrap().clear();
    let bmp = t.path().join("train/cat/1.bmp");
    let meta = std::fs::metadata(&bmp).unwrap();
    rgb(6, 5, 200)
        .save_with_format(&bmp, ImageFormat::Bmp)
        .unwrap();
    assert_eq!(std::fs::metadata(&bmp).unwrap().len(), meta.len());
    std::fs::File::options()
        .write(true)
        .open(&bmp)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    let again = ember_data::open_with(&root, opts.clone()).unwrap();
    assert!(seen.lock().unwrap().is_empty(), "decoded again");
    assert_eq!(
        (again.train.pixels(), again.test.pixels()),
        (first.train.pixels(), first.test.pixels())
    );
    assert_eq!(again.train.labels(), first.train.labels());

    // A new file changes the fingerprint: decoded again, cache rewritten.
    save(&rgb(6, 5, 7), &t, "train/dog/3.png", ImageFormat::Png);
    let grown = ember_data::open_with(&root, opts.clone()).unwrap();
    assert_eq!(grown.train.len(), 7);
    assert_eq!(seen.lock().unwrap().last(), Some(&(9, 9)));
    assert!(
        ember_data::formats::folder::cache_state(&root, &opts)
            .unwrap()
            .unwrap()
            .valid
    );

    // A damaged cache file (cut in half) is ignored and rewritten.
    let path = state.path;
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    seen.lock().unwrap().clear();
    let fresh = ember_data::open_with(&root, opts.clone()).unwrap();
    assert_eq!(fresh.train.pixels(), grown.train.pixels());
    assert_eq!(seen.lock().unwrap().last(), Some(&(9, 9)));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}
