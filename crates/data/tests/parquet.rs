//! Spark image DataFrames in Parquet: files written here with Spark's schema (by a raw
//! column writer, so that the byte order is checked independently of Ember's own writer),
//! the layouts Spark writes (part files, train/ and test/, split columns, partition
//! folders), and bad files, which must give errors naming the file and never panic.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::TempDir;
use ember_data::formats::parquet::{self as pq, ParquetOptions, WriteOptions};
use ember_data::{DataError, Dataset, OpenOptions};
use parquet::basic::Compression;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::SchemaDescriptor;

/// One leaf column's values in schema order; None is a null (at the leaf).
enum Col {
    Bytes(Vec<Option<Vec<u8>>>),
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
}

/// Spark's image struct plus `extra` top-level fields.
fn spark_schema(extra: &str) -> String {
    format!(
        "message spark_schema {{ optional group image {{ optional binary origin (STRING); \
         optional int32 height; optional int32 width; optional int32 nChannels; \
         optional int32 mode; optional binary data; }} {extra} }}"
    )
}

/// Writes the present values of `v` to column `c`, a null as definition level `max - 1`.
fn write_col<T: DataType>(
    c: &mut SerializedColumnWriter<'_>,
    v: Vec<Option<T::T>>,
    max: i16,
) -> parquet::errors::Result<usize> {
    let defs: Vec<i16> = v
        .iter()
        .map(|x| if x.is_some() { max } else { max - 1 })
        .collect();
    let vals: Vec<T::T> = v.into_iter().flatten().collect();
    c.typed::<T>().write_batch(&vals, Some(&defs), None)
}

/// Writes one row group of `cols` (one per leaf, in schema order), snappy-compressed.
fn write_raw(path: &Path, schema: &str, cols: Vec<Col>) {
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let descr = SchemaDescriptor::new(schema.clone());
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, Arc::new(props)).unwrap();
    let mut g = w.next_row_group().unwrap();
    for (i, col) in cols.into_iter().enumerate() {
        let max = descr.column(i).max_def_level();
        let mut c = g.next_column().unwrap().unwrap();
        match col {
            Col::Bytes(v) => {
                let v = v.into_iter().map(|b| b.map(ByteArray::from)).collect();
                write_col::<ByteArrayType>(&mut c, v, max)
            }
            Col::I32(v) => write_col::<Int32Type>(&mut c, v, max),
            Col::I64(v) => write_col::<Int64Type>(&mut c, v, max),
            Col::F64(v) => write_col::<DoubleType>(&mut c, v, max),
            Col::Bool(v) => write_col::<BoolType>(&mut c, v, max),
        }
        .unwrap();
        c.close().unwrap();
    }
    g.close().unwrap();
    w.close().unwrap();
}

/// A row as Spark stores it: (height, width, channels, mode, HWC bytes in BGR order).
type Row = (i32, i32, i32, i32, Vec<u8>);

/// The image struct's six columns for `rows`.
fn image_cols(rows: &[Row]) -> Vec<Col> {
    let origin = rows
        .iter()
        .enumerate()
        .map(|(i, _)| Some(format!("file:/img/{i}.png").into_bytes()))
        .collect();
    let int = |f: fn(&Row) -> i32| Col::I32(rows.iter().map(|r| Some(f(r))).collect());
    vec![
        Col::Bytes(origin),
        int(|r| r.0),
        int(|r| r.1),
        int(|r| r.2),
        int(|r| r.3),
        Col::Bytes(rows.iter().map(|r| Some(r.4.clone())).collect()),
    ]
}

fn names(v: &[&str]) -> Col {
    Col::Bytes(v.iter().map(|s| Some(s.as_bytes().to_vec())).collect())
}

fn open(path: &Path, opts: ParquetOptions) -> Result<ember_data::Splits, DataError> {
    pq::open(path, &opts, None, None).map(|(s, _)| s)
}

fn err(path: &Path, opts: ParquetOptions) -> String {
    let e = open(path, opts).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    e
}

/// A 2x2 BGR image whose pixel k is (B, G, R) = (10k + 1, 10k + 2, 10k + 3).
fn bgr_2x2() -> Row {
    let data = (0..4u8)
        .flat_map(|k| [10 * k + 1, 10 * k + 2, 10 * k + 3])
        .collect();
    (2, 2, 3, 16, data)
}

