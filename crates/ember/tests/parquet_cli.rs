//! Parquet datasets (Spark image DataFrames) through the command line: `dataset info`
//! describes them, `train` reads the label and split columns it is given and records them,
//! `eval` reads the dataset as the run did, and the column flags are refused where they
//! mean nothing.

mod common;

use std::path::Path;

use common::{arg, ember, ember_json, ember_ok, eval_json, events, fails_with, read_json};
use ember_data::Dataset;
use ember_data::formats::parquet::{WriteOptions, write_spark_images};

/// `n` images of the sample from `start` on, every `step`-th.
fn sample_part(train: bool, n: usize) -> Dataset {
    let s = ember_data::sample().unwrap();
    let part = if train { s.train } else { s.test };
    let idx: Vec<usize> = (0..n).map(|i| i * (part.len() / n)).collect();
    part.subset(&idx)
}

/// One folder of two files, `split` column `part`, class names in column `kind`.
fn write_dataset(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (file, train, n) in [("a.parquet", true, 600), ("b.parquet", false, 200)] {
        let opts = WriteOptions {
            label_column: "kind".into(),
            split: Some(("part".into(), if train { "train" } else { "test" }.into())),
            ..Default::default()
        };
        let f = std::fs::File::create(dir.join(file)).unwrap();
        write_spark_images(f, &sample_part(train, n), &opts).unwrap();
    }
}

#[test]
fn a_spark_dataframe_trains_evaluates_and_is_described() {
    let dir = common::temp_dir("parquet-cli");
    let data = dir.join("fashion.parquet");
    write_dataset(&data);
    let d = data.to_str().unwrap();
    let cols = ["--label-column", "kind", "--split-column", "part"];

    let mut args = vec!["dataset", "info", d, "--json"];
    args.extend(cols);
    let info = ember_json(&args);
    assert_eq!(info["format"], "spark-parquet");
    assert_eq!(info["train"]["count"], 600);
    assert_eq!(info["test"]["count"], 200);
    assert_eq!(info["shape"], serde_json::json!([1, 28, 28]));
    let source = info["source"].as_str().unwrap();
    assert!(source.contains("2 Parquet file(s), 800 rows"), "{source}");
    assert!(source.contains("`kind`: strings"), "{source}");

    let run = dir.join("run");
    let mut args = vec![
        "train",
        "--dataset",
        d,
        "--epochs",
        "4",
        "--batch-size",
        "32",
        "--threads",
        "2",
        "--json",
        "--out",
        arg(&run),
    ];
    args.extend(cols);
    let out = ember_ok(&args);
    let done = &events(&out.stdout, "done")[0];
    let accuracy = done["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.5, "{accuracy}");
    let config = read_json(&run.join("config.json"));
    assert_eq!(config["split_column"], "part");

    // eval needs no column flags: the checkpoint records them.
    let e = eval_json(&run, d);
    assert_eq!(e["count"], 200);
    assert_eq!(e["accuracy"].as_f64().unwrap(), accuracy);

    // A column the files lack is named with the file and the columns they have.
    let out = ember(&["dataset", "info", d, "--label-column", "nope"]);
    fails_with(&out, &["a.parquet", "a column `nope`", "image, kind, part"]);
    // eval's flags override the recorded columns.
    let out = ember(&[
        "eval",
        "--checkpoint",
        arg(&run),
        "--dataset",
        d,
        "--label-column",
        "part",
    ]);
    fails_with(&out, &["b.parquet", "the unknown class \"test\""]);
    // The flags mean nothing for other formats.
    let out = ember(&["dataset", "info", "sample", "--split-column", "part"]);
    fails_with(&out, &["--split-column", "sample", "not Parquet"]);
}
