//! Tables whose columns were widened (Delta's `typeWidening` reader feature): a column's type
//! changed to a wider one (`byte` → `long`, `float` → `double`, `decimal(10,2)` →
//! `decimal(20,5)`, …) after data was written, so older files hold the narrower type.
//! deltalake 1.1 refuses to scan them; restore-drill reads the log's data files with the
//! table's current schema instead, and DataFusion casts each file's narrower columns, which is
//! what the protocol asks of a reader. Supported without partitions, deletion vectors and column
//! mapping (other combinations are refused by name, see [`super::TableInfo`]).

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::Schema;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::datafusion::datasource::file_format::parquet::ParquetFormat;
use deltalake::datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;

/// Whether the table declares type widening.
pub(crate) fn declared(reader_features: &[String]) -> bool {
    reader_features
        .iter()
        .any(|f| f.starts_with("typeWidening"))
}

/// A DataFusion table over the data files of `table`'s loaded version, with its (widened)
/// schema; the table's object store is registered in `ctx` under a name of its own.
pub(crate) fn provider(
    ctx: &SessionContext,
    table: &DeltaTable,
) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    let external = |e: deltalake::DeltaTableError| DataFusionError::External(Box::new(e));
    let state = table.snapshot().map_err(external)?;
    let schema: Schema = state
        .schema()
        .as_ref()
        .try_into_arrow()
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    // The files by their full URLs, read through the table's store (registered for its
    // scheme and host, e.g. the bucket, so paths resolve from the root).
    let mut root = table.table_url().clone();
    if !root.path().ends_with('/') {
        root.set_path(&format!("{}/", root.path()));
    }
    ctx.register_object_store(&root, table.log_store().root_object_store(None));
    let files = state
        .log_data()
        .iter()
        .map(|f| {
            let url = root
                .join(&f.path())
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            ListingTableUrl::parse(url.as_str())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(files)
        .with_listing_options(options)
        .with_schema(Arc::new(schema));
    Ok(Arc::new(ListingTable::try_new(config)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_widened_table_reads_with_its_widened_schema() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/delta-features/type-widening");
        let table = crate::kinds::delta::table::open(&crate::storage::directory_url(&dir), None)
            .await
            .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", provider(&ctx, &table).unwrap())
            .unwrap();
        let batches = ctx
            .sql("SELECT * FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2, "{batches:?}");
    }
}
