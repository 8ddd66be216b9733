//! Writing a [`Dataset`] as Spark writes an image DataFrame: the image struct column (BGR
//! rows of pixels, OpenCV mode codes), a label column and, optionally, a split column, in
//! snappy-compressed Parquet. For tests, benchmarks and handing Ember's datasets to Spark.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::convert::mode_for;
use crate::{DataError, Dataset};

/// How [`write_spark_images`] writes the rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// The label column's name.
    pub label_column: String,
    /// Write class names (strings) rather than class indices (int32).
    pub label_names: bool,
    /// A split column and the value every row gets in it (`("split", "train")`).
    pub split: Option<(String, String)>,
    /// The `origin` of row `i` is this followed by `i`.
    pub origin_prefix: String,
    /// Rows per row group.
    pub rows_per_group: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            label_column: "label".into(),
            label_names: true,
            split: None,
            origin_prefix: "ember:".into(),
            rows_per_group: 4096,
        }
    }
}

/// Writes `dataset` to `out` as a Spark image DataFrame in Parquet (see [`WriteOptions`]).
/// The image struct has Spark's fields and types; 3-channel images are stored as BGR.
pub fn write_spark_images<W: Write + Send>(
    out: W,
    dataset: &Dataset,
    options: &WriteOptions,
) -> Result<(), DataError> {
    let bad = |e: parquet::errors::ParquetError| {
        DataError::new("parquet writer", "a written file", format!("{e}"))
    };
    let [c, h, w] = dataset.shape();
    let Some(mode) = mode_for(c).filter(|_| c != 4) else {
        return Err(DataError::new(
            "parquet writer",
            "images of 1 or 3 channels",
            format!("{c}"),
        ));
    };
    let dims = [h, w, c].map(|d| i32::try_from(d).unwrap_or(i32::MAX));
    let label = if options.label_names {
        format!("optional binary {} (STRING);", options.label_column)
    } else {
        format!("optional int32 {};", options.label_column)
    };
    let split = match &options.split {
        Some((col, _)) => format!("optional binary {col} (STRING);"),
        None => String::new(),
    };
    let schema = format!(
        "message spark_schema {{ optional group image {{ optional binary origin (STRING); \
         optional int32 height; optional int32 width; optional int32 nChannels; \
         optional int32 mode; optional binary data; }} {label} {split} }}"
    );
    let schema = Arc::new(parse_message_type(&schema).map_err(bad)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build(),
    );
    let mut writer = SerializedFileWriter::new(out, schema, props).map_err(bad)?;
    let per_group = options.rows_per_group.max(1);
    for start in (0..dataset.len()).step_by(per_group) {
        let rows: Vec<usize> = (start..dataset.len().min(start + per_group)).collect();
        let n = rows.len();
        let origins: Vec<ByteArray> = rows
            .iter()
            .map(|i| format!("{}{i}", options.origin_prefix).as_str().into())
            .collect();
        let data: Vec<ByteArray> = rows
            .iter()
            .map(|&i| ByteArray::from(interleave_bgr(dataset.image(i), c, h * w)))
            .collect();
        let mut group = writer.next_row_group().map_err(bad)?;
        let nested = vec![2i16; n];
        let top = vec![1i16; n];
        let mut column = 0;
        while let Some(mut col) = group.next_column().map_err(bad)? {
            match column {
                0 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&origins, Some(&nested), None),
                1..=4 => {
                    let v = [dims[0], dims[1], dims[2], mode][column - 1];
                    col.typed::<Int32Type>()
                        .write_batch(&vec![v; n], Some(&nested), None)
                }
                5 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&data, Some(&nested), None),
                6 if options.label_names => {
                    let names: Vec<ByteArray> = rows
                        .iter()
                        .map(|&i| dataset.classes()[dataset.label(i)].as_str().into())
                        .collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&names, Some(&top), None)
                }
                6 => {
                    let labels: Vec<i32> = rows
                        .iter()
                        .map(|&i| i32::try_from(dataset.label(i)).unwrap_or(i32::MAX))
                        .collect();
                    col.typed::<Int32Type>()
                        .write_batch(&labels, Some(&top), None)
                }
                _ => {
                    let value = options.split.as_ref().map_or("", |(_, v)| v.as_str());
                    col.typed::<ByteArrayType>().write_batch(
                        &vec![ByteArray::from(value); n],
                        Some(&top),
                        None,
                    )
                }
            }
            .map_err(bad)?;
            col.close().map_err(bad)?;
            column += 1;
        }
        group.close().map_err(bad)?;
    }
    writer.close().map_err(bad)?;
    Ok(())
}

/// CHW planes (RGB) to rows of interleaved BGR pixels, as Spark stores them.
fn interleave_bgr(chw: &[u8], channels: usize, plane: usize) -> Vec<u8> {
    if channels == 1 {
        return chw.to_vec();
    }
    let mut out = Vec::with_capacity(chw.len());
    for i in 0..plane {
        out.extend([chw[2 * plane + i], chw[plane + i], chw[i]]);
    }
    out
}
