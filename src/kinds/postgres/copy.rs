//! A PostgreSQL table as a DataFusion table: each scan streams the table once with
//! `COPY (SELECT …) TO STDOUT (FORMAT binary)` and decodes the rows into Arrow batches, so
//! memory stays bounded by one batch whatever the table's size. Types without a binary decoder
//! here are cast to text on the server (their text form is what the checks and the fingerprint
//! see); `numeric` is read as text and parsed into a decimal of its declared precision, or a
//! double when it has none.

use std::str::FromStr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::streaming::PartitionStream;
use futures::StreamExt;

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 8192;
/// Microseconds and days between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;
const EPOCH_DAYS: i32 = 10_957;
/// The start of every binary COPY stream.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`, e.g. `numeric(12,2)`, `timestamp with time zone`.
    pub type_name: String,
    pub type_oid: u32,
    pub typmod: i32,
}

/// How one column's values are decoded.
#[derive(Debug, Clone, Copy)]
enum Decode {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    /// `numeric(p,s)` with p ≤ 38, read as text.
    Decimal(u8, i8),
    /// Unconstrained `numeric`, read as text into a double.
    NumericDouble,
    Text,
    Date,
    Timestamp,
    TimestampTz,
    Time,
    Bytes,
}

impl Decode {
    fn of(c: &PgColumn) -> Decode {
        match c.type_oid {
            16 => Decode::Bool,
            21 => Decode::I16,
            23 => Decode::I32,
            20 => Decode::I64,
            700 => Decode::F32,
            701 => Decode::F64,
            1700 if c.typmod >= 4 => {
                let precision = ((c.typmod - 4) >> 16) & 0xffff;
                let scale = (c.typmod - 4) & 0xffff;
                if (1..=38).contains(&precision) && scale <= precision {
                    Decode::Decimal(precision as u8, scale as i8)
                } else {
                    Decode::NumericDouble
                }
            }
            1700 => Decode::NumericDouble,
            1082 => Decode::Date,
            1114 => Decode::Timestamp,
            1184 => Decode::TimestampTz,
            1083 => Decode::Time,
            17 => Decode::Bytes,
            _ => Decode::Text,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Decode::Bool => DataType::Boolean,
            Decode::I16 => DataType::Int16,
            Decode::I32 => DataType::Int32,
            Decode::I64 => DataType::Int64,
            Decode::F32 => DataType::Float32,
            Decode::F64 | Decode::NumericDouble => DataType::Float64,
            Decode::Decimal(p, s) => DataType::Decimal128(p, s),
            Decode::Text => DataType::Utf8,
            Decode::Date => DataType::Date32,
            Decode::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Decode::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Decode::Time => DataType::Time64(TimeUnit::Microsecond),
            Decode::Bytes => DataType::Binary,
        }
    }

    /// Whether the server sends the column as text (cast in the SELECT).
    fn as_text(self) -> bool {
        matches!(
            self,
            Decode::Text | Decode::Decimal(..) | Decode::NumericDouble
        )
    }
}

/// The type name the suite's type rules use for a column (Delta's names: `long`, `string`,
/// `decimal(12,2)`, `timestamp`…).
pub fn suite_type(c: &PgColumn) -> String {
    match Decode::of(c) {
        Decode::Bool => "boolean".into(),
        Decode::I16 => "short".into(),
        Decode::I32 => "integer".into(),
        Decode::I64 => "long".into(),
        Decode::F32 => "float".into(),
        Decode::F64 | Decode::NumericDouble => "double".into(),
        Decode::Decimal(p, s) => format!("decimal({p},{s})"),
        Decode::Text => "string".into(),
        Decode::Date => "date".into(),
        Decode::Timestamp => "timestamp_ntz".into(),
        Decode::TimestampTz => "timestamp".into(),
        Decode::Time => "time".into(),
        Decode::Bytes => "binary".into(),
    }
}

/// `"schema"."name"` with quotes doubled.
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One table of a PostgreSQL database, read by COPY on each scan.
#[derive(Debug)]
pub struct CopyTable {
    config: tokio_postgres::Config,
    schema: SchemaRef,
    decoders: Vec<Decode>,
    /// `SELECT … FROM table`: what the `COPY` reads.
    query: String,
}

