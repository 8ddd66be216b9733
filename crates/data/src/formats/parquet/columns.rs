//! One Parquet file's rows, read column by column: the fields of Spark's image struct, the
//! label and the split. Only the leaf columns needed are decoded; each is checked for its
//! physical type before a typed reader is made (the parquet crate panics on a mismatch).

use bytes::Bytes;
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::ColumnReaderImpl;
use parquet::data_type::{ByteArray, DataType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::SchemaDescriptor;

use crate::DataError;

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
    let reader = SerializedFileReader::new(bytes)
        .map_err(|e| DataError::new(name, "a Parquet file", format!("{e}")))?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let rows = usize::try_from(meta.file_metadata().num_rows())
        .map_err(|_| DataError::new(name, "a row count of at least 0", "a negative one"))?;
    let file = ColumnSource {
        name,
        reader: &reader,
        schema,
        rows,
    };
    let find = |field: &str| file.leaf(&[image, field], image);
    let origin = file.read::<parquet::data_type::ByteArrayType>(find("origin")?, "origin")?;
    let height = file.read_i32(find("height")?)?;
    let width = file.read_i32(find("width")?)?;
    let n_channels = file.read_i32(find("nChannels")?)?;
    let mode = file.read_i32(find("mode")?)?;
    let data = file.read::<parquet::data_type::ByteArrayType>(find("data")?, "data")?;
    let mut images = Vec::with_capacity(rows);
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

/// One open file and what error messages say about it.
struct ColumnSource<'a> {
    name: &'a str,
    reader: &'a SerializedFileReader<Bytes>,
    schema: &'a SchemaDescriptor,
    rows: usize,
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
        let mut out = Vec::with_capacity(self.rows);
        let bad = |e: parquet::errors::ParquetError| {
            DataError::new(
                self.name,
                format!("readable data in column `{path}`"),
                format!("{e}"),
            )
        };
        for g in 0..self.reader.num_row_groups() {
            let group = self.reader.get_row_group(g).map_err(bad)?;
            let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
            let mut typed: ColumnReaderImpl<T> =
                match T::get_column_reader(group.get_column_reader(col).map_err(bad)?) {
                    Some(r) => r,
                    None => {
                        return Err(DataError::new(self.name, format!("{want}"), "another type"));
                    }
                };
            let (mut defs, mut values) = (Vec::new(), Vec::new());
            let mut done = 0;
            while done < rows {
                let (records, _, _) = typed
                    .read_records(rows - done, Some(&mut defs), None, &mut values)
                    .map_err(bad)?;
                if records == 0 {
                    break;
                }
                done += records;
            }
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
