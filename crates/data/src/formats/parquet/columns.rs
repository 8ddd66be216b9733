//! One Parquet file's rows, read column by column: the fields of Spark's image struct, the
//! label and the split. Only the leaf columns needed are decoded; each is checked for its
//! physical type before a typed reader is made (the parquet crate panics on a mismatch).

use bytes::Bytes;
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::ColumnReaderImpl;
use parquet::data_type::{ByteArray, DataType};
use parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};
use parquet::schema::types::SchemaDescriptor;

use crate::DataError;

/// The most rows read (and space reserved for) at once: a footer's row count is not
/// trusted for allocations.
const BATCH: usize = 1 << 16;

/// More rows per byte of file than any codec can pack (an image row holds at least 5 bytes
/// of `data`, deflate packs at most ~1032 to 1): a footer claiming more lies, and would
/// have the reader decode nulls for a long time.
const MAX_ROWS_PER_BYTE: u64 = 1024;

/// The fields of Spark's image struct (`ImageSchema.columnSchema`), in Spark's order.
pub const IMAGE_FIELDS: [&str; 6] = ["origin", "height", "width", "nChannels", "mode", "data"];

/// One row's image as Spark stores it: `data` is `height` x `width` x `n_channels` bytes,
/// row-major, channels interleaved in BGR(A) order.
#[derive(Clone, Debug)]
pub struct SparkImage {
    /// Where Spark read the image from (a file URI), if recorded.
    pub origin: Option<String>,
    /// Rows of pixels.
    pub height: i32,
    /// Columns of pixels.
    pub width: i32,
    /// 1 (grayscale), 3 (BGR) or 4 (BGRA).
    pub n_channels: i32,
    /// The OpenCV type code (`CV_8UC1` = 0, `CV_8UC3` = 16, `CV_8UC4` = 24).
    pub mode: i32,
    /// The pixel bytes (a slice of the decoded page, not a copy).
    pub data: ByteArray,
}

impl SparkImage {
    /// The pixel bytes.
    pub fn pixels(&self) -> &[u8] {
        self.data.data()
    }
}

/// A label as a file holds it: a whole number (class index) or a class name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    /// An integer column (or a whole floating-point value, as Spark ML's `StringIndexer`
    /// writes): the class index.
    Index(u64),
    /// A string column: the class name.
    Name(String),
}

/// A value taken from a `column=value` folder name of a partitioned Spark output, used
/// when the file itself has no such column.
pub type PartitionValues<'a> = &'a [(String, String)];

/// The rows of one file.
#[derive(Debug, Default)]
pub struct FileRows {
    /// The images, one per row.
    pub images: Vec<SparkImage>,
    /// The labels, one per row.
    pub labels: Vec<Label>,
    /// The split column's values, one per row, when a split column was asked for.
    pub splits: Option<Vec<String>>,
}

/// Where in a file a value came from, for error messages.
pub fn row_name(file: &str, row: usize, origin: Option<&str>) -> String {
    match origin {
        Some(o) => format!("{file} (row {row}, origin {o})"),
        None => format!("{file} (row {row})"),
    }
}

