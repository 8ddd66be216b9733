//! One `Classifier` shared by many threads (`Send + Sync`, `predict(&self)`): each thread's
//! predictions equal those made one at a time.

mod common;
mod deploy_common;

use std::sync::Arc;

use common::temp_dir;
use deploy_common::random_checkpoint;
use ember::Classifier;
use ember_tensor::Rng;

#[test]
fn one_classifier_serves_many_threads() {
    let dir = temp_dir("classifier-threads");
    random_checkpoint(&dir, "fmnist-cnn", 9);
    let clf = Arc::new(Classifier::load(&dir).unwrap().with_batch_size(5));
    let images: Vec<Vec<u8>> = (0..48)
        .map(|i| {
            let mut rng = Rng::new(i);
            (0..28 * 28).map(|_| rng.below(256) as u8).collect()
        })
        .collect();
    let alone: Vec<_> = images.iter().map(|im| clf.predict(im).unwrap()).collect();
    let images = Arc::new(images);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (clf, images) = (clf.clone(), images.clone());
            std::thread::spawn(move || {
                // Each thread predicts every image, in batches and singly, several times.
                let mut out = Vec::new();
                for round in 0..3 {
                    let start = (t * 5 + round) % images.len();
                    let order: Vec<usize> = (0..images.len())
                        .map(|i| (start + i) % images.len())
                        .collect();
                    let refs: Vec<&[u8]> = order.iter().map(|&i| images[i].as_slice()).collect();
                    let batch = clf.predict_batch(&refs).unwrap();
                    out.extend(order.iter().copied().zip(batch));
                    let one = clf.predict(&images[start]).unwrap();
                    out.push((start, one));
                }
                out
            })
        })
        .collect();
    for t in threads {
        for (i, p) in t.join().expect("a predicting thread panicked") {
            assert_eq!(p.index, alone[i].index, "image {i}");
            for (a, b) in p.probabilities.iter().zip(&alone[i].probabilities) {
                assert!((a - b).abs() <= 1e-6, "image {i}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn a_wrong_image_size_is_an_error_not_a_panic() {
    let dir = temp_dir("classifier-size");
    random_checkpoint(&dir, "fmnist-cnn", 10);
    let clf = Classifier::load(&dir).unwrap();
    let e = clf.predict(&[0u8; 27]).unwrap_err().to_string();
    assert!(e.contains("27") && e.contains("784"), "{e}");
    // The classifier is still usable afterwards.
    assert!(clf.predict(&[0u8; 784]).is_ok());
}

#[test]
fn a_model_without_a_final_flatten_predicts_too() {
    // Outputs [N, 3, 1, 1]: each image's values are its logits.
    const NO_FLATTEN: &str = include_str!("specs/no-flatten.toml");
    let dir = temp_dir("classifier-no-flatten");
    random_checkpoint(&dir, NO_FLATTEN, 11);
    let clf = Classifier::load(&dir).unwrap();
    let preds = clf.predict_batch(&[&[10u8; 64], &[200u8; 64]]).unwrap();
    for p in preds {
        assert_eq!(p.probabilities.len(), 3);
        assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn flip_tta_scores_an_image_and_its_mirror_alike() {
    let dir = temp_dir("classifier-tta");
    random_checkpoint(&dir, "fmnist-cnn", 13);
    let mut rng = Rng::new(5);
    let image: Vec<u8> = (0..28 * 28).map(|_| rng.below(256) as u8).collect();
    let mirrored: Vec<u8> = image
        .chunks_exact(28)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    let plain = Classifier::load(&dir).unwrap();
    let a = plain.predict(&image).unwrap();
    let b = plain.predict(&mirrored).unwrap();
    assert_ne!(
        a.probabilities, b.probabilities,
        "random weights see the mirror differently"
    );
    let tta = Classifier::load(&dir)
        .unwrap()
        .with_tta(ember::config::Tta::Flip);
    let a = tta.predict(&image).unwrap();
    let b = tta.predict(&mirrored).unwrap();
    for (p, q) in a.probabilities.iter().zip(&b.probabilities) {
        assert!(
            (p - q).abs() < 1e-6,
            "{:?} against {:?}",
            a.probabilities,
            b.probabilities
        );
    }
}
