//! The keyed sample diff: the same rows — chosen by a hash of the key, so both sides pick the
//! same keys and the filter applies at both scans — are read from the restored table and from
//! the source, joined on the key, and counted as missing, extra or changed, with examples.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::StructArray;
use deltalake::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use deltalake::arrow::compute::{concat_batches, filter_record_batch};
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::common::exec_err;
use deltalake::datafusion::common::utils::SingleRowListArrayBuilder;
use deltalake::datafusion::common::{Result, ScalarValue};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use deltalake::datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::{Map, Value};

use super::fingerprint::{ValueHasher, avalanche, combine};
use super::plan::{ident, integer_argument};

/// The SQL name of the key hash function.
pub(crate) const KEY_HASH: &str = "restore_drill_key_hash";
/// How many examples a diff keeps.
pub(crate) const EXAMPLES: usize = 20;
/// What a redacted value is shown as.
pub(crate) const REDACTED: &str = "***";
/// The sample is chosen in parts per million of the key-hash space.
const PARTS: i64 = 1_000_000;

/// How large the sample is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleSize {
    /// A fraction of the keys, from 0 (exclusive) to 1.
    Fraction(f64),
    /// About this many rows (turned into a fraction of the restored row count).
    Rows(u64),
}

/// What to compare with when the source's version at the snapshot is no longer readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Compare nothing; say so.
    None,
    /// Every sampled restored row must exist unchanged in the current source (right for
    /// append-only fact tables).
    AppendOnly,
}

/// A job's `compare` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareSpec {
    pub key: Vec<String>,
    pub sample: SampleSize,
    pub fallback: Fallback,
    /// Absolute tolerances of numeric columns; other columns compare exactly.
    pub tolerance: BTreeMap<String, f64>,
    /// The table compared, for a job whose snapshots hold a database.
    pub table: Option<String>,
    /// A column holding when each row last changed (a live database): source rows changed
    /// after the snapshot's time are not compared.
    pub as_of: Option<String>,
}

impl CompareSpec {
    /// The fraction of keys to sample, given the table's row count as the log records it
    /// (when unknown, `sample_rows` is taken as a share of a million rows).
    pub(crate) fn fraction(&self, rows: Option<u64>) -> f64 {
        match (self.sample, rows) {
            (SampleSize::Fraction(f), _) => f.clamp(0.0, 1.0),
            (SampleSize::Rows(n), Some(rows)) if rows > 0 => (n as f64 / rows as f64).min(1.0),
            (SampleSize::Rows(_), Some(_)) => 1.0,
            (SampleSize::Rows(n), None) => (n as f64 / 1e6).min(1.0),
        }
    }
}

/// Whether rows on the source side that the restore lacks count as mismatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffMode {
    /// Against the source at the snapshot's version: every difference counts.
    Exact,
    /// Against the current source: only restored rows absent from it (`extra`) or changed
    /// count; source rows added since the snapshot (`missing`) do not.
    AppendOnly,
    /// Against a live source at the snapshot's time, by the `as_of` column: source rows that
    /// changed after it are not compared (`later`); rows the source no longer has (`extra`)
    /// were deleted since and are counted apart; rows missing from the restore and rows
    /// changed in it count.
    AsOf,
}

/// One example row of a diff.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// `missing` (in the source, not restored), `extra` (restored, not in the source) or `changed`.
    pub kind: String,
    pub key: Map<String, Value>,
    /// The columns whose values differ (for `changed`).
    pub differing: Vec<String>,
    pub restored: Option<Map<String, Value>>,
    pub source: Option<Map<String, Value>>,
}

/// What the sample diff found.
#[derive(Debug, Clone, Serialize)]
pub struct SampleDiff {
    pub mode: DiffMode,
    pub key: Vec<String>,
    pub fraction: f64,
    pub restored_rows: u64,
    pub source_rows: u64,
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
    /// (`as_of` diffs) sampled rows the source changed after the snapshot's time: not compared.
    pub later: u64,
    pub changed_by_column: BTreeMap<String, u64>,
    pub examples: Vec<Example>,
}