impl CopyTable {
    /// The table `qualified` (quoted) with these columns, read through `config`.
    pub fn new(config: tokio_postgres::Config, qualified: &str, columns: &[PgColumn]) -> Self {
        let decoders: Vec<Decode> = columns.iter().map(Decode::of).collect();
        let fields: Vec<Field> = columns
            .iter()
            .zip(&decoders)
            .map(|(c, d)| Field::new(&c.name, d.data_type(), true))
            .collect();
        let select: Vec<String> = columns
            .iter()
            .zip(&decoders)
            .map(|(c, d)| {
                let name = quote_ident(&c.name);
                if d.as_text() {
                    format!("{name}::text")
                } else {
                    name
                }
            })
            .collect();
        let select = if select.is_empty() {
            "SELECT".to_string()
        } else {
            format!("SELECT {}", select.join(", "))
        };
        CopyTable {
            config,
            schema: Arc::new(Schema::new(fields)),
            decoders,
            query: format!("{select} FROM {qualified}"),
        }
    }

    /// The table for DataFusion: one partition, streamed.
    pub fn provider(self) -> Result<StreamingTable, DataFusionError> {
        let schema = self.schema.clone();
        StreamingTable::try_new(schema, vec![Arc::new(self)])
    }

    /// The table for DataFusion in `parts` partitions of its `blocks` heap pages, each streamed
    /// by a `COPY` of its own over a range of pages (a TID range scan), read at once. Only for
    /// a table nothing writes to while it is read: each partition reads in its own snapshot.
    pub fn provider_in_parts(
        self,
        blocks: u64,
        parts: usize,
    ) -> Result<StreamingTable, DataFusionError> {
        let parts = parts.max(1) as u64;
        if parts == 1 || blocks < parts * 2 {
            return self.provider();
        }
        let schema = self.schema.clone();
        let step = blocks.div_ceil(parts);
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..parts)
            .map(|i| {
                let (from, to) = (i * step, (i + 1) * step);
                // The last range is open: pages past the size read at planning time count too.
                let range = if i + 1 == parts {
                    format!("ctid >= '({from},0)'::tid")
                } else {
                    format!("ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid")
                };
                Arc::new(CopyTable {
                    config: self.config.clone(),
                    schema: self.schema.clone(),
                    decoders: self.decoders.clone(),
                    query: format!("{} WHERE {range}", self.query),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        StreamingTable::try_new(schema, partitions)
    }
}

impl PartitionStream for CopyTable {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let config = self.config.clone();
        let statement = format!("COPY ({}) TO STDOUT (FORMAT binary)", self.query);
        let (schema, decoders) = (self.schema.clone(), self.decoders.clone());
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(2);
        tokio::spawn(async move {
            let result = stream_rows(&config, &statement, &schema, &decoders, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(DataFusionError::External(e.into()))).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

async fn stream_rows(
    config: &tokio_postgres::Config,
    statement: &str,
    schema: &SchemaRef,
    decoders: &[Decode],
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
) -> Result<(), String> {
    let client = super::open(config)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let copy = client
        .copy_out(statement)
        .await
        .map_err(|e| format!("{statement}: {}", db_error(&e)))?;
    futures::pin_mut!(copy);
    let mut buffer = BytesMut::new();
    let mut decoder = RowDecoder::new(schema.clone(), decoders);
    let mut header_read = false;
    loop {
        let chunk = copy.next().await;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            buffer.extend_from_slice(
                &chunk.map_err(|e| format!("reading the rows: {}", db_error(&e)))?,
            );
        }
        if !header_read {
            match read_header(&buffer)? {
                Some(n) => {
                    buffer.advance(n);
                    header_read = true;
                }
                None if done => return Err("the COPY stream ended inside its header".into()),
                None => continue,
            }
        }
        while let Some(step) = decoder.row(&mut buffer)? {
            if step == Step::End {
                break;
            }
            if decoder.rows == BATCH_ROWS && tx.send(Ok(decoder.finish()?)).await.is_err() {
                return Ok(()); // the scan stopped reading
            }
        }
        if done {
            break;
        }
    }
    if decoder.rows > 0 {
        let _ = tx.send(Ok(decoder.finish()?)).await;
    }
    Ok(())
}

/// The text of a PostgreSQL error with its detail.
pub(crate) fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// The length of the header when the buffer holds all of it.
fn read_header(buffer: &[u8]) -> Result<Option<usize>, String> {
    if buffer.len() < SIGNATURE.len() + 8 {
        return Ok(None);
    }
    if !buffer.starts_with(SIGNATURE) {
        return Err("the COPY stream does not start with the binary signature".into());
    }
    let extension = i32::from_be_bytes(buffer[15..19].try_into().expect("4 bytes")) as usize;
    let total = SIGNATURE.len() + 8 + extension;
    Ok((buffer.len() >= total).then_some(total))
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Row,
    End,
}

/// Builds Arrow columns row by row.
struct RowDecoder<'a> {
    schema: SchemaRef,
    decoders: &'a [Decode],
    columns: Vec<Builder>,
    rows: usize,
}

enum Builder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    Time(Time64MicrosecondBuilder),
    Bytes(BinaryBuilder),
}

impl Builder {
    fn new(d: Decode) -> Builder {
        match d {
            Decode::Bool => Builder::Bool(BooleanBuilder::new()),
            Decode::I16 => Builder::I16(Int16Builder::new()),
            Decode::I32 => Builder::I32(Int32Builder::new()),
            Decode::I64 => Builder::I64(Int64Builder::new()),
            Decode::F32 => Builder::F32(Float32Builder::new()),
            Decode::F64 | Decode::NumericDouble => Builder::F64(Float64Builder::new()),
            Decode::Decimal(p, s) => Builder::Decimal(Decimal128Builder::new(), p, s),
            Decode::Text => Builder::Text(StringBuilder::new()),
            Decode::Date => Builder::Date(Date32Builder::new()),
            Decode::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new(), false),
            Decode::TimestampTz => Builder::Timestamp(TimestampMicrosecondBuilder::new(), true),
            Decode::Time => Builder::Time(Time64MicrosecondBuilder::new()),
            Decode::Bytes => Builder::Bytes(BinaryBuilder::new()),
        }
    }

    fn null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::I16(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Decimal(b, ..) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b, _) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Bytes(b) => b.append_null(),
        }
    }

