//! The demo's data: a `financial_transactions` Delta table written commit by commit, and
//! copies of it as dated snapshots. Deterministic for a given seed.

use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};

use crate::storage::directory_url;

/// The columns of the demo table.
pub(crate) fn transactions_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("transaction_id", DataType::Int64, true),
        Field::new("account_id", DataType::Int64, true),
        Field::new("amount", DataType::Decimal128(18, 2), true),
        Field::new("currency", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new(
            "booked_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// A small, fast pseudo-random generator (SplitMix64), so the data is the same every time.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "CHF"];
const STATUSES: [&str; 3] = ["settled", "pending", "refunded"];

/// `rows` transactions with ids `first_id..first_id + rows`, booked in the hours before
/// `booked_before_micros`.
pub fn transactions(first_id: i64, rows: usize, booked_before_micros: i64) -> RecordBatch {
    let mut rng = SplitMix(first_id as u64 ^ 0x5EED);
    let mut ids = Vec::with_capacity(rows);
    let mut accounts = Vec::with_capacity(rows);
    let mut amounts = Vec::with_capacity(rows);
    let mut currencies = Vec::with_capacity(rows);
    let mut statuses = Vec::with_capacity(rows);
    let mut booked = Vec::with_capacity(rows);
    for i in 0..rows {
        let r = rng.next();
        ids.push(first_id + i as i64);
        accounts.push(1_000 + (r % 50_000) as i64);
        amounts.push((r >> 20) as i128 % 5_000_000 - 500_000);
        currencies.push(CURRENCIES[(r >> 8) as usize % CURRENCIES.len()]);
        statuses.push(STATUSES[(r >> 12) as usize % STATUSES.len()]);
        booked.push(booked_before_micros - ((r >> 30) % 86_400_000_000) as i64);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int64Array::from(accounts)),
        Arc::new(
            Decimal128Array::from(amounts)
                .with_precision_and_scale(18, 2)
                .expect("valid decimal"),
        ),
        Arc::new(StringArray::from(currencies)),
        Arc::new(StringArray::from(statuses)),
        Arc::new(TimestampMicrosecondArray::from(booked).with_timezone("UTC")),
    ];
    RecordBatch::try_new(transactions_schema(), columns).expect("columns match the schema")
}

/// Appends batches to the Delta table in `folder` as one commit, creating the table if needed.
pub async fn append(
    folder: &Path,
    batches: Vec<RecordBatch>,
) -> Result<DeltaTable, DeltaTableError> {
    std::fs::create_dir_all(folder)
        .map_err(|e| DeltaTableError::Generic(format!("{}: {e}", folder.display())))?;
    let url = directory_url(folder);
    let table = if folder.join("_delta_log").is_dir() {
        crate::kinds::delta::table::open(&url, None).await?
    } else {
        DeltaTableBuilder::from_url(url)?.build()?
    };
    table.write(batches).with_save_mode(SaveMode::Append).await
}

/// Copies a folder recursively, as a backup job would.
pub fn copy_folder(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_folder(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