#[test]
fn bgr_rows_become_rgb_planes_and_string_labels_sorted_classes() {
    let t = TempDir::new("pq-bgr");
    let f = t.path().join("part-00000.snappy.parquet");
    let gray = (2, 2, 1, 0, vec![1, 2, 3, 4]);
    let mut cols = image_cols(&[bgr_2x2(), bgr_2x2()]);
    cols.push(names(&["dog", "cat"]));
    write_raw(&f, &spark_schema("optional binary label (STRING);"), cols);
    let s = open(&f, ParquetOptions::default()).unwrap();
    assert_eq!(s.format, "spark-parquet");
    assert_eq!(s.train.shape(), [3, 2, 2]);
    // R plane, G plane, B plane.
    let want = [3, 13, 23, 33, 2, 12, 22, 32, 1, 11, 21, 31];
    assert_eq!(s.train.image(0), &want);
    assert_eq!(s.train.classes(), &["cat".to_string(), "dog".into()]);
    assert_eq!(s.train.labels(), &[1, 0]);
    assert!(s.test.is_empty());

    // A grayscale first image makes a grayscale dataset; colour rows become luma.
    let f2 = t.path().join("gray.parquet");
    let mut cols = image_cols(&[gray, bgr_2x2()]);
    cols.push(names(&["a", "b"]));
    write_raw(&f2, &spark_schema("optional binary label (STRING);"), cols);
    let s = open(&f2, ParquetOptions::default()).unwrap();
    assert_eq!(s.train.shape(), [1, 2, 2]);
    assert_eq!(s.train.image(0), &[1, 2, 3, 4]);
    // The luma of the colour row is what the image crate gives for RGB (3, 2, 1) etc.
    let rgb = image::RgbImage::from_raw(2, 2, vec![3, 2, 1, 13, 12, 11, 23, 22, 21, 33, 32, 31]);
    let luma = image::DynamicImage::ImageRgb8(rgb.unwrap()).into_luma8();
    assert_eq!(s.train.image(1), luma.as_raw().as_slice());
}

#[test]
fn bgra_drops_alpha_and_sizes_follow_the_first_image_or_the_options() {
    let t = TempDir::new("pq-bgra");
    let f = t.path().join("x.parquet");
    let bgra = (1, 1, 4, 24, vec![10, 20, 30, 255]);
    let big = (2, 4, 3, 16, vec![50; 24]);
    let mut cols = image_cols(&[bgra, big]);
    cols.push(Col::I32(vec![Some(0), Some(2)]));
    write_raw(&f, &spark_schema("optional int32 label;"), cols);
    let s = open(&f, ParquetOptions::default()).unwrap();
    assert_eq!(s.train.shape(), [3, 1, 1]);
    assert_eq!(s.train.image(0), &[30, 20, 10]);
    assert_eq!(s.train.image(1), &[50, 50, 50]);
    // Integer labels are class indices: classes 0..=2.
    assert_eq!(s.train.classes(), &["0", "1", "2"]);
    assert_eq!(s.train.labels(), &[0, 2]);
    let (s, _) = pq::open(&f, &ParquetOptions::default(), None, Some([2, 4])).unwrap();
    assert_eq!(s.train.shape(), [3, 2, 4]);
    assert_eq!(s.train.image(1), &[50; 24]);
    let (s, _) = pq::open(&f, &ParquetOptions::default(), Some([1, 3, 3]), None).unwrap();
    assert_eq!(s.train.shape(), [1, 3, 3]);
}

fn sample_subset(n: usize) -> Dataset {
    let s = ember_data::sample().unwrap();
    let idx: Vec<usize> = (0..n).map(|i| i * 7).collect();
    s.train.subset(&idx)
}

/// A colour dataset with distinct channels, so that a swapped plane is seen.
fn colour(n: usize) -> Dataset {
    let g = sample_subset(n);
    let mut px = Vec::new();
    for i in 0..n {
        let img = g.image(i);
        px.extend_from_slice(img);
        px.extend(img.iter().map(|v| v / 2));
        px.extend(img.iter().map(|v| 255 - v));
    }
    Dataset::new([3, 28, 28], px, g.labels().to_vec(), g.classes().to_vec()).unwrap()
}

/// Each image's class name.
fn class_names(ds: &Dataset) -> Vec<&str> {
    ds.labels()
        .iter()
        .map(|&l| ds.classes()[l].as_str())
        .collect()
}

fn write(path: &Path, ds: &Dataset, opts: &WriteOptions) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    pq::write_spark_images(f, ds, opts).unwrap();
}

