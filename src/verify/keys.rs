//! Counting keys in the one scan: for a key made of one fixed-width column of at most eight
//! bytes (integers, dates, timestamps), an aggregate collects the raw values and counts
//! duplicates by sorting them, so its memory is what the key column itself takes (eight bytes
//! per row). Other key sets are counted by a `GROUP BY` of their own (see `scan::key_set_sql`).

use deltalake::arrow::array::{Array, ArrayRef, BinaryArray};
use deltalake::arrow::datatypes::{DataType, Field, FieldRef};
use deltalake::datafusion::common::{Result, ScalarValue, exec_err};
use deltalake::datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use deltalake::datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::fingerprint::{decode_words, encode_words};
use super::scan::ident;

/// The SQL name of the aggregate.
pub const NAME: &str = "restore_drill_key_counts";

/// Whether a key set can be counted by the aggregate: one column whose Delta type is a
/// fixed-width value of at most eight bytes.
pub fn fits(columns: &[String], types: &[(String, String)]) -> bool {
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

/// The aggregate expression over a one-column key.
pub fn expr(column: &str) -> String {
    format!("{NAME}({})", ident(column))
}

/// Reads the aggregate's value: (rows with a key, distinct keys).
pub fn decode(value: &ScalarValue) -> Option<(u64, u64)> {
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
pub fn udaf() -> AggregateUDF {
    AggregateUDF::from(KeyCounts {
        signature: Signature::any(1, Volatility::Immutable),
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
        match data_type.primitive_width() {
            Some(w) if w <= 8 => Ok(Box::new(KeyAccumulator {
                keys: Vec::new(),
                runs: Vec::new(),
            })),
            _ => exec_err!("{NAME} counts keys of at most eight bytes, not {data_type}"),
        }
    }

    fn state_fields(&self, _: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Field::new("keys", DataType::Binary, true).into()])
    }
}

/// Collects key values; each partition sorts its own values when it hands over its state
/// (in parallel), and the final step merges the sorted runs, counting distinct values.
#[derive(Debug)]
struct KeyAccumulator {
    keys: Vec<u64>,
    /// Sorted runs received from partial aggregates.
    runs: Vec<Vec<u64>>,
}

impl Accumulator for KeyAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let column = &values[0];
        let Some(width) = column.data_type().primitive_width() else {
            return exec_err!("{NAME}: unexpected key type {}", column.data_type());
        };
        let data = column.to_data();
        let bytes = &data.buffers()[0].as_slice()[data.offset() * width..];
        self.keys.reserve(column.len() - column.null_count());
        for (i, chunk) in bytes.chunks_exact(width).take(column.len()).enumerate() {
            if column.is_valid(i) {
                let mut padded = [0u8; 8];
                padded[..width].copy_from_slice(chunk);
                self.keys.push(u64::from_le_bytes(padded));
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(binary) = states[0].as_any().downcast_ref::<BinaryArray>() else {
            return exec_err!("{NAME}: unexpected state type {}", states[0].data_type());
        };
        for i in 0..binary.len() {
            if binary.is_valid(i) {
                match decode_words(binary.value(i)) {
                    Some(run) => self.runs.push(run),
                    None => return exec_err!("{NAME}: malformed partial state"),
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut keys = std::mem::take(&mut self.keys);
        keys.sort_unstable();
        Ok(vec![ScalarValue::Binary(Some(encode_words(&keys)))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut own = std::mem::take(&mut self.keys);
        own.sort_unstable();
        self.runs.push(own);
        let (rows, distinct) = count_sorted_runs(&self.runs);
        Ok(ScalarValue::Binary(Some(encode_words(&[rows, distinct]))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.keys.capacity() * 8
            + self.runs.iter().map(|r| r.capacity() * 8).sum::<usize>()
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
            .sql(&format!("SELECT {} FROM t", expr("k")))
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