impl SampleDiff {
    /// Rows that count as mismatches in this mode.
    pub fn mismatched(&self) -> u64 {
        self.mode.mismatched(self.missing, self.extra, self.changed)
    }
}

impl DiffMode {
    /// Rows that count as mismatches in this mode, of those missing, extra and changed.
    pub fn mismatched(self, missing: u64, extra: u64, changed: u64) -> u64 {
        match self {
            DiffMode::Exact => missing + extra + changed,
            DiffMode::AppendOnly => extra + changed,
            DiffMode::AsOf => missing + changed,
        }
    }
}

/// The sample filter: the same expression on both sides.
pub fn filter(key: &[String], fraction: f64) -> String {
    let present: Vec<String> = key
        .iter()
        .map(|k| format!("{} IS NOT NULL", ident(k)))
        .collect();
    let keys: Vec<String> = key.iter().map(|k| ident(k)).collect();
    let threshold = threshold(fraction);
    format!(
        "{} AND {KEY_HASH}({}) % {PARTS} < {threshold}",
        present.join(" AND "),
        keys.join(", ")
    )
}

/// The SQL name of the aggregate that collects the sampled rows.
pub(crate) const COLLECT: &str = "restore_drill_sample";

/// Collects a table's sampled rows during its one scan, so the diff needs no second read.
#[derive(Debug, Clone)]
pub struct SampleCollector {
    /// The aggregate expression: `restore_drill_sample(threshold, key count, keys…, others…)`.
    pub expr: String,
    /// The collected columns, in the aggregate's argument order.
    names: Vec<String>,
}

impl SampleCollector {
    pub fn new(columns: &[String], key: &[String], fraction: f64) -> Self {
        let names: Vec<String> = key
            .iter()
            .cloned()
            .chain(columns.iter().filter(|c| !key.contains(c)).cloned())
            .collect();
        let mut args = vec![threshold(fraction).to_string(), key.len().to_string()];
        args.extend(names.iter().map(|c| ident(c)));
        Self {
            expr: format!("{COLLECT}({})", args.join(", ")),
            names,
        }
    }

    /// The rows collected by a scan that ran `expr`.
    pub fn rows(&self, values: &super::plan::ScanValues) -> Option<RecordBatch> {
        let ScalarValue::List(list) = values.get(&self.expr)? else {
            return None;
        };
        let rows = list.value(0);
        let rows = rows.as_struct_opt()?;
        let fields: Vec<Field> = rows
            .fields()
            .iter()
            .zip(&self.names)
            .map(|(f, name)| Field::new(name, f.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), rows.columns().to_vec()).ok()
    }
}

fn threshold(fraction: f64) -> i64 {
    (fraction * PARTS as f64).ceil() as i64
}

/// The key hash of every row: a non-negative 63-bit hash of the key columns' values.
fn key_hashes(keys: &[ArrayRef], rows: usize) -> Result<Vec<i64>> {
    let mut hashes = vec![0u64; rows];
    for array in keys {
        let hasher = ValueHasher::new(array.data_type())?;
        for (row, h) in hashes.iter_mut().zip(hasher.hashes(array)?) {
            *row = combine(*row, h);
        }
    }
    Ok(hashes
        .into_iter()
        .map(|h| (avalanche(h) >> 1) as i64)
        .collect())
}