/// Reads the image struct column `image`, the label column and, if given, the split column
/// of one Parquet file held in `bytes`. A label or split column missing from the file is
/// taken from `partition` (`label=cat/` folders), if it has it.
pub fn read_rows(
    name: &str,
    bytes: Bytes,
    image: &str,
    label: &str,
    split: Option<&str>,
    partition: PartitionValues,
) -> Result<FileRows, DataError> {
    let file_len = bytes.len() as u64;
    let reader = guarded(name, "a Parquet file", || {
        SerializedFileReader::new(bytes)
            .map_err(|e| DataError::new(name, "a Parquet file", format!("{e}")))
    })?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let rows = usize::try_from(meta.file_metadata().num_rows())
        .ok()
        .filter(|&r| r as u64 <= MAX_ROWS_PER_BYTE.saturating_mul(file_len))
        .ok_or_else(|| {
            DataError::new(
                name,
                format!(
                    "a row count of at most {MAX_ROWS_PER_BYTE} per byte of the file \
                     ({file_len} bytes)"
                ),
                format!("{}", meta.file_metadata().num_rows()),
            )
        })?;
    let file = ColumnSource {
        name,
        reader: &reader,
        schema,
        rows,
        file_len,
    };
    let find = |field: &str| file.leaf(&[image, field], image);
    let origin = file.read::<parquet::data_type::ByteArrayType>(find("origin")?, "origin")?;
    let height = file.read_i32(find("height")?)?;
    let width = file.read_i32(find("width")?)?;
    let n_channels = file.read_i32(find("nChannels")?)?;
    let mode = file.read_i32(find("mode")?)?;
    let data = file.read::<parquet::data_type::ByteArrayType>(find("data")?, "data")?;
    let mut images = Vec::with_capacity(rows.min(BATCH));
    let (mut origins, mut data) = (origin.into_iter(), data.into_iter());
    let mut ints = [height, width, n_channels, mode].map(|c| c.into_iter());
    for row in 0..rows {
        let o = origins.next().flatten();
        let [h, w, c, m] = ints.each_mut().map(|c| c.next().flatten());
        let d = data.next().flatten();
        let origin = o.map(|o| String::from_utf8_lossy(o.data()).into_owned());
        let at = || row_name(name, row, origin.as_deref());
        let (Some(h), Some(w), Some(c), Some(m), Some(d)) = (h, w, c, m, d) else {
            return Err(DataError::new(
                at(),
                format!("an image (`{image}` and its height, width, nChannels, mode and data)"),
                "a null",
            ));
        };
        images.push(SparkImage {
            origin,
            height: h,
            width: w,
            n_channels: c,
            mode: m,
            data: d,
        });
    }
    let labels = match schema_leaf(schema, &[label]) {
        Some(i) => file.read_labels(i, label, &images)?,
        None => {
            let value = from_partition(name, partition, label, schema)?;
            vec![partition_label(&value); rows]
        }
    };
    let splits = match split {
        None => None,
        Some(col) => Some(match schema_leaf(schema, &[col]) {
            Some(i) => file.read_strings(i, col, &images)?,
            None => vec![from_partition(name, partition, col, schema)?; rows],
        }),
    };
    Ok(FileRows {
        images,
        labels,
        splits,
    })
}

/// A partition folder's value read as a label: a whole number is a class index, as Spark
/// infers an integer type for such a partition column.
fn partition_label(value: &str) -> Label {
    match value.parse::<u64>() {
        Ok(i) => Label::Index(i),
        Err(_) => Label::Name(value.to_string()),
    }
}

/// The value of `column` from the file's partition folders, or an error listing the file's
/// columns.
fn from_partition(
    name: &str,
    partition: PartitionValues,
    column: &str,
    schema: &SchemaDescriptor,
) -> Result<String, DataError> {
    if let Some((_, v)) = partition.iter().find(|(k, _)| k == column) {
        return Ok(v.clone());
    }
    let columns: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    Err(DataError::new(
        name,
        format!("a column `{column}` (or a `{column}=…` folder above the file)"),
        format!("the columns {}", columns.join(", ")),
    ))
}

/// The index of the leaf column at `path`, if the schema has one.
fn schema_leaf(schema: &SchemaDescriptor, path: &[&str]) -> Option<usize> {
    schema.columns().iter().position(|c| {
        c.path()
            .parts()
            .iter()
            .map(String::as_str)
            .eq(path.iter().copied())
    })
}

/// Runs a call into the parquet crate, its panics made errors about `name`: it panics on
/// some malformed files (fuzzing found a data page in dictionary encoding without its
/// dictionary), and bad input must give an error, not end the program.
fn guarded<T>(
    name: &str,
    expected: &str,
    f: impl FnOnce() -> Result<T, DataError>,
) -> Result<T, DataError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(DataError::new(
            name,
            expected,
            format!("a malformed file (the Parquet reader failed: {why})"),
        ))
    })
}

/// One row group's worth of a leaf column: definition levels, the values present, and the
/// rows they make.
struct Decoded<V> {
    defs: Vec<i16>,
    values: Vec<V>,
    rows: usize,
}

/// One open file and what error messages say about it.
struct ColumnSource<'a> {
    name: &'a str,
    reader: &'a SerializedFileReader<Bytes>,
    schema: &'a SchemaDescriptor,
    rows: usize,
    file_len: u64,
}

