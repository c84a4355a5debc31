//! An order-independent fingerprint of a table's contents, computed by a DataFusion aggregate
//! in the same scan as the suite.
//!
//! Each value is hashed together with its type (see `ValueHasher`); a row's hash combines its
//! values' hashes in column order. The fingerprint is the row count, the wrapping sum of the row hashes, and per
//! column the wrapping sum of its value hashes. Sums do not depend on row order or file layout,
//! a missing or duplicated row changes both count and sum, and partial fingerprints of separate
//! file groups merge by adding them up.

use std::collections::BTreeMap;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, BinaryArray};
use deltalake::arrow::datatypes::{DataType, Field, FieldRef};
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::{Result, ScalarValue, exec_err};
use deltalake::datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use deltalake::datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use serde::Serialize;

use super::plan::ident;

/// The SQL name of the aggregate.
pub(crate) const NAME: &str = "restore_drill_fingerprint";

/// The fingerprint expression over the given columns, in name order.
pub fn expr(columns: &[String]) -> String {
    let mut sorted: Vec<&String> = columns.iter().collect();
    sorted.sort();
    let args: Vec<String> = sorted.iter().map(|c| ident(c)).collect();
    format!("{NAME}({})", args.join(", "))
}

/// A table's fingerprint, as the report shows it (hashes in hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct Fingerprint {
    pub rows: u64,
    pub table: String,
    pub columns: BTreeMap<String, String>,
}

impl Fingerprint {
    /// Reads the aggregate's value; `columns` are the names it was computed over.
    pub(crate) fn from_scalar(value: &ScalarValue, columns: &[String]) -> Option<Fingerprint> {
        let ScalarValue::Binary(Some(bytes)) = value else {
            return None;
        };
        let state = State::decode(bytes)?;
        let mut names: Vec<&String> = columns.iter().collect();
        names.sort();
        if names.len() != state.columns.len() {
            return None;
        }
        Some(Fingerprint {
            rows: state.rows,
            table: format!("{:016x}", state.table),
            columns: names
                .into_iter()
                .zip(&state.columns)
                .map(|(n, h)| (n.clone(), format!("{h:016x}")))
                .collect(),
        })
    }

    /// Names of the columns whose fingerprints differ, or are on one side only.
    pub(crate) fn differing_columns(&self, other: &Fingerprint) -> Vec<String> {
        let mut names: Vec<&String> = self.columns.keys().chain(other.columns.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter(|n| self.columns.get(*n) != other.columns.get(*n))
            .cloned()
            .collect()
    }
}

/// The aggregate's state: rows, the table sum and one sum per column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    rows: u64,
    table: u64,
    columns: Vec<u64>,
}

impl State {
    fn encode(&self) -> Vec<u8> {
        let words: Vec<u64> = [self.rows, self.table]
            .into_iter()
            .chain(self.columns.iter().copied())
            .collect();
        encode_words(&words)
    }

    fn decode(bytes: &[u8]) -> Option<State> {
        let words = decode_words(bytes).filter(|w| w.len() >= 2)?;
        Some(State {
            rows: words[0],
            table: words[1],
            columns: words[2..].to_vec(),
        })
    }

    /// Takes out a part merged in before: sums wrap, so a part subtracts as it adds.
    fn subtract(&mut self, part: &State) {
        self.rows = self.rows.wrapping_sub(part.rows);
        self.table = self.table.wrapping_sub(part.table);
        for (a, b) in self.columns.iter_mut().zip(&part.columns) {
            *a = a.wrapping_sub(*b);
        }
    }

    fn merge(&mut self, other: &State) {
        self.rows = self.rows.wrapping_add(other.rows);
        self.table = self.table.wrapping_add(other.table);
        if self.columns.is_empty() {
            self.columns = vec![0; other.columns.len()];
        }
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            *a = a.wrapping_add(*b);
        }
    }
}

/// The aggregate's value for a table whose part `out` (a fingerprint of some of its files) is
/// replaced by `into`: `whole - out + into`. With `out` the part of a restored table whose files
/// were not proven identical to the source's and `into` the source's files in their place, this
/// is the source's fingerprint without decoding the proven files a second time.
pub(crate) fn replace_part(
    whole: &ScalarValue,
    out: &ScalarValue,
    into: &ScalarValue,
) -> Option<ScalarValue> {
    let state = |value: &ScalarValue| match value {
        ScalarValue::Binary(Some(bytes)) => State::decode(bytes),
        _ => None,
    };
    let (mut merged, out, into) = (state(whole)?, state(out)?, state(into)?);
    merged.subtract(&out);
    merged.merge(&into);
    Some(ScalarValue::Binary(Some(merged.encode())))
}