/// The sampling aggregate, to register with a session.
pub(crate) fn collect_udaf() -> AggregateUDF {
    AggregateUDF::from(Collect {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Collect {
    signature: Signature,
}

/// The struct of collected rows: positional field names, every field nullable.
fn collected_type(arg_types: &[DataType]) -> DataType {
    let fields: Vec<Field> = arg_types
        .iter()
        .skip(2)
        .enumerate()
        .map(|(i, t)| Field::new(format!("c{i}"), t.clone(), true))
        .collect();
    DataType::Struct(fields.into())
}

impl AggregateUDFImpl for Collect {
    fn name(&self) -> &str {
        COLLECT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            collected_type(arg_types),
            true,
        ))))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let literal = |i: usize| integer_argument(&args, i);
        let (Some(threshold), Some(keys)) = (literal(0), literal(1)) else {
            return exec_err!("{COLLECT}: the threshold and the key count must be literals");
        };
        let types: Vec<DataType> = args
            .expr_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let DataType::Struct(fields) = collected_type(&types) else {
            unreachable!("collected_type returns a struct")
        };
        Ok(Box::new(CollectAccumulator {
            threshold,
            keys: keys.max(0) as usize,
            schema: Arc::new(Schema::new(fields)),
            pieces: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Field::new("rows", args.return_field.data_type().clone(), true).into(),
        ])
    }
}

#[derive(Debug)]
struct CollectAccumulator {
    threshold: i64,
    keys: usize,
    schema: SchemaRef,
    pieces: Vec<RecordBatch>,
}

impl CollectAccumulator {
    fn collected(&self) -> Result<ScalarValue> {
        let batch = concat_batches(&self.schema, &self.pieces)?;
        let rows: ArrayRef = Arc::new(StructArray::from(batch));
        Ok(SingleRowListArrayBuilder::new(rows).build_list_scalar())
    }
}

impl Accumulator for CollectAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns = &values[2..];
        let rows = columns.first().map_or(0, |c| c.len());
        let keys = &columns[..self.keys.min(columns.len())];
        let hashes = key_hashes(keys, rows)?;
        let mask: BooleanArray = (0..rows)
            .map(|i| Some(keys.iter().all(|k| k.is_valid(i)) && hashes[i] % PARTS < self.threshold))
            .collect();
        if mask.true_count() == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns.to_vec())?;
        self.pieces.push(filter_record_batch(&batch, &mask)?);
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(lists) = states[0].as_list_opt::<i32>() else {
            return exec_err!("{COLLECT}: unexpected state type {}", states[0].data_type());
        };
        for i in 0..lists.len() {
            if lists.is_valid(i)
                && let Some(rows) = lists.value(i).as_struct_opt()
            {
                self.pieces.push(RecordBatch::try_new(
                    self.schema.clone(),
                    rows.columns().to_vec(),
                )?);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.collected()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.collected()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .pieces
                .iter()
                .map(|p| p.get_array_memory_size())
                .sum::<usize>()
    }
}

const SIDE: &str = "\"__restore_drill_side\"";

/// The SQL of a diff between tables `restored` and `source` (registered names).
pub struct DiffQueries {
    pub counts: String,
    pub examples: String,
}

pub fn queries(
    spec: &CompareSpec,
    columns: &[String],
    fraction: f64,
    mode: DiffMode,
    restored: &str,
    source: &str,
) -> DiffQueries {
    build(spec, columns, fraction, mode, None, restored, source)
}

/// Whether a row's `as_of` is later than `cutoff` (Unix seconds): it changed after then.
pub fn changed_after(as_of: &str, cutoff: f64) -> String {
    format!("coalesce(to_unixtime({}) > {cutoff}, false)", ident(as_of))
}

/// The diff against a live source at the snapshot's time (`cutoff`, Unix seconds): a source
/// row whose `as_of` column is later was changed after the snapshot and is not compared.
pub fn queries_as_of(
    spec: &CompareSpec,
    as_of: &str,
    cutoff: f64,
    columns: &[String],
    fraction: f64,
    restored: &str,
    source: &str,
) -> DiffQueries {
    let later = changed_after(as_of, cutoff);
    build(
        spec,
        columns,
        fraction,
        DiffMode::AsOf,
        Some(later),
        restored,
        source,
    )
}

const LATER: &str = "\"__restore_drill_later\"";