#[test]
fn written_datasets_read_back_exactly_in_every_layout() {
    let t = TempDir::new("pq-layouts");
    let (train, test) = (colour(40), colour(12).subset(&[0, 1, 2, 3, 4, 5]));
    let small_groups = WriteOptions {
        rows_per_group: 7,
        ..Default::default()
    };
    // train/ and test/ folders of part files, with Spark's _SUCCESS and .crc files.
    let root = t.path().join("tt");
    write(
        &root.join("train/part-00000.parquet"),
        &train.subset(&(0..25).collect::<Vec<_>>()),
        &small_groups,
    );
    write(
        &root.join("train/part-00001.parquet"),
        &train.subset(&(25..40).collect::<Vec<_>>()),
        &small_groups,
    );
    t.write("tt/train/_SUCCESS", b"");
    t.write("tt/train/.part-00000.parquet.crc", b"junk");
    write(
        &root.join("test/part-00000.parquet"),
        &test,
        &WriteOptions::default(),
    );
    let (s, summary) = pq::open(&root, &ParquetOptions::default(), None, None).unwrap();
    assert_eq!(s.train.pixels(), train.pixels());
    assert_eq!(class_names(&s.train), class_names(&train));
    assert_eq!(s.test.pixels(), test.pixels());
    assert_eq!(class_names(&s.test), class_names(&test));
    // String labels: the classes sorted by name.
    let mut sorted = train.classes().to_vec();
    sorted.sort();
    assert_eq!(s.train.classes(), sorted.as_slice());
    assert_eq!((summary.files, summary.rows), (3, 46));
    assert!(
        summary.to_string().contains("46 x 28x28x3 mode 16"),
        "{summary}"
    );
    // The same through format detection, as `--dataset` finds it.
    let via_open = ember_data::open(&root).unwrap();
    assert_eq!(via_open.train, s.train);

    // A split column, integer labels.
    let split = t.path().join("split");
    let ints = |value: &str| WriteOptions {
        label_names: false,
        split: Some(("part".into(), value.into())),
        ..Default::default()
    };
    write(&split.join("a.parquet"), &train, &ints("train"));
    write(&split.join("b.parquet"), &test, &ints("TEST"));
    let by_column = ParquetOptions {
        split_column: Some("part".into()),
        ..Default::default()
    };
    let s = open(&split, by_column.clone()).unwrap();
    assert_eq!(s.train.pixels(), train.pixels());
    assert_eq!(s.test.labels(), test.labels());
    assert_eq!(s.train.classes().len(), 10);
    // Without the option, every row is training data.
    assert_eq!(
        open(&split, ParquetOptions::default()).unwrap().train.len(),
        46
    );
    let opts = OpenOptions {
        parquet: by_column,
        ..Default::default()
    };
    assert_eq!(
        ember_data::open_with(&split, opts.clone())
            .unwrap()
            .test
            .len(),
        6
    );
    // A file of test rows alone has no training part to take the classes from.
    let e = ember_data::open_with(&split.join("b.parquet"), opts).unwrap_err();
    assert!(
        e.to_string()
            .contains("b.parquet: expected training images"),
        "{e}"
    );

    // Partition folders: .partitionBy("split", "label") leaves both columns out of the files.
    let parts = t.path().join("parts");
    let plain = WriteOptions {
        label_column: "unused".into(),
        ..Default::default()
    };
    let cat = train.subset(&[0, 1, 2]);
    write(
        &parts.join("split=train/label=cat%20s/p.parquet"),
        &cat,
        &plain,
    );
    write(&parts.join("split=train/label=dog/p.parquet"), &cat, &plain);
    write(&parts.join("split=test/label=dog/p.parquet"), &cat, &plain);
    let s = open(
        &parts,
        ParquetOptions {
            split_column: Some("split".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.train.classes(), &["cat s".to_string(), "dog".into()]);
    assert_eq!(s.train.labels(), &[0, 0, 0, 1, 1, 1]);
    assert_eq!(s.test.labels(), &[1, 1, 1]);
}

#[test]
fn float_labels_from_string_indexer_are_class_indices() {
    let t = TempDir::new("pq-float");
    let f = t.path().join("f.parquet");
    let mut cols = image_cols(&[bgr_2x2(), bgr_2x2(), bgr_2x2()]);
    cols.push(Col::F64(vec![Some(1.0), Some(0.0), Some(3.0)]));
    write_raw(&f, &spark_schema("required double label;"), cols);
    let s = open(&f, ParquetOptions::default()).unwrap();
    assert_eq!(s.train.labels(), &[1, 0, 3]);
    assert_eq!(s.train.classes().len(), 4);
}

/// A one-row file of Spark's image struct with `row` and a label column `extra`.
fn one_row(t: &TempDir, name: &str, row: Row, extra: &str, label: Col) -> std::path::PathBuf {
    let f = t.path().join(name);
    let mut cols = image_cols(&[row]);
    cols.push(label);
    write_raw(&f, &spark_schema(extra), cols);
    f
}

#[test]
fn bad_rows_are_errors_naming_the_file_row_and_problem() {
    let t = TempDir::new("pq-bad-rows");
    let label = "optional int32 label;";
    let zero = || Col::I32(vec![Some(0)]);
    let cases: Vec<(Row, &str)> = vec![
        ((2, 2, 3, 16, vec![0; 11]), "12 data bytes (2x2x3"),
        ((2, 2, 3, 0, vec![0; 12]), "mode 16 (OpenCV CV_8UC3)"),
        ((2, 2, 2, 16, vec![0; 8]), "nChannels 1, 3 or 4"),
        ((-1, -1, -1, -1, vec![]), "dropInvalid"),
        ((0, 2, 1, 0, vec![]), "a height and width from 1"),
        ((2, 2, 1, 2, vec![0; 8]), "mode 0 (OpenCV CV_8UC1)"),
    ];
    for (i, (row, want)) in cases.into_iter().enumerate() {
        let f = one_row(&t, &format!("r{i}.parquet"), row, label, zero());
        let e = err(&f, ParquetOptions::default());
        assert!(
            e.contains(want) && e.contains("row 0, origin file:/img/0.png"),
            "{e}"
        );
    }
    let ok = bgr_2x2;
    let f = one_row(&t, "neg.parquet", ok(), label, Col::I32(vec![Some(-3)]));
    assert!(err(&f, ParquetOptions::default()).contains("class index of at least 0"));
    let f = one_row(&t, "null.parquet", ok(), label, Col::I32(vec![None]));
    assert!(err(&f, ParquetOptions::default()).contains("found null"));
    let f = one_row(
        &t,
        "big.parquet",
        ok(),
        "optional int64 label;",
        Col::I64(vec![Some(1 << 40)]),
    );
    assert!(err(&f, ParquetOptions::default()).contains("class indices below 100000"));
    let f = one_row(
        &t,
        "half.parquet",
        ok(),
        "optional double label;",
        Col::F64(vec![Some(0.5)]),
    );
    assert!(err(&f, ParquetOptions::default()).contains("whole class index"));
    let f = t.path().join("split.parquet");
    let mut cols = image_cols(&[ok()]);
    cols.push(names(&["a"]));
    cols.push(names(&["validation"]));
    write_raw(
        &f,
        &spark_schema("optional binary label (STRING); optional binary split (STRING);"),
        cols,
    );
    let split = ParquetOptions {
        split_column: Some("split".into()),
        ..Default::default()
    };
    assert!(err(&f, split).contains("`train` or `test` in `split`"));
}

#[test]
fn bad_schemas_are_errors_naming_the_file_and_column() {
    let t = TempDir::new("pq-bad-schema");
    // No image column.
    let f = t.path().join("noimg.parquet");
    write_raw(
        &f,
        "message m { optional int32 label; }",
        vec![Col::I32(vec![Some(1)])],
    );
    let e = err(&f, ParquetOptions::default());
    assert!(
        e.contains("struct column `image`") && e.contains("the columns label"),
        "{e}"
    );
    // The image struct without its data field.
    let f = t.path().join("nodata.parquet");
    let schema = "message m { optional group image { optional binary origin (STRING); \
        optional int32 height; optional int32 width; optional int32 nChannels; \
        optional int32 mode; } optional int32 label; }";
    let mut cols = image_cols(&[bgr_2x2()]);
    cols.truncate(5);
    cols.push(Col::I32(vec![Some(1)]));
    write_raw(&f, schema, cols);
    assert!(err(&f, ParquetOptions::default()).contains("no field `data` in `image`"));
    // height as int64.
    let f = t.path().join("i64.parquet");
    let schema = spark_schema("optional int32 label;")
        .replace("optional int32 height", "optional int64 height");
    let mut cols = image_cols(&[bgr_2x2()]);
    cols[1] = Col::I64(vec![Some(2)]);
    cols.push(Col::I32(vec![Some(1)]));
    write_raw(&f, &schema, cols);
    assert!(
        err(&f, ParquetOptions::default()).contains("column `image.height` of Parquet type INT32")
    );
    // No label column (the default name, then another name).
    let f = one_row(
        &t,
        "nolabel.parquet",
        bgr_2x2(),
        "optional int32 cls;",
        Col::I32(vec![Some(0)]),
    );
    let e = err(&f, ParquetOptions::default());
    assert!(
        e.contains("a column `label`") && e.contains("image, cls"),
        "{e}"
    );
    let opts = ParquetOptions {
        label_column: "cls".into(),
        ..Default::default()
    };
    assert_eq!(open(&f, opts).unwrap().train.len(), 1);
    // A boolean label.
    let f = one_row(
        &t,
        "bool.parquet",
        bgr_2x2(),
        "optional boolean label;",
        Col::Bool(vec![Some(true)]),
    );
    let e = err(&f, ParquetOptions::default());
    assert!(
        e.contains("integers, whole numbers or strings") && e.contains("BOOLEAN"),
        "{e}"
    );
    // Mixed label kinds across files, and a test class unknown to training.
    let root = t.path().join("mixed");
    one_row(
        &t,
        "mixed/train/a.parquet",
        bgr_2x2(),
        "optional int32 label;",
        Col::I32(vec![Some(0)]),
    );
    one_row(
        &t,
        "mixed/test/b.parquet",
        bgr_2x2(),
        "optional binary label (STRING);",
        names(&["x"]),
    );
    let e = err(&root, ParquetOptions::default());
    assert!(e.contains("labels in `label` of one kind"), "{e}");
    let root = t.path().join("unknown");
    one_row(
        &t,
        "unknown/train/a.parquet",
        bgr_2x2(),
        "optional binary label (STRING);",
        names(&["x"]),
    );
    one_row(
        &t,
        "unknown/test/b.parquet",
        bgr_2x2(),
        "optional binary label (STRING);",
        names(&["y"]),
    );
    assert!(err(&root, ParquetOptions::default()).contains("the unknown class \"y\""));
    // An empty folder and a folder of other files.
    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(err(&empty, ParquetOptions::default()).contains("Parquet files"));
}

#[test]
fn truncated_and_damaged_files_are_errors_never_panics() {
    let t = TempDir::new("pq-trunc");
    let f = t.path().join("whole.parquet");
    write(&f, &colour(3), &WriteOptions::default());
    let bytes = std::fs::read(&f).unwrap();
    assert!(pq::parse("whole", bytes.clone(), &ParquetOptions::default()).is_ok());
    let cut = t.path().join("cut.parquet");
    for n in [bytes.len() - 1, bytes.len() / 2, 8, 4] {
        std::fs::write(&cut, &bytes[..n]).unwrap();
        let e = ember_data::open(&cut).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("cut.parquet"), "{e}");
    }
    // Every prefix and single-byte damage through the parser: errors, no panic.
    for n in (0..bytes.len()).step_by(13) {
        assert!(pq::parse("cut", bytes[..n].to_vec(), &ParquetOptions::default()).is_err());
    }
    for i in (0..bytes.len()).step_by(17) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let _ = pq::parse("flip", b, &ParquetOptions::default());
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Random byte edits of a written file and of the pyspark-written fixture, cut or
    /// whole: an error or a dataset, never a panic.
    #[test]
    fn mutated_files_never_panic(
        spark in proptest::prelude::any::<bool>(),
        edits in proptest::collection::vec(
            (proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
        cut in proptest::prelude::any::<usize>(),
    ) {
        let mut bytes = if spark {
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/parquet/spark-3-images-4x3.parquet")).unwrap()
        } else {
            let mut b = Vec::new();
            pq::write_spark_images(&mut b, &colour(2), &WriteOptions::default()).unwrap();
            b
        };
        for (pos, val) in edits {
            let n = bytes.len();
            bytes[pos % n] = val;
        }
        let keep = if cut % 3 == 0 { cut % (bytes.len() + 1) } else { bytes.len() };
        let split = ParquetOptions { split_column: Some("split".into()), ..Default::default() };
        let _ = pq::parse("m", bytes[..keep].to_vec(), &ParquetOptions::default());
        let _ = pq::parse("m", bytes[..keep].to_vec(), &split);
    }
}