/// Hashes the values of one column type. Fixed-width values are mixed from their bits and
/// strings and binaries hashed with XXH3-64, both seeded by the type, so equal values of the
/// same type hash alike and a re-typed column hashes differently; nested types go through
/// Arrow's row encoding.
#[derive(Debug)]
pub(crate) struct ValueHasher {
    seed: u64,
    null: u64,
    row_format: Option<RowConverter>,
}

impl ValueHasher {
    pub(crate) fn new(data_type: &DataType) -> Result<Self> {
        let seed = twox_hash::XxHash3_64::oneshot(data_type.to_string().as_bytes());
        let direct = data_type.primitive_width().is_some()
            || matches!(
                data_type,
                DataType::Boolean
                    | DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
            );
        let row_format = if direct {
            None
        } else {
            Some(RowConverter::new(vec![SortField::new(data_type.clone())])?)
        };
        Ok(Self {
            seed,
            null: avalanche(seed ^ 0x6e75_6c6c_6e75_6c6c),
            row_format,
        })
    }

    /// The hash of every value of the column, nulls included.
    pub(crate) fn hashes(&self, column: &ArrayRef) -> Result<Vec<u64>> {
        let seed = self.seed;
        let bytes = |v: Option<&[u8]>| {
            v.map_or(self.null, |b| {
                twox_hash::XxHash3_64::oneshot_with_seed(seed, b)
            })
        };
        if let Some(converter) = &self.row_format {
            let encoded = converter.convert_columns(std::slice::from_ref(column))?;
            return Ok((0..column.len())
                .map(|i| bytes(Some(encoded.row(i).as_ref())))
                .collect());
        }
        Ok(match column.data_type() {
            DataType::Utf8 => column
                .as_string::<i32>()
                .iter()
                .map(|v| bytes(v.map(str::as_bytes)))
                .collect(),
            DataType::LargeUtf8 => column
                .as_string::<i64>()
                .iter()
                .map(|v| bytes(v.map(str::as_bytes)))
                .collect(),
            DataType::Utf8View => column
                .as_string_view()
                .iter()
                .map(|v| bytes(v.map(str::as_bytes)))
                .collect(),
            DataType::Binary => column.as_binary::<i32>().iter().map(bytes).collect(),
            DataType::LargeBinary => column.as_binary::<i64>().iter().map(bytes).collect(),
            DataType::BinaryView => column.as_binary_view().iter().map(bytes).collect(),
            DataType::Boolean => column
                .as_boolean()
                .iter()
                .map(|v| v.map_or(self.null, |b| avalanche(seed ^ (b as u64 + 1))))
                .collect(),
            other => {
                let width = other.primitive_width().unwrap_or(8);
                let data = column.to_data();
                let start = data.offset() * width;
                let values = &data.buffers()[0].as_slice()[start..start + column.len() * width];
                let mut out: Vec<u64> = if width == 8 {
                    values
                        .chunks_exact(8)
                        .map(|c| {
                            avalanche(seed ^ u64::from_le_bytes(c.try_into().expect("eight bytes")))
                        })
                        .collect()
                } else if width == 16 {
                    values
                        .chunks_exact(16)
                        .map(|c| {
                            let lo = u64::from_le_bytes(c[..8].try_into().expect("eight bytes"));
                            let hi = u64::from_le_bytes(c[8..].try_into().expect("eight bytes"));
                            avalanche(avalanche(seed ^ lo) ^ hi)
                        })
                        .collect()
                } else {
                    values
                        .chunks_exact(width)
                        .map(|chunk| {
                            let mut h = seed;
                            for word in chunk.chunks(8) {
                                let mut padded = [0u8; 8];
                                padded[..word.len()].copy_from_slice(word);
                                h = avalanche(h ^ u64::from_le_bytes(padded));
                            }
                            h
                        })
                        .collect()
                };
                if column.null_count() > 0 {
                    for (i, h) in out.iter_mut().enumerate() {
                        if column.is_null(i) {
                            *h = self.null;
                        }
                    }
                }
                out
            }
        })
    }
}