    fn value(&mut self, v: &[u8], numeric_text: bool) -> Result<(), String> {
        let fixed = |n: usize| -> Result<(), String> {
            if v.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "a value of {} bytes where {n} were expected",
                    v.len()
                ))
            }
        };
        match self {
            Builder::Bool(b) => {
                fixed(1)?;
                b.append_value(v[0] != 0)
            }
            Builder::I16(b) => {
                fixed(2)?;
                b.append_value(i16::from_be_bytes([v[0], v[1]]))
            }
            Builder::I32(b) => {
                fixed(4)?;
                b.append_value(i32::from_be_bytes(v.try_into().expect("4 bytes")))
            }
            Builder::I64(b) => {
                fixed(8)?;
                b.append_value(i64::from_be_bytes(v.try_into().expect("8 bytes")))
            }
            Builder::F32(b) => {
                fixed(4)?;
                b.append_value(f32::from_be_bytes(v.try_into().expect("4 bytes")))
            }
            Builder::F64(b) if numeric_text => {
                let text = std::str::from_utf8(v).map_err(|e| e.to_string())?;
                // `NaN` and `Infinity` parse as doubles too.
                b.append_value(f64::from_str(text).map_err(|e| format!("`{text}`: {e}"))?)
            }
            Builder::F64(b) => {
                fixed(8)?;
                b.append_value(f64::from_be_bytes(v.try_into().expect("8 bytes")))
            }
            Builder::Decimal(b, _, scale) => {
                let text = std::str::from_utf8(v).map_err(|e| e.to_string())?;
                match parse_decimal(text, *scale) {
                    Some(n) => b.append_value(n),
                    // NaN: no decimal holds it.
                    None => b.append_null(),
                }
            }
            Builder::Text(b) => b.append_value(String::from_utf8_lossy(v)),
            Builder::Date(b) => {
                fixed(4)?;
                let days = i32::from_be_bytes(v.try_into().expect("4 bytes"));
                b.append_value(days.saturating_add(EPOCH_DAYS))
            }
            Builder::Timestamp(b, _) => {
                fixed(8)?;
                let micros = i64::from_be_bytes(v.try_into().expect("8 bytes"));
                b.append_value(micros.saturating_add(EPOCH_MICROS))
            }
            Builder::Time(b) => {
                fixed(8)?;
                b.append_value(i64::from_be_bytes(v.try_into().expect("8 bytes")))
            }
            Builder::Bytes(b) => b.append_value(v),
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, String> {
        let array: ArrayRef = match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Decimal(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            ),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b, tz) => {
                let a = b.finish();
                Arc::new(if *tz { a.with_timezone("UTC") } else { a })
            }
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Bytes(b) => Arc::new(b.finish()),
        };
        Ok(array)
    }
}

