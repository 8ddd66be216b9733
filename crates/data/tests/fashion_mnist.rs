//! The real Fashion-MNIST from the Debian package `dataset-fashion-mnist` (installed by CI).
//! The expected pixel values were read from the files with Python's gzip module.

mod common;

use common::debian_fashion_mnist as dir;

#[test]
fn real_fashion_mnist() {
    let Some(dir) = dir() else { return };
    let s = ember_data::open(dir).unwrap();
    assert_eq!(s.format, "idx");
    assert_eq!((s.train.len(), s.test.len()), (60_000, 10_000));
    assert_eq!(s.train.shape(), [1, 28, 28]);
    assert_eq!(s.test.shape(), [1, 28, 28]);
    let names = "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot";
    assert_eq!(s.train.classes(), names.split(',').collect::<Vec<_>>());
    assert_eq!(s.train.class_counts(), vec![6000; 10]);
    assert_eq!(s.test.class_counts(), vec![1000; 10]);
    assert_eq!(&s.train.labels()[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert_eq!(&s.test.labels()[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    let px = |d: &ember_data::Dataset, i: usize, y: usize, x: usize| d.image(i)[y * 28 + x];
    assert_eq!(px(&s.train, 0, 14, 14), 217);
    assert_eq!(px(&s.train, 0, 10, 20), 210);
    assert_eq!(px(&s.train, 1, 5, 10), 101);
    assert_eq!(px(&s.train, 59_999, 20, 5), 0);
    assert_eq!(px(&s.test, 0, 20, 14), 195);
    assert_eq!(px(&s.test, 9_999, 14, 14), 132);
    assert_eq!(
        s.train.image(0).iter().map(|&p| p as u32).sum::<u32>(),
        76_247
    );
    assert_eq!(
        s.test.image(0).iter().map(|&p| p as u32).sum::<u32>(),
        33_456
    );
}