fn build(
    spec: &CompareSpec,
    columns: &[String],
    fraction: f64,
    mode: DiffMode,
    later: Option<String>,
    restored: &str,
    source: &str,
) -> DiffQueries {
    let filter = filter(&spec.key, fraction);
    let list: Vec<String> = spec.key.iter().chain(columns).map(|c| ident(c)).collect();
    let list = list.join(", ");
    let source_later = later.as_deref().unwrap_or("false");
    let with = format!(
        "WITH r AS (SELECT {list}, true AS {SIDE} FROM {restored} WHERE {filter}), \
         s AS (SELECT {list}, true AS {SIDE}, {source_later} AS {LATER} FROM {source} WHERE {filter})"
    );
    let on: Vec<String> = spec
        .key
        .iter()
        .map(|k| format!("r.{0} = s.{0}", ident(k)))
        .collect();
    let from = format!("FROM r FULL OUTER JOIN s ON {}", on.join(" AND "));
    let both = format!("r.{SIDE} IS NOT NULL AND s.{SIDE} IS NOT NULL");
    // Source rows changed after the snapshot are neither missing nor changed.
    let current = format!("NOT coalesce(s.{LATER}, false)");
    let differs: Vec<String> = columns
        .iter()
        .map(|c| differs(c, spec.tolerance.get(c)))
        .collect();
    let any = if differs.is_empty() {
        "false".to_string()
    } else {
        format!("({})", differs.join(" OR "))
    };
    let mut select = vec![
        format!("count(r.{SIDE}) AS restored_rows"),
        format!("count(s.{SIDE}) AS source_rows"),
        format!("count(*) FILTER (WHERE r.{SIDE} IS NULL AND {current}) AS missing"),
        format!("count(*) FILTER (WHERE s.{SIDE} IS NULL) AS extra"),
        format!("count(*) FILTER (WHERE {both} AND {current} AND {any}) AS changed"),
    ];
    for (i, d) in differs.iter().enumerate() {
        select.push(format!(
            "count(*) FILTER (WHERE {both} AND {current} AND {d}) AS c{i}"
        ));
    }
    select.push(format!(
        "count(*) FILTER (WHERE s.{SIDE} IS NOT NULL AND NOT {current}) AS later"
    ));
    let counts = format!("{with} SELECT {} {from}", select.join(", "));

    let mut fields = vec![format!(
        "CASE WHEN r.{SIDE} IS NULL THEN 'missing' WHEN s.{SIDE} IS NULL THEN 'extra' ELSE 'changed' END AS \"kind\""
    )];
    for c in spec.key.iter().chain(columns) {
        fields.push(format!(
            "r.{0} AS \"r:{1}\"",
            ident(c),
            c.replace('"', "\"\"")
        ));
        fields.push(format!(
            "s.{0} AS \"s:{1}\"",
            ident(c),
            c.replace('"', "\"\"")
        ));
    }
    for (c, d) in columns.iter().zip(&differs) {
        fields.push(format!(
            "coalesce({d}, false) AS \"d:{}\"",
            c.replace('"', "\"\"")
        ));
    }
    let wanted = match mode {
        DiffMode::Exact => format!("r.{SIDE} IS NULL OR s.{SIDE} IS NULL OR {any}"),
        DiffMode::AppendOnly => format!("r.{SIDE} IS NOT NULL AND (s.{SIDE} IS NULL OR {any})"),
        DiffMode::AsOf => {
            format!("(r.{SIDE} IS NULL AND {current}) OR ({both} AND {current} AND {any})")
        }
    };
    let examples = format!(
        "{with} SELECT {} {from} WHERE {wanted} LIMIT {EXAMPLES}",
        fields.join(", ")
    );
    DiffQueries { counts, examples }
}

/// A SQL condition that is true when a column's values differ on the two sides.
fn differs(column: &str, tolerance: Option<&f64>) -> String {
    let c = ident(column);
    match tolerance {
        Some(t) => format!("((r.{c} IS NULL) <> (s.{c} IS NULL) OR abs(r.{c} - s.{c}) > {t})"),
        None => format!("(r.{c} IS DISTINCT FROM s.{c})"),
    }
}

