//! One `Classifier` shared by several threads, each classifying an image file:
//! `cargo run --release -p ember --example classify -- RUN_DIR IMAGE...`

use std::sync::Arc;

fn main() -> Result<(), ember::Error> {
    let mut args = std::env::args().skip(1);
    let run = args.next().unwrap_or_else(|| "runs/latest".into());
    let clf = Arc::new(ember::Classifier::load(run.as_ref())?);
    let workers: Vec<_> = args
        .map(|file| {
            let clf = Arc::clone(&clf);
            std::thread::spawn(move || (clf.predict_file(file.as_ref()), file))
        })
        .collect();
    for w in workers {
        let (prediction, file) = w.join().expect("a worker panicked");
        let p = prediction?;
        println!(
            "{file}: {} ({:.1}%)",
            p.class,
            100.0 * p.probabilities[p.index]
        );
    }
    Ok(())
}
