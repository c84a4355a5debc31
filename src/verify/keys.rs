//! Counting keys in the one scan: for a key made of one fixed-width column of at most eight
//! bytes (integers, dates, timestamps), an aggregate counts rows and distinct values. When the
//! log's statistics bound an integer key to a range, one bit per possible value marks the values
//! seen (values outside the range, which a damaged log could allow, are kept aside and counted apart);
//! otherwise the raw values, eight bytes per row, are spread by a hash of each value over
//! [`BUCKETS`] buckets, and each bucket — small enough for the processor's cache — is counted on
//! its own in a hash table, the buckets on every core: no sort of the whole column. Keys of strings,
//! decimals or several columns are counted alike by a second aggregate over a 128-bit hash of
//! each key (16 bytes per row whatever the key's width): equal keys hash alike, so a duplicate
//! is always found; two different keys would have to collide in 128 bits to be taken for one
//! (about 10^-23 at 10^8 keys). Key sets of other types (lists, maps, structs) are counted by a
//! `GROUP BY` of their own (see `plan::key_set_sql`).

use deltalake::arrow::array::{Array, ArrayRef, AsArray, BinaryArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::Int64Type;
use deltalake::arrow::datatypes::{DataType, Field, FieldRef};
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::{Result, ScalarValue, exec_err};
use deltalake::datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use deltalake::datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::fingerprint::{decode_words, encode_words};
use super::plan::{ident, integer_argument};

/// The SQL name of the aggregate over one fixed-width column.
pub(crate) const NAME: &str = "restore_drill_key_counts";

/// The SQL name of the aggregate over hashed keys of any width.
pub(crate) const HASHED: &str = "restore_drill_key_hashes";

/// The Delta types whose values a hashed key is made of.
fn hashable(delta_type: &str) -> bool {
    matches!(
        delta_type,
        "string"
            | "binary"
            | "boolean"
            | "byte"
            | "short"
            | "integer"
            | "long"
            | "float"
            | "double"
            | "date"
            | "timestamp"
            | "timestamp_ntz"
    ) || delta_type.starts_with("decimal(")
}

/// The aggregate expression counting a key set's rows and distinct keys in the one scan, or
/// `None` when it is counted by a `GROUP BY` of its own.
pub(crate) fn expr_for(columns: &[String], context: &super::Context) -> Option<String> {
    if fits(columns, &context.columns) {
        return Some(expr(&columns[0], context.key_range(&columns[0])));
    }
    let typed = |c: &String| {
        context
            .columns
            .iter()
            .find(|(n, _)| n == c)
            .is_some_and(|(_, t)| hashable(t))
    };
    (!columns.is_empty() && columns.iter().all(typed)).then(|| {
        let args: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        format!("{HASHED}({})", args.join(", "))
    })
}

/// Whether a key set can be counted by the aggregate: one column whose Delta type is a
/// fixed-width value of at most eight bytes.
pub(crate) fn fits(columns: &[String], types: &[(String, String)]) -> bool {
    let [column] = columns else {
        return false;
    };
    types.iter().any(|(n, t)| {
        n == column
            && matches!(
                t.as_str(),
                "byte" | "short" | "integer" | "long" | "date" | "timestamp" | "timestamp_ntz"
            )
    })
}

/// The largest value range counted with a bitmap (64 MiB of bits).
pub(crate) const MAX_BITMAP_RANGE: u64 = 1 << 29;

/// The aggregate expression over a one-column key, with the key's range from the log's
/// statistics when it is known and small enough for a bitmap.
pub fn expr(column: &str, range: Option<(i64, i64)>) -> String {
    match range {
        Some((min, max))
            if max >= min && (max as i128 - min as i128) < MAX_BITMAP_RANGE as i128 =>
        {
            format!("{NAME}({}, {min}, {max})", ident(column))
        }
        _ => format!("{NAME}({})", ident(column)),
    }
}

/// Reads the aggregate's value: (rows with a key, distinct keys).
pub(crate) fn decode(value: &ScalarValue) -> Option<(u64, u64)> {
    let ScalarValue::Binary(Some(bytes)) = value else {
        return None;
    };
    let words = decode_words(bytes)?;
    match words.as_slice() {
        [rows, distinct] => Some((*rows, *distinct)),
        _ => None,
    }
}

/// The aggregate, to register with a session.
pub(crate) fn udaf() -> AggregateUDF {
    AggregateUDF::from(KeyCounts {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// The aggregate over hashed keys, to register with a session.
pub(crate) fn hashed_udaf() -> AggregateUDF {
    AggregateUDF::from(KeyHashes {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyCounts {
    signature: Signature,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyHashes {
    signature: Signature,
}

impl AggregateUDFImpl for KeyHashes {
    fn name(&self) -> &str {
        HASHED
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let fields: Vec<SortField> = args
            .expr_fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Box::new(HashAccumulator {
            rows: 0,
            converter: RowConverter::new(fields)?,
            buckets: vec![Vec::new(); BUCKETS],
        }))
    }

    fn state_fields(&self, _: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Field::new("keys", DataType::Binary, true).into()])
    }
}

/// Rows with a key and the 128-bit hashes of their keys, by bucket (the hash's top byte).
#[derive(Debug)]
struct HashAccumulator {
    rows: u64,
    converter: RowConverter,
    buckets: Vec<Vec<u128>>,
}

impl HashAccumulator {
    fn add(&mut self, hash: u128) {
        self.buckets[(hash >> 120) as usize].push(hash);
        self.rows += 1;
    }
}

impl Accumulator for HashAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let hash = |bytes: &[u8]| twox_hash::XxHash3_128::oneshot(bytes);
        // One string column: its values' bytes; otherwise the keys' row encoding (equal keys
        // encode alike).
        if let [column] = values
            && matches!(
                column.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        {
            let mut add = |v: Option<&str>| {
                if let Some(v) = v {
                    self.add(hash(v.as_bytes()));
                }
            };
            match column.data_type() {
                DataType::Utf8 => column.as_string::<i32>().iter().for_each(&mut add),
                DataType::LargeUtf8 => column.as_string::<i64>().iter().for_each(&mut add),
                _ => column.as_string_view().iter().for_each(&mut add),
            }
            return Ok(());
        }
        let encoded = self.converter.convert_columns(values)?;
        let any_null = values.iter().any(|c| c.null_count() > 0);
        for (i, row) in encoded.iter().enumerate() {
            if !any_null || values.iter().all(|c| c.is_valid(i)) {
                self.add(hash(row.as_ref()));
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(binary) = states[0].as_any().downcast_ref::<BinaryArray>() else {
            return exec_err!("{HASHED}: unexpected state type {}", states[0].data_type());
        };
        for i in (0..binary.len()).filter(|i| binary.is_valid(*i)) {
            let words = decode_words(binary.value(i));
            let Some([rows, rest @ ..]) = words.as_deref() else {
                return exec_err!("{HASHED}: malformed partial state");
            };
            if merge_buckets(&mut self.buckets, rest).is_none() {
                return exec_err!("{HASHED}: malformed partial state");
            }
            self.rows += rows;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut words = vec![std::mem::take(&mut self.rows)];
        encode_buckets(&mut self.buckets, &mut words);
        Ok(vec![ScalarValue::Binary(Some(encode_words(&words)))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let distinct = count_buckets(&self.buckets);
        Ok(ScalarValue::Binary(Some(encode_words(&[
            self.rows, distinct,
        ]))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.converter.size()
            + self
                .buckets
                .iter()
                .map(|b| b.capacity() * 16)
                .sum::<usize>()
    }
}

impl AggregateUDFImpl for KeyCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let data_type = args.expr_fields[0].data_type();
        if !matches!(data_type.primitive_width(), Some(w) if w <= 8) {
            return exec_err!("{NAME} counts keys of at most eight bytes, not {data_type}");
        }
        let literal = |i: usize| integer_argument(&args, i);
        let mode = match (data_type.is_integer(), literal(1), literal(2)) {
            (true, Some(min), Some(max)) if max >= min => Mode::Bitmap {
                min,
                bits: vec![0; ((max - min) as u64 / 64 + 1) as usize],
                outside: Vec::new(),
            },
            _ => Mode::Buckets(vec![Vec::new(); BUCKETS]),
        };
        Ok(Box::new(KeyAccumulator {
            rows: 0,
            duplicates_seen: 0,
            mode,
        }))
    }

    fn state_fields(&self, _: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Field::new("keys", DataType::Binary, true).into()])
    }
}

/// How an accumulator remembers the keys it saw.
#[derive(Debug)]
enum Mode {
    /// One bit per value of `[min, min + 64 * bits.len())`; values outside kept aside.
    Bitmap {
        min: i64,
        bits: Vec<u64>,
        outside: Vec<u64>,
    },
    /// The raw values by bucket (a hash of the value chooses it): equal values share a bucket,
    /// so the distinct values are the sum of each bucket's. The final step appends the
    /// partitions' buckets bucket by bucket and counts each in a hash table of its own, the
    /// buckets spread over every core.
    Buckets(Vec<Vec<u64>>),
}

/// How many buckets spread the keys: at 10M keys, 40K (320 KiB) per bucket.
pub(crate) const BUCKETS: usize = 256;

/// The bucket of a key: the top bits of a multiplicative hash, so dense and scrambled keys
/// alike spread evenly.
fn bucket(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// A key a bucket's hash table holds: a value no key is taken as the mark of an empty slot
/// (that key itself is counted apart), and the slot a key starts probing at.
trait TableKey: Copy + Eq + Send {
    const EMPTY: Self;
    /// How many state words a key takes.
    const WORDS: usize;
    fn slot(self, bits: u32) -> usize;
    fn to_words(self, out: &mut Vec<u64>);
    fn from_words(words: &[u64]) -> Self;
}

impl TableKey for u64 {
    const EMPTY: u64 = u64::MAX;
    const WORDS: usize = 1;
    fn to_words(self, out: &mut Vec<u64>) {
        out.push(self);
    }
    fn from_words(words: &[u64]) -> Self {
        words[0]
    }
    fn slot(self, bits: u32) -> usize {
        // Another multiplier than the bucket's: its top bits are the same for the whole bucket.
        (self.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> (64 - bits)) as usize
    }
}

impl TableKey for u128 {
    const EMPTY: u128 = u128::MAX;
    const WORDS: usize = 2;
    fn to_words(self, out: &mut Vec<u64>) {
        out.extend([self as u64, (self >> 64) as u64]);
    }
    fn from_words(words: &[u64]) -> Self {
        (words[1] as u128) << 64 | words[0] as u128
    }
    fn slot(self, bits: u32) -> usize {
        // Already a hash; the bucket took the top byte.
        ((self as u64) >> (64 - bits)) as usize
    }
}

/// How many distinct keys a bucket holds, by inserting them into an open-addressing hash table
/// (linear probing, at most half full) that `table` lends: one pass, no sort.
fn distinct_in<T: TableKey>(keys: &[T], table: &mut Vec<T>) -> u64 {
    let bits = (keys.len() * 2)
        .next_power_of_two()
        .max(16)
        .trailing_zeros();
    let mask = (1usize << bits) - 1;
    table.clear();
    table.resize(1 << bits, T::EMPTY);
    let mut distinct = 0;
    let mut empty_key_seen = false;
    for &key in keys {
        if key == T::EMPTY {
            empty_key_seen = true;
            continue;
        }
        let mut at = key.slot(bits);
        loop {
            let held = table[at];
            if held == T::EMPTY {
                table[at] = key;
                distinct += 1;
                break;
            }
            if held == key {
                break;
            }
            at = (at + 1) & mask;
        }
    }
    distinct + u64::from(empty_key_seen)
}

/// The distinct keys of all buckets (equal keys share a bucket), counted on every core.
fn count_buckets<T: TableKey + Sync>(buckets: &[Vec<T>]) -> u64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = buckets.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let counting: Vec<_> = buckets
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut table = Vec::new();
                    chunk
                        .iter()
                        .map(|b| distinct_in(b, &mut table))
                        .sum::<u64>()
                })
            })
            .collect();
        counting
            .into_iter()
            .map(|c| c.join().expect("counting keys panicked"))
            .sum()
    })
}

/// Appends the buckets to a partial state's `words` — each bucket's length, then every key — and
/// empties them.
fn encode_buckets<T: TableKey>(buckets: &mut [Vec<T>], words: &mut Vec<u64>) {
    words.extend(buckets.iter().map(|b| b.len() as u64));
    for bucket in buckets.iter_mut() {
        for key in std::mem::take(bucket) {
            key.to_words(words);
        }
    }
}

/// Appends the buckets a partial state holds (`words` after its header) to `buckets`, bucket by
/// bucket; `None` when the state is malformed.
fn merge_buckets<T: TableKey>(buckets: &mut [Vec<T>], words: &[u64]) -> Option<()> {
    let (lengths, mut keys) = words.split_at_checked(buckets.len())?;
    for (bucket, length) in buckets.iter_mut().zip(lengths) {
        let (run, after) = keys.split_at_checked(*length as usize * T::WORDS)?;
        bucket.extend(run.chunks_exact(T::WORDS).map(T::from_words));
        keys = after;
    }
    Some(())
}

#[derive(Debug)]
struct KeyAccumulator {
    rows: u64,
    /// Bitmap mode: values found already set on insert (duplicates within this accumulator).
    duplicates_seen: u64,
    mode: Mode,
}

const BITMAP: u64 = 1;
const BUCKETED: u64 = 2;

impl Accumulator for KeyAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let column = &values[0];
        self.rows += (column.len() - column.null_count()) as u64;
        match &mut self.mode {
            Mode::Bitmap { min, bits, outside } => {
                let ints = cast(column, &DataType::Int64)?;
                let ints = ints.as_primitive::<Int64Type>();
                let span = bits.len() as u64 * 64;
                for v in ints.iter().flatten() {
                    let offset = v.wrapping_sub(*min) as u64;
                    if v >= *min && offset < span {
                        let (word, bit) = ((offset / 64) as usize, offset % 64);
                        if bits[word] & (1 << bit) != 0 {
                            self.duplicates_seen += 1;
                        }
                        bits[word] |= 1 << bit;
                    } else {
                        outside.push(v as u64);
                    }
                }
            }
            Mode::Buckets(buckets) => {
                let Some(width) = column.data_type().primitive_width() else {
                    return exec_err!("{NAME}: unexpected key type {}", column.data_type());
                };
                let data = column.to_data();
                let bytes = &data.buffers()[0].as_slice()[data.offset() * width..];
                let nulls = column.null_count() > 0;
                for (i, chunk) in bytes.chunks_exact(width).take(column.len()).enumerate() {
                    if !nulls || column.is_valid(i) {
                        let mut padded = [0u8; 8];
                        padded[..width].copy_from_slice(chunk);
                        let key = u64::from_le_bytes(padded);
                        buckets[bucket(key)].push(key);
                    }
                }
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(binary) = states[0].as_any().downcast_ref::<BinaryArray>() else {
            return exec_err!("{NAME}: unexpected state type {}", states[0].data_type());
        };
        for i in 0..binary.len() {
            if binary.is_null(i) {
                continue;
            }
            let Some(words) = decode_words(binary.value(i)) else {
                return exec_err!("{NAME}: malformed partial state");
            };
            match (&mut self.mode, words.as_slice()) {
                (Mode::Bitmap { bits, outside, .. }, [BITMAP, rows, n, rest @ ..])
                    if *n as usize == bits.len() && rest.len() >= bits.len() =>
                {
                    self.rows += rows;
                    for (a, b) in bits.iter_mut().zip(rest) {
                        *a |= b;
                    }
                    outside.extend_from_slice(&rest[bits.len()..]);
                }
                (Mode::Buckets(buckets), [BUCKETED, rows, rest @ ..]) => {
                    if merge_buckets(buckets, rest).is_none() {
                        return exec_err!("{NAME}: malformed partial state");
                    }
                    self.rows += rows;
                }
                _ => return exec_err!("{NAME}: partial state of another kind"),
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let rows = std::mem::take(&mut self.rows);
        let words: Vec<u64> = match &mut self.mode {
            Mode::Bitmap { bits, outside, .. } => [BITMAP, rows, bits.len() as u64]
                .into_iter()
                .chain(bits.iter().copied())
                .chain(std::mem::take(outside))
                .collect(),
            Mode::Buckets(buckets) => {
                let mut words = vec![BUCKETED, rows];
                encode_buckets(buckets, &mut words);
                words
            }
        };
        Ok(vec![ScalarValue::Binary(Some(encode_words(&words)))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let distinct = match &mut self.mode {
            Mode::Bitmap { bits, outside, .. } => {
                let set: u64 = bits.iter().map(|w| w.count_ones() as u64).sum();
                set + distinct_in(outside, &mut Vec::new())
            }
            Mode::Buckets(buckets) => count_buckets(buckets),
        };
        Ok(ScalarValue::Binary(Some(encode_words(&[
            self.rows, distinct,
        ]))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + match &self.mode {
                Mode::Bitmap { bits, outside, .. } => (bits.capacity() + outside.capacity()) * 8,
                Mode::Buckets(buckets) => buckets.iter().map(|b| b.capacity() * 8).sum::<usize>(),
            }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, RecordBatch};
    use deltalake::arrow::datatypes::Schema;
    use deltalake::datafusion::datasource::MemTable;

    use super::*;
    use crate::verify::scan;

    async fn counts(partitions: Vec<Vec<Option<i64>>>) -> (u64, u64) {
        let sorted = counts_with(partitions.clone(), None).await;
        let bitmap = counts_with(partitions, Some((-3, 1))).await;
        assert_eq!(sorted, bitmap, "both ways count alike");
        sorted
    }

    async fn counts_with(
        partitions: Vec<Vec<Option<i64>>>,
        range: Option<(i64, i64)>,
    ) -> (u64, u64) {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let batches: Vec<Vec<RecordBatch>> = partitions
            .into_iter()
            .map(|p| {
                vec![
                    RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(p))])
                        .unwrap(),
                ]
            })
            .collect();
        let ctx = scan::session();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, batches).unwrap()))
            .unwrap();
        let out = ctx
            .sql(&format!("SELECT {} FROM t", expr("k", range)))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        decode(&ScalarValue::try_from_array(out[0].column(0), 0).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn counts_rows_and_distinct_keys_across_partitions_without_nulls() {
        assert_eq!(
            counts(vec![
                vec![Some(1), Some(2), None],
                vec![Some(2), Some(-3), Some(1)]
            ])
            .await,
            (5, 3)
        );
        assert_eq!(counts(vec![vec![None]]).await, (0, 0));
        // Values outside the range the log claims are still counted.
        assert_eq!(
            counts(vec![
                vec![Some(7), Some(7), Some(1)],
                vec![Some(-9), Some(1)]
            ])
            .await,
            (5, 3)
        );
    }

    #[tokio::test]
    async fn scrambled_keys_spread_over_buckets_count_exactly_across_partitions() {
        // Keys far apart (no bitmap), repeated across and within partitions, nulls among them.
        let key = |i: i64| Some(i.wrapping_mul(0x5851_F42D_4C95_7F2D));
        let first: Vec<Option<i64>> = (0..50_000).map(key).chain([None, key(7)]).collect();
        let second: Vec<Option<i64>> = (40_000..60_000).map(key).chain([key(-1), None]).collect();
        let (rows, distinct) = counts_with(vec![first, second], None).await;
        assert_eq!(rows, 50_001 + 20_001);
        assert_eq!(distinct, 60_001);
    }

    #[test]
    fn a_bucket_counts_its_distinct_keys_the_empty_mark_included() {
        let mut table = Vec::new();
        let keys: Vec<u64> = [0, u64::MAX, 5, 5, u64::MAX, 0, 7]
            .into_iter()
            .chain((0..1000).map(|i| i * 64))
            .collect();
        // 0, MAX, 5, 7 and the multiples of 64 other than 0.
        assert_eq!(distinct_in(&keys, &mut table), 4 + 999);
        let hashes: Vec<u128> = vec![u128::MAX, 1, 1 << 100, 1, u128::MAX];
        assert_eq!(distinct_in(&hashes, &mut Vec::new()), 3);
        assert_eq!(distinct_in::<u64>(&[], &mut table), 0);
    }

    #[tokio::test]
    async fn hashed_keys_of_strings_and_of_several_columns_count_as_a_group_by_does() {
        use deltalake::arrow::array::StringArray;
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let part = |names: Vec<Option<&str>>, ns: Vec<Option<i64>>| {
            vec![
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(names)),
                        Arc::new(Int64Array::from(ns)),
                    ],
                )
                .unwrap(),
            ]
        };
        let many: Vec<String> = (0..30_000).map(|i| format!("key-{}", i % 20_000)).collect();
        let partitions = vec![
            part(
                many.iter()
                    .map(|s| Some(s.as_str()))
                    .chain([None, Some("a")])
                    .collect(),
                (0..30_000)
                    .map(|i| Some(i % 3))
                    .chain([Some(1), None])
                    .collect(),
            ),
            part(
                vec![Some("a"), Some("b"), Some("key-5")],
                vec![Some(1), Some(1), None],
            ),
        ];
        let ctx = scan::session();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, partitions).unwrap()),
        )
        .unwrap();
        let context = crate::verify::Context {
            columns: vec![
                ("name".into(), "string".into()),
                ("n".into(), "long".into()),
            ],
            ..Default::default()
        };
        for key in [vec!["name".to_string()], vec!["name".into(), "n".into()]] {
            let expr = expr_for(&key, &context).unwrap();
            assert!(expr.starts_with(HASHED), "{expr}");
            let ours = ctx.sql(&format!("SELECT {expr} FROM t")).await.unwrap();
            let ours = ours.collect().await.unwrap();
            let ours = decode(&ScalarValue::try_from_array(ours[0].column(0), 0).unwrap());
            let present: Vec<String> = key.iter().map(|c| format!("{c} IS NOT NULL")).collect();
            let sql = format!(
                "SELECT sum(c), count(*) FROM (SELECT count(*) AS c FROM t WHERE {} GROUP BY {})",
                present.join(" AND "),
                key.join(", ")
            );
            let theirs = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let value = |i| {
                crate::verify::values::as_f64(
                    &ScalarValue::try_from_array(theirs[0].column(i), 0).unwrap(),
                )
                .unwrap() as u64
            };
            assert_eq!(ours, Some((value(0), value(1))), "{key:?}");
            if key.len() == 1 {
                // 30,000 names, "a", then "a", "b" and "key-5"; 20,000 of them distinct, "a", "b".
                assert_eq!(ours, Some((30_004, 20_002)));
            }
        }
    }

    #[test]
    fn fits_one_narrow_fixed_width_column() {
        let types = vec![
            ("id".to_string(), "long".to_string()),
            ("name".to_string(), "string".to_string()),
        ];
        assert!(fits(&["id".into()], &types));
        assert!(!fits(&["name".into()], &types));
        assert!(!fits(&["id".into(), "name".into()], &types));
    }
}