/// Folds one value's hash into its row's running hash (order matters: columns in name order).
pub(crate) fn combine(row: u64, value: u64) -> u64 {
    (row ^ value)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

/// Unsigned 64-bit words as the bytes of a `Binary` aggregate value or state.
pub(crate) fn encode_words(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The words of `encode_words`, or `None` if the bytes are not whole words.
pub(crate) fn decode_words(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of eight")))
            .collect(),
    )
}

/// The SplitMix64 finaliser: spreads a combined row hash over all 64 bits.
pub(crate) fn avalanche(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FingerprintUdaf {
    signature: Signature,
}

/// The fingerprint aggregate, to register with a session.
pub(crate) fn udaf() -> AggregateUDF {
    AggregateUDF::from(FingerprintUdaf {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

impl AggregateUDFImpl for FingerprintUdaf {
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
        let hashers = args
            .expr_fields
            .iter()
            .map(|f| ValueHasher::new(f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(FingerprintAccumulator {
            state: State {
                rows: 0,
                table: 0,
                columns: vec![0; hashers.len()],
            },
            hashers,
        }))
    }

    fn state_fields(&self, _: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Field::new("fingerprint_state", DataType::Binary, true).into(),
        ])
    }
}

#[derive(Debug)]
struct FingerprintAccumulator {
    state: State,
    hashers: Vec<ValueHasher>,
}

impl Accumulator for FingerprintAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values.len() != self.hashers.len() {
            return exec_err!(
                "{NAME}: expected {} columns, got {}",
                self.hashers.len(),
                values.len()
            );
        }
        let rows = values.first().map_or(0, |v| v.len());
        let mut row_hashes = vec![0u64; rows];
        for ((column, hasher), sum) in values
            .iter()
            .zip(&self.hashers)
            .zip(self.state.columns.iter_mut())
        {
            for (row_hash, h) in row_hashes.iter_mut().zip(hasher.hashes(column)?) {
                *sum = sum.wrapping_add(h);
                *row_hash = combine(*row_hash, h);
            }
        }
        for h in row_hashes {
            self.state.table = self.state.table.wrapping_add(avalanche(h));
        }
        self.state.rows += rows as u64;
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(array) = states.first() else {
            return Ok(());
        };
        let Some(binary) = array.as_any().downcast_ref::<BinaryArray>() else {
            return exec_err!("{NAME}: unexpected state type {}", array.data_type());
        };
        for i in 0..binary.len() {
            if binary.is_null(i) {
                continue;
            }
            match State::decode(binary.value(i)) {
                Some(s) => self.state.merge(&s),
                None => return exec_err!("{NAME}: malformed partial state"),
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.state.encode()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(self.state.encode())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 8 * self.state.columns.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
    use deltalake::arrow::datatypes::Schema;
    use deltalake::datafusion::datasource::MemTable;

    use super::*;
    use crate::verify::scan;

    fn batch(ids: Vec<Option<i64>>, names: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    /// Fingerprints a table made of these partitions (each a list of batches).
    async fn fingerprint(partitions: Vec<Vec<RecordBatch>>) -> Fingerprint {
        let schema = partitions[0][0].schema();
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let ctx = scan::session();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, partitions).unwrap()),
        )
        .unwrap();
        let sql = format!("SELECT {} FROM t", expr(&columns));
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let value = ScalarValue::try_from_array(batches[0].column(0), 0).unwrap();
        Fingerprint::from_scalar(&value, &columns).unwrap()
    }

    fn base() -> RecordBatch {
        batch(
            vec![Some(1), Some(2), Some(3), Some(4)],
            vec![Some("a"), Some("b"), None, Some("d")],
        )
    }

    #[tokio::test]
    async fn independent_of_row_order_and_layout() {
        let one = fingerprint(vec![vec![base()]]).await;
        let shuffled = fingerprint(vec![
            vec![batch(vec![Some(4), Some(2)], vec![Some("d"), Some("b")])],
            vec![
                batch(vec![Some(3)], vec![None]),
                batch(vec![Some(1)], vec![Some("a")]),
            ],
        ])
        .await;
        assert_eq!(one, shuffled);
        assert_eq!(one.rows, 4);
    }

    #[tokio::test]
    async fn sensitive_to_a_changed_value_a_null_a_missing_or_duplicated_row() {
        let original = fingerprint(vec![vec![base()]]).await;
        let changed = fingerprint(vec![vec![batch(
            vec![Some(1), Some(2), Some(3), Some(4)],
            vec![Some("a"), Some("B"), None, Some("d")],
        )]])
        .await;
        assert_ne!(original.table, changed.table);
        assert_eq!(original.differing_columns(&changed), vec!["name"]);

        let null = fingerprint(vec![vec![batch(
            vec![Some(1), None, Some(3), Some(4)],
            vec![Some("a"), Some("b"), None, Some("d")],
        )]])
        .await;
        assert_eq!(original.differing_columns(&null), vec!["id"]);

        let missing = fingerprint(vec![vec![base().slice(0, 3)]]).await;
        assert_eq!(missing.rows, 3);
        assert_ne!(original.table, missing.table);

        let duplicated = fingerprint(vec![vec![base(), base().slice(1, 1)]]).await;
        assert_eq!(duplicated.rows, 5);
        assert_ne!(original.table, duplicated.table);
    }

    #[tokio::test]
    async fn values_swapped_between_rows_change_the_table_but_not_the_columns() {
        let original = fingerprint(vec![vec![base()]]).await;
        let swapped = fingerprint(vec![vec![batch(
            vec![Some(1), Some(2), Some(3), Some(4)],
            vec![Some("b"), Some("a"), None, Some("d")],
        )]])
        .await;
        assert_ne!(original.table, swapped.table);
        assert!(original.differing_columns(&swapped).is_empty());
    }

    #[tokio::test]
    async fn a_retyped_column_changes_the_fingerprint() {
        let original = fingerprint(vec![vec![base()]]).await;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let retyped = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
                base().column(1).clone(),
            ],
        )
        .unwrap();
        let retyped = fingerprint(vec![vec![retyped]]).await;
        assert_eq!(original.differing_columns(&retyped), vec!["id"]);
    }

    #[test]
    fn values_hash_by_type_and_value_nulls_included() {
        use deltalake::arrow::array::{BooleanArray, Decimal128Array, ListArray};
        use deltalake::arrow::datatypes::Int32Type;
        let hash = |a: ArrayRef| ValueHasher::new(a.data_type()).unwrap().hashes(&a).unwrap();
        let ints = hash(Arc::new(Int64Array::from(vec![
            Some(1),
            Some(2),
            None,
            Some(1),
        ])));
        assert_eq!(ints[0], ints[3]);
        assert_ne!(ints[0], ints[1]);
        assert_ne!(ints[0], ints[2]);
        assert_ne!(ints[0], hash(Arc::new(Int32Array::from(vec![1])))[0]);
        let bools = hash(Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
        ])));
        assert!(bools[0] != bools[1] && bools[1] != bools[2] && bools[0] != bools[2]);
        let decimals = Decimal128Array::from(vec![Some(100), Some(101)])
            .with_precision_and_scale(18, 2)
            .unwrap();
        let decimals = hash(Arc::new(decimals));
        assert_ne!(decimals[0], decimals[1]);
        let sliced = Int64Array::from(vec![7, 1, 2]).slice(1, 2);
        assert_eq!(hash(Arc::new(sliced))[0], ints[0], "offsets are honoured");
        let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![Some(2), Some(1)]),
            Some(vec![Some(1), Some(2)]),
        ]);
        let lists = hash(Arc::new(lists));
        assert_eq!(lists[0], lists[2]);
        assert_ne!(lists[0], lists[1]);
    }

    #[test]
    fn partial_states_merge_by_addition() {
        let mut a = State {
            rows: 2,
            table: u64::MAX,
            columns: vec![1, 2],
        };
        let b = State {
            rows: 3,
            table: 2,
            columns: vec![10, 20],
        };
        a.merge(&b);
        assert_eq!(
            a,
            State {
                rows: 5,
                table: 1,
                columns: vec![11, 22]
            }
        );
        assert_eq!(State::decode(&a.encode()), Some(a.clone()));
        let mut back = a.clone();
        back.subtract(&b);
        assert_eq!(back.rows, 2);
        assert_eq!((back.table, back.columns), (u64::MAX, vec![1, 2]));
    }
}