impl ColumnSource<'_> {
    /// The leaf column `path` (a field of the struct column `image`), or an error.
    fn leaf(&self, path: &[&str], image: &str) -> Result<usize, DataError> {
        schema_leaf(self.schema, path).ok_or_else(|| {
            let has_image = self
                .schema
                .root_schema()
                .get_fields()
                .iter()
                .any(|f| f.name() == image);
            let found = if has_image {
                format!("no field `{}` in `{image}`", path[path.len() - 1])
            } else {
                let names: Vec<String> = self
                    .schema
                    .root_schema()
                    .get_fields()
                    .iter()
                    .map(|f| f.name().to_string())
                    .collect();
                format!("the columns {}", names.join(", "))
            };
            DataError::new(
                self.name,
                format!(
                    "a struct column `{image}` with Spark's image fields ({})",
                    IMAGE_FIELDS.join(", ")
                ),
                found,
            )
        })
    }

    /// A column of 32-bit integers.
    fn read_i32(&self, col: usize) -> Result<Vec<Option<i32>>, DataError> {
        self.read::<parquet::data_type::Int32Type>(col, "int32")
    }

    /// Every value of leaf column `col` (None where null), row groups one after another.
    /// `what` names the expected type in errors.
    fn read<T: DataType>(&self, col: usize, what: &str) -> Result<Vec<Option<T::T>>, DataError>
    where
        T::T: Clone,
    {
        let descr = self.schema.column(col);
        let path = descr.path().string();
        let want = T::get_physical_type();
        if descr.physical_type() != want || descr.max_rep_level() != 0 {
            return Err(DataError::new(
                self.name,
                format!("column `{path}` of Parquet type {want} ({what}), one value per row"),
                format!(
                    "{}{}",
                    descr.physical_type(),
                    if descr.max_rep_level() != 0 {
                        ", repeated"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let max_def = descr.max_def_level();
        let mut out = Vec::with_capacity(self.rows.min(BATCH));
        let bad = |e: parquet::errors::ParquetError| {
            DataError::new(
                self.name,
                format!("readable data in column `{path}`"),
                format!("{e}"),
            )
        };
        for g in 0..self.reader.num_row_groups() {
            let group = self.reader.get_row_group(g).map_err(bad)?;
            let rows = usize::try_from(group.metadata().num_rows())
                .ok()
                .filter(|&r| r <= self.rows)
                .ok_or_else(|| {
                    DataError::new(
                        self.name,
                        format!("row group {g} of at most the file's {} rows", self.rows),
                        format!("{} rows", group.metadata().num_rows()),
                    )
                })?;
            // The parquet crate panics on a chunk that starts or ends outside the file.
            if col >= group.metadata().num_columns() {
                return Err(DataError::new(
                    self.name,
                    format!("column `{path}` in row group {g}"),
                    format!("{} columns", group.metadata().num_columns()),
                ));
            }
            let chunk = group.metadata().column(col);
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or(chunk.data_page_offset());
            let len = chunk.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(s, l)| s.checked_add(l));
            if end.is_none_or(|e| e > self.file_len) {
                return Err(DataError::new(
                    self.name,
                    format!(
                        "column `{path}` of row group {g} within the file's {} bytes",
                        self.file_len
                    ),
                    format!("{len} bytes at offset {start}"),
                ));
            }
            let Decoded {
                defs,
                values,
                rows: done,
            } = guarded(
                self.name,
                &format!("readable data in column `{path}`"),
                || self.decode_group::<T>(group.as_ref(), col, rows),
            )?;
            let short = || {
                DataError::new(
                    self.name,
                    format!("{rows} values in column `{path}` of row group {g}"),
                    format!("{done} rows, {} values", values.len()),
                )
            };
            if done != rows {
                return Err(short());
            }
            if max_def == 0 {
                if values.len() != rows {
                    return Err(short());
                }
                out.extend(values.into_iter().map(Some));
            } else {
                let present = defs.iter().filter(|&&d| d == max_def).count();
                if defs.len() != rows || present != values.len() {
                    return Err(short());
                }
                let mut values = values.into_iter();
                out.extend(
                    defs.iter()
                        .map(|&d| if d == max_def { values.next() } else { None }),
                );
            }
        }
        if out.len() != self.rows {
            return Err(DataError::new(
                self.name,
                format!("{} rows in column `{path}` (the footer's count)", self.rows),
                format!("{}", out.len()),
            ));
        }
        Ok(out)
    }

    /// Up to `rows` definition levels and values of leaf column `col` in one row group, and
    /// the number of rows read.
    fn decode_group<T: DataType>(
        &self,
        group: &dyn RowGroupReader,
        col: usize,
        rows: usize,
    ) -> Result<Decoded<T::T>, DataError> {
        let path = self.schema.column(col).path().string();
        let bad = |e: parquet::errors::ParquetError| {
            DataError::new(
                self.name,
                format!("readable data in column `{path}`"),
                format!("{e}"),
            )
        };
        let reader = group.get_column_reader(col).map_err(bad)?;
        let Some(mut typed): Option<ColumnReaderImpl<T>> = T::get_column_reader(reader) else {
            return Err(DataError::new(
                self.name,
                format!("column `{path}` of Parquet type {}", T::get_physical_type()),
                "another type",
            ));
        };
        let (mut defs, mut values) = (Vec::new(), Vec::new());
        let mut done = 0;
        while done < rows {
            let (records, _, _) = typed
                .read_records((rows - done).min(BATCH), Some(&mut defs), None, &mut values)
                .map_err(bad)?;
            if records == 0 {
                break;
            }
            done += records;
        }
        Ok(Decoded {
            defs,
            values,
            rows: done,
        })
    }

    /// The label column: integers, whole floating-point numbers or strings.
    fn read_labels(
        &self,
        col: usize,
        column: &str,
        images: &[SparkImage],
    ) -> Result<Vec<Label>, DataError> {
        use parquet::data_type as t;
        let at = |row: usize| row_name(self.name, row, images[row].origin.as_deref());
        let null = |row: usize| DataError::new(at(row), format!("a label in `{column}`"), "null");
        let index = |row: usize, v: i64| {
            u64::try_from(v).map(Label::Index).map_err(|_| {
                DataError::new(
                    at(row),
                    format!("a class index of at least 0 in `{column}`"),
                    format!("{v}"),
                )
            })
        };
        let whole = |row: usize, v: f64| {
            if v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(53) {
                Ok(Label::Index(v as u64))
            } else {
                Err(DataError::new(
                    at(row),
                    format!("a whole class index of at least 0 in `{column}`"),
                    format!("{v}"),
                ))
            }
        };
        fn each<V>(
            values: Vec<Option<V>>,
            null: &dyn Fn(usize) -> DataError,
            f: &dyn Fn(usize, V) -> Result<Label, DataError>,
        ) -> Result<Vec<Label>, DataError> {
            values
                .into_iter()
                .enumerate()
                .map(|(row, v)| v.ok_or_else(|| null(row)).and_then(|v| f(row, v)))
                .collect()
        }
        match self.schema.column(col).physical_type() {
            PhysicalType::INT32 => each(
                self.read::<t::Int32Type>(col, "int32")?
                    .into_iter()
                    .map(|v| v.map(i64::from))
                    .collect(),
                &null,
                &index,
            ),
            PhysicalType::INT64 => each(self.read::<t::Int64Type>(col, "int64")?, &null, &index),
            PhysicalType::FLOAT => each(
                self.read::<t::FloatType>(col, "float")?
                    .into_iter()
                    .map(|v| v.map(f64::from))
                    .collect(),
                &null,
                &whole,
            ),
            PhysicalType::DOUBLE => each(self.read::<t::DoubleType>(col, "double")?, &null, &whole),
            PhysicalType::BYTE_ARRAY => Ok(self
                .read_strings(col, column, images)?
                .into_iter()
                .map(Label::Name)
                .collect()),
            other => Err(DataError::new(
                self.name,
                format!("label column `{column}` of integers, whole numbers or strings"),
                format!("Parquet type {other}"),
            )),
        }
    }

    /// A column of UTF-8 strings without nulls.
    fn read_strings(
        &self,
        col: usize,
        column: &str,
        images: &[SparkImage],
    ) -> Result<Vec<String>, DataError> {
        let values = self.read::<parquet::data_type::ByteArrayType>(col, "string")?;
        values
            .into_iter()
            .enumerate()
            .map(|(row, v)| {
                let at = || row_name(self.name, row, images[row].origin.as_deref());
                let v: ByteArray = v.ok_or_else(|| {
                    DataError::new(at(), format!("a value in `{column}`"), "null")
                })?;
                std::str::from_utf8(v.data())
                    .map(str::to_string)
                    .map_err(|_| {
                        DataError::new(at(), format!("UTF-8 text in `{column}`"), "other bytes")
                    })
            })
            .collect()
    }
}
