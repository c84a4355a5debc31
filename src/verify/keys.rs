//! Counting keys in the one scan: for a key made of one fixed-width column of at most eight
//! bytes (integers, dates, timestamps), an aggregate counts rows and distinct values. When the
//! log's statistics bound an integer key to a range, one bit per possible value marks the values
//! seen (values outside the range, which a damaged log could allow, are kept aside and sorted);
//! otherwise the raw values are collected and sorted, eight bytes per row. Other key sets are
//! counted by a `GROUP BY` of their own (see `plan::key_set_sql`).

use deltalake::arrow::array::{Array, ArrayRef, AsArray, BinaryArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::Int64Type;
use deltalake::arrow::datatypes::{DataType, Field, FieldRef};
use deltalake::datafusion::common::{Result, ScalarValue, exec_err};
use deltalake::datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use deltalake::datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::fingerprint::{decode_words, encode_words};
use super::plan::{ident, integer_argument};

/// The SQL name of the aggregate.
pub(crate) const NAME: &str = "restore_drill_key_counts";

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

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyCounts {
    signature: Signature,
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
            _ => Mode::Sort {
                keys: Vec::new(),
                runs: Vec::new(),
            },
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
    /// The raw values; each partition sorts its own when it hands over its state (in
    /// parallel), and the final step merges the sorted runs.
    Sort { keys: Vec<u64>, runs: Vec<Vec<u64>> },
}

#[derive(Debug)]
struct KeyAccumulator {
    rows: u64,
    /// Bitmap mode: values found already set on insert (duplicates within this accumulator).
    duplicates_seen: u64,
    mode: Mode,
}

const BITMAP: u64 = 1;
const SORTED: u64 = 0;

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
            Mode::Sort { keys, .. } => {
                let Some(width) = column.data_type().primitive_width() else {
                    return exec_err!("{NAME}: unexpected key type {}", column.data_type());
                };
                let data = column.to_data();
                let bytes = &data.buffers()[0].as_slice()[data.offset() * width..];
                keys.reserve(column.len() - column.null_count());
                for (i, chunk) in bytes.chunks_exact(width).take(column.len()).enumerate() {
                    if column.is_valid(i) {
                        let mut padded = [0u8; 8];
                        padded[..width].copy_from_slice(chunk);
                        keys.push(u64::from_le_bytes(padded));
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
                (Mode::Sort { runs, .. }, [SORTED, rows, rest @ ..]) => {
                    self.rows += rows;
                    runs.push(rest.to_vec());
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
            Mode::Sort { keys, .. } => {
                keys.sort_unstable();
                [SORTED, rows]
                    .into_iter()
                    .chain(std::mem::take(keys))
                    .collect()
            }
        };
        Ok(vec![ScalarValue::Binary(Some(encode_words(&words)))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let distinct = match &mut self.mode {
            Mode::Bitmap { bits, outside, .. } => {
                let set: u64 = bits.iter().map(|w| w.count_ones() as u64).sum();
                outside.sort_unstable();
                set + count_sorted_runs(std::slice::from_ref(outside)).1
            }
            Mode::Sort { keys, runs } => {
                let mut own = std::mem::take(keys);
                own.sort_unstable();
                runs.push(own);
                count_sorted_runs(runs).1
            }
        };
        Ok(ScalarValue::Binary(Some(encode_words(&[
            self.rows, distinct,
        ]))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + match &self.mode {
                Mode::Bitmap { bits, outside, .. } => (bits.capacity() + outside.capacity()) * 8,
                Mode::Sort { keys, runs } => {
                    keys.capacity() * 8 + runs.iter().map(|r| r.capacity() * 8).sum::<usize>()
                }
            }
    }
}

/// Values and distinct values of sorted runs, merged without copying them.
fn count_sorted_runs(runs: &[Vec<u64>]) -> (u64, u64) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let rows = runs.iter().map(|r| r.len() as u64).sum();
    let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_empty())
        .map(|(i, r)| Reverse((r[0], i, 0)))
        .collect();
    let mut distinct = 0;
    let mut previous = None;
    while let Some(Reverse((value, run, at))) = heap.pop() {
        if previous != Some(value) {
            distinct += 1;
            previous = Some(value);
        }
        if let Some(next) = runs[run].get(at + 1) {
            heap.push(Reverse((*next, run, at + 1)));
        }
    }
    (rows, distinct)
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

    #[test]
    fn sorted_runs_merge_into_rows_and_distinct_values() {
        assert_eq!(
            count_sorted_runs(&[vec![1, 2, 2, 5], vec![], vec![2, 3, 5]]),
            (7, 4)
        );
        assert_eq!(count_sorted_runs(&[]), (0, 0));
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
