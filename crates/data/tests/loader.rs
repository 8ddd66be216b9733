//! The loader: determinism across thread counts and resumes, permutations, sharding,
//! drop-last, and the values it produces.

use std::sync::Arc;

use ember_data::{Augment, Batch, Dataset, Loader, LoaderConfig, Normalize};
use ember_tensor::Rng;

fn random_dataset(n: usize, shape: [usize; 3], classes: usize) -> Dataset {
    let mut rng = Rng::new(99);
    let len = n * shape.iter().product::<usize>();
    let pixels = (0..len).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|_| rng.below(classes as u64) as usize).collect();
    Dataset::new(
        shape,
        pixels,
        labels,
        (0..classes).map(|c| c.to_string()).collect(),
    )
    .unwrap()
}

fn all(loader: &Loader, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).collect()
}

fn same(a: &[Batch], b: &[Batch]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.labels == y.labels
                && x.indices == y.indices
                && x.images.shape() == y.images.shape()
                && x.images
                    .data()
                    .iter()
                    .zip(y.images.data())
                    .all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

fn config(threads: Option<usize>) -> LoaderConfig {
    LoaderConfig {
        batch_size: 32,
        seed: 7,
        normalize: Normalize {
            mean: vec![0.5, 0.4, 0.3],
            std: vec![0.2, 0.25, 0.3],
        },
        augment: Augment {
            crop_padding: 4,
            hflip: true,
            cutout: 8,
            ..Augment::none()
        },
        threads,
        ..Default::default()
    }
}

#[test]
fn same_batches_whatever_the_thread_count_and_on_resume() {
    let ds = Arc::new(random_dataset(200, [3, 32, 32], 10));
    let one = Loader::new(Arc::clone(&ds), config(Some(1))).unwrap();
    let two = Loader::new(Arc::clone(&ds), config(Some(2))).unwrap();
    let global = Loader::new(Arc::clone(&ds), config(None)).unwrap();
    for epoch in [0, 3] {
        let a = all(&one, epoch);
        assert_eq!(a.len(), 7); // 200 / 32 rounded up
        assert!(same(&a, &all(&two, epoch)), "epoch {epoch}: 1 vs 2 threads");
        assert!(
            same(&a, &all(&global, epoch)),
            "epoch {epoch}: 1 thread vs global pool"
        );
        // A fresh loader (a resumed run) sees the same epoch.
        let fresh = Loader::new(Arc::clone(&ds), config(Some(2))).unwrap();
        assert!(same(&a, &all(&fresh, epoch)));
    }
    assert!(!same(&all(&one, 0), &all(&one, 1)), "epochs must differ");
    // Building on the caller's thread gives the same batches as the background thread.
    let inline = Loader::new(
        Arc::clone(&ds),
        LoaderConfig {
            background: false,
            ..config(Some(2))
        },
    )
    .unwrap();
    assert!(same(&all(&one, 3), &all(&inline, 3)));
    assert_eq!(inline.epoch(0).len(), 7);
    let mut other_seed = config(Some(1));
    other_seed.seed = 8;
    assert!(!same(
        &all(&one, 0),
        &all(&Loader::new(ds, other_seed).unwrap(), 0)
    ));
}

#[test]
fn every_image_once_per_epoch_with_its_label() {
    let ds = Arc::new(random_dataset(100, [1, 5, 5], 3));
    let l = Loader::new(
        Arc::clone(&ds),
        LoaderConfig {
            batch_size: 16,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(l.num_batches(), 7);
    let batches = all(&l, 2);
    let sizes: Vec<usize> = batches.iter().map(|b| b.labels.len()).collect();
    assert_eq!(sizes, vec![16, 16, 16, 16, 16, 16, 4]);
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(seen, l.order(2));
    assert_ne!(seen, (0..100).collect::<Vec<_>>(), "shuffled");
    seen.sort();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    for b in &batches {
        assert_eq!(b.images.shape().dims(), &[b.labels.len(), 1, 5, 5]);
        for (k, &i) in b.indices.iter().enumerate() {
            assert_eq!(b.labels[k], ds.label(i));
            // No augmentation, default normalisation: pixels / 255 exactly as the u8 image.
            let want: Vec<f32> = ds.image(i).iter().map(|&p| p as f32 / 255.0).collect();
            assert_eq!(b.images.item(k), want.as_slice());
        }
    }
    // drop_last and no shuffling.
    let cfg = LoaderConfig {
        batch_size: 16,
        drop_last: true,
        shuffle: false,
        ..Default::default()
    };
    let l = Loader::new(Arc::clone(&ds), cfg).unwrap();
    assert_eq!(l.num_batches(), 6);
    let b = all(&l, 5);
    assert_eq!(b.len(), 6);
    assert_eq!(b[1].indices, (16..32).collect::<Vec<_>>());
}

#[test]
fn shards_are_disjoint_and_cover_the_epoch() {
    let ds = Arc::new(random_dataset(103, [1, 2, 2], 2));
    let world = 4;
    let mut union = Vec::new();
    for rank in 0..world {
        let cfg = LoaderConfig {
            batch_size: 8,
            shard: Some((rank, world)),
            seed: 3,
            ..Default::default()
        };
        let l = Loader::new(Arc::clone(&ds), cfg).unwrap();
        assert_eq!(l.len(), 25);
        assert_eq!(l.num_batches(), 4);
        let idx: Vec<usize> = all(&l, 1).iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(idx.len(), 25);
        union.extend(idx);
    }
    let n = union.len();
    union.sort();
    union.dedup();
    assert_eq!(union.len(), n, "ranks overlap");
    assert_eq!(n, 100);
    let bad = LoaderConfig {
        shard: Some((4, 4)),
        ..Default::default()
    };
    assert!(Loader::new(Arc::clone(&ds), bad).is_err());
}

#[test]
fn augmentation_is_per_image_and_config_errors() {
    let ds = Arc::new(random_dataset(64, [3, 8, 8], 2));
    let cfg = |seed| LoaderConfig {
        batch_size: 64,
        seed,
        augment: Augment::crop_flip(),
        normalize: Normalize::from_dataset(&ds),
        ..Default::default()
    };
    let l = Loader::new(Arc::clone(&ds), cfg(1)).unwrap();
    // Batch composition does not change an image's augmentation.
    let whole = l.batch(0, &[5, 9, 11]);
    let single = l.batch(0, &[9]);
    assert_eq!(whole.images.item(1), single.images.item(0));
    // Augmented images differ from the plain normalised one for some images.
    let plain = Loader::new(
        Arc::clone(&ds),
        LoaderConfig {
            augment: Augment::none(),
            ..cfg(1)
        },
    )
    .unwrap();
    let p = plain.batch(0, &(0..64).collect::<Vec<_>>());
    let a = l.batch(0, &(0..64).collect::<Vec<_>>());
    let changed = (0..64)
        .filter(|&k| p.images.item(k) != a.images.item(k))
        .count();
    assert!(changed > 40, "{changed} of 64 changed");
    // Bad configurations.
    assert!(
        Loader::new(
            Arc::clone(&ds),
            LoaderConfig {
                batch_size: 0,
                ..cfg(1)
            }
        )
        .is_err()
    );
    let wrong = Normalize {
        mean: vec![0.0; 2],
        std: vec![1.0; 2],
    };
    assert!(
        Loader::new(
            Arc::clone(&ds),
            LoaderConfig {
                normalize: wrong,
                ..cfg(1)
            }
        )
        .is_err()
    );
}

#[test]
fn dropping_an_epoch_early_does_not_hang() {
    let ds = Arc::new(random_dataset(500, [3, 16, 16], 2));
    let l = Loader::new(
        ds,
        LoaderConfig {
            batch_size: 10,
            ..Default::default()
        },
    )
    .unwrap();
    for e in 0..20 {
        let mut it = l.epoch(e);
        assert_eq!(it.len(), 50);
        it.next().unwrap();
    }
}

/// Alternating flips: every image is mirrored in exactly one of any two consecutive epochs,
/// starting on a seeded side of its own (some images start mirrored, some not).
#[test]
fn alternating_flips_mirror_each_image_every_other_epoch() {
    // Images whose right half is bright: a mirrored one has a bright left half.
    let (n, w) = (64, 4);
    let mut pixels = Vec::new();
    for _ in 0..n {
        for _y in 0..2 {
            pixels.extend_from_slice(&[0, 0, 255, 255][..w]);
        }
    }
    let ds = Arc::new(Dataset::new([1, 2, w], pixels, vec![0; n], vec!["a".into()]).unwrap());
    let cfg = LoaderConfig {
        batch_size: n,
        shuffle: false,
        normalize: Normalize {
            mean: vec![0.0],
            std: vec![1.0],
        },
        augment: Augment {
            hflip: true,
            alternate_flip: true,
            ..Augment::none()
        },
        ..LoaderConfig::default()
    };
    let loader = Loader::new(ds, cfg).unwrap();
    let mirrored = |epoch: u64| -> Vec<bool> {
        let b = loader.epoch(epoch).next().unwrap();
        b.images
            .data()
            .chunks(2 * w)
            .map(|img| img[0] > 0.5)
            .collect()
    };
    let (e0, e1, e2) = (mirrored(0), mirrored(1), mirrored(2));
    assert!(e0.iter().any(|&m| m) && e0.iter().any(|&m| !m), "{e0:?}");
    for i in 0..n {
        assert_ne!(e0[i], e1[i], "image {i}");
        assert_eq!(e0[i], e2[i], "image {i}");
    }
}