/// Runs a diff in a session where both tables are registered.
pub async fn run(
    ctx: &SessionContext,
    spec: &CompareSpec,
    columns: &[String],
    fraction: f64,
    mode: DiffMode,
    redact: &[String],
    q: &DiffQueries,
) -> Result<SampleDiff> {
    let batches = ctx.sql(&q.counts).await?.collect().await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| DataFusionError::Internal("the diff returned no row".into()))?;
    let count = |i: usize| -> u64 {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map_or(0, |a| a.value(0).max(0) as u64)
    };
    let mut diff = SampleDiff {
        mode,
        key: spec.key.clone(),
        fraction,
        restored_rows: count(0),
        source_rows: count(1),
        missing: count(2),
        extra: count(3),
        changed: count(4),
        later: count(5 + columns.len()),
        changed_by_column: BTreeMap::new(),
        examples: Vec::new(),
    };
    for (i, c) in columns.iter().enumerate() {
        let n = count(5 + i);
        if n > 0 {
            diff.changed_by_column.insert(c.clone(), n);
        }
    }
    if diff.mismatched() > 0 {
        let rows = ctx.sql(&q.examples).await?.collect().await?;
        for batch in &rows {
            diff.examples
                .extend(examples(batch, &spec.key, columns, redact)?);
        }
    }
    Ok(diff)
}

fn examples(
    batch: &RecordBatch,
    key: &[String],
    columns: &[String],
    redact: &[String],
) -> Result<Vec<Example>> {
    let options = FormatOptions::default();
    let text = |name: &str, row: usize| -> Result<Option<String>> {
        let Some(array) = batch.column_by_name(name) else {
            return Ok(None);
        };
        if array.is_null(row) {
            return Ok(None);
        }
        let f = ArrayFormatter::try_new(array.as_ref(), &options)?;
        Ok(Some(f.value(row).to_string()))
    };
    let value = |column: &str, side: &str, row: usize| -> Result<Value> {
        Ok(match text(&format!("{side}:{column}"), row)? {
            _ if redact.iter().any(|r| r == column) => Value::String(REDACTED.into()),
            Some(v) => Value::String(v),
            None => Value::Null,
        })
    };
    let mut out = Vec::new();
    for row in 0..batch.num_rows() {
        let kind = text("kind", row)?.unwrap_or_default();
        let side = if kind == "missing" { "s" } else { "r" };
        let mut key_values = Map::new();
        for k in key {
            key_values.insert(k.clone(), value(k, side, row)?);
        }
        let differing: Vec<String> = columns
            .iter()
            .filter(|c| {
                batch
                    .column_by_name(&format!("d:{c}"))
                    .and_then(|a| {
                        a.as_any()
                            .downcast_ref::<BooleanArray>()
                            .map(|b| b.value(row))
                    })
                    .unwrap_or(false)
            })
            .cloned()
            .collect();
        let shown: Vec<&String> = if kind == "changed" {
            differing.iter().collect()
        } else {
            columns.iter().collect()
        };
        let side_values = |side: &str| -> Result<Map<String, Value>> {
            let mut m = Map::new();
            for c in &shown {
                m.insert((*c).clone(), value(c, side, row)?);
            }
            Ok(m)
        };
        out.push(Example {
            restored: (kind != "missing").then(|| side_values("r")).transpose()?,
            source: (kind != "extra").then(|| side_values("s")).transpose()?,
            kind,
            key: key_values,
            differing,
        });
    }
    Ok(out)
}

/// The key hash: a non-negative 63-bit hash of the key columns' values, the same for equal
/// keys on both sides.
pub(crate) fn key_hash_udf() -> ScalarUDF {
    ScalarUDF::from(KeyHash {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyHash {
    signature: Signature,
}

impl ScalarUDFImpl for KeyHash {
    fn name(&self) -> &str {
        KEY_HASH
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(&args.args)?;
        let hashes: Int64Array = key_hashes(&arrays, args.number_rows)?.into_iter().collect();
        Ok(ColumnarValue::Array(Arc::new(hashes)))
    }
}