/// `-123.45` with scale 2 as `-12345`; `None` for `NaN` or a value that does not fit.
fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let scale = scale.max(0) as usize;
    let mut value: i128 = 0;
    for c in whole.chars() {
        value = value
            .checked_mul(10)?
            .checked_add(c.to_digit(10)? as i128)?;
    }
    let mut fraction_digits = fraction.chars();
    for _ in 0..scale {
        let d = match fraction_digits.next() {
            Some(c) => c.to_digit(10)? as i128,
            None => 0,
        };
        value = value.checked_mul(10)?.checked_add(d)?;
    }
    Some(if negative { -value } else { value })
}

impl<'a> RowDecoder<'a> {
    fn new(schema: SchemaRef, decoders: &'a [Decode]) -> Self {
        RowDecoder {
            schema,
            decoders,
            columns: decoders.iter().map(|d| Builder::new(*d)).collect(),
            rows: 0,
        }
    }

    /// Decodes the next row when the buffer holds all of it; `None` when it needs more bytes.
    fn row(&mut self, buffer: &mut BytesMut) -> Result<Option<Step>, String> {
        if buffer.len() < 2 {
            return Ok(None);
        }
        let count = i16::from_be_bytes([buffer[0], buffer[1]]);
        if count == -1 {
            buffer.advance(2);
            return Ok(Some(Step::End));
        }
        if count as usize != self.columns.len() {
            return Err(format!(
                "a row of {count} fields where {} columns were expected",
                self.columns.len()
            ));
        }
        // Find the row's end before decoding, so a partial row is left for the next chunk.
        let mut at = 2;
        let mut fields = Vec::with_capacity(self.columns.len());
        for _ in 0..count {
            let Some(len) = buffer.get(at..at + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
            at += 4;
            if len < 0 {
                fields.push(None);
                continue;
            }
            let end = at + len as usize;
            if buffer.len() < end {
                return Ok(None);
            }
            fields.push(Some(at..end));
            at = end;
        }
        for ((builder, decode), field) in self.columns.iter_mut().zip(self.decoders).zip(fields) {
            match field {
                None => builder.null(),
                Some(range) => {
                    builder.value(&buffer[range], matches!(decode, Decode::NumericDouble))?
                }
            }
        }
        buffer.advance(at);
        self.rows += 1;
        Ok(Some(Step::Row))
    }

    fn finish(&mut self) -> Result<RecordBatch, String> {
        let arrays = self
            .columns
            .iter_mut()
            .map(Builder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let rows = std::mem::take(&mut self.rows);
        let options = deltalake::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        if arrays.is_empty() {
            return RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
                .map_err(|e| e.to_string());
        }
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_at_their_scale() {
        assert_eq!(parse_decimal("-123.45", 2), Some(-12345));
        assert_eq!(parse_decimal("7", 2), Some(700));
        assert_eq!(parse_decimal("0.5", 3), Some(500));
        assert_eq!(parse_decimal("NaN", 2), None);
    }

    #[test]
    fn numeric_precision_comes_from_the_type_modifier() {
        let column = |typmod| PgColumn {
            name: "amount".into(),
            type_name: "numeric".into(),
            type_oid: 1700,
            typmod,
        };
        // numeric(12,2): ((12 << 16) | 2) + 4
        assert_eq!(suite_type(&column((12 << 16 | 2) + 4)), "decimal(12,2)");
        assert_eq!(suite_type(&column(-1)), "double");
    }
}
