//! Opening Delta tables read-only and reading what their log says: version, table id, newest
//! commit time, schema, reader features and the data files with their sizes, row counts and
//! deletion vectors.

pub(crate) mod deletion_vector;
pub(crate) mod widened;

pub use deletion_vector::{DeletionVector, VectorPlace};

use chrono::{DateTime, Utc};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

/// One data file as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Path relative to the table root, URL-decoded.
    pub path: String,
    /// The file's partition values as the log records them, by column.
    pub partition_values: std::collections::BTreeMap<String, Option<String>>,
    pub size: u64,
    /// `numRecords` from the file's statistics, when the writer recorded it.
    pub num_records: Option<u64>,
    /// The file's statistics as the log holds them (JSON), when recorded.
    pub stats: Option<String>,
    /// The rows deleted from the file without rewriting it, when it has a deletion vector (or
    /// the reason its descriptor cannot be read).
    pub deletion_vector: Option<Result<DeletionVector, String>>,
}

impl LogFile {
    /// The rows a reader returns from this file: `numRecords` minus the deleted rows.
    pub(crate) fn live_rows(&self) -> Option<u64> {
        let deleted = match &self.deletion_vector {
            None => 0,
            Some(Ok(dv)) => dv.cardinality,
            Some(Err(_)) => return None,
        };
        self.num_records.map(|n| n.saturating_sub(deleted))
    }
}

/// The Delta reader features restore-drill verifies tables with: each is tested on a table that
/// uses it (`tests/data/delta-features`). A table that declares any other is not verified.
pub(crate) const SUPPORTED_READER_FEATURES: &[&str] = &[
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "typeWidening",
    "typeWidening-preview",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "variantType",
    "variantType-preview",
];

/// The DataFusion table a verification scans: deltalake's own, or for a table with widened
/// columns, which deltalake refuses to scan, the log's data files read with the table's schema
/// (see [`widened`]).
pub(crate) async fn provider(
    ctx: &deltalake::datafusion::prelude::SessionContext,
    table: &DeltaTable,
) -> Result<
    std::sync::Arc<dyn deltalake::datafusion::catalog::TableProvider>,
    deltalake::datafusion::error::DataFusionError,
> {
    let features = reader_features(table);
    if widened::declared(&features) {
        return widened::provider(ctx, table);
    }
    table
        .table_provider()
        .await
        .map_err(|e| deltalake::datafusion::error::DataFusionError::External(Box::new(e)))
}

/// Registers `table` in a verification session under the name every query uses.
pub async fn register(
    ctx: &deltalake::datafusion::prelude::SessionContext,
    table: &DeltaTable,
) -> Result<(), deltalake::datafusion::error::DataFusionError> {
    let provider = provider(ctx, table).await?;
    ctx.register_table(crate::verify::plan::TABLE, provider)
        .map(|_| ())
}

/// The reader features a loaded table's protocol declares.
fn reader_features(table: &DeltaTable) -> Vec<String> {
    table
        .snapshot()
        .ok()
        .and_then(|state| {
            state
                .protocol()
                .reader_features()
                .map(|features| features.iter().map(|f| f.to_string()).collect())
        })
        .unwrap_or_default()
}

/// What the log of a table says at one version.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub version: u64,
    /// The Delta table id (`metaData.id`), the same in every copy of the table.
    pub table_id: String,
    /// `commitInfo.timestamp` of the newest commit, or the commit file's modification time
    /// when the commit has no timestamp.
    pub commit_timestamp: Option<DateTime<Utc>>,
    pub columns: Vec<String>,
    /// The Delta type of each column, in the log's words (`long`, `string`, `decimal(18,2)`).
    pub types: Vec<String>,
    pub files: Vec<LogFile>,
    /// The reader features the table's protocol declares (empty below reader version 3).
    pub reader_features: Vec<String>,
    pub partition_columns: Vec<String>,
}

impl TableInfo {
    /// Column names with their Delta types.
    pub fn typed_columns(&self) -> Vec<(String, String)> {
        self.columns
            .iter()
            .cloned()
            .zip(self.types.iter().cloned())
            .collect()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The smallest and largest value of an integer column according to the files' statistics,
    /// if every file with rows recorded both.
    pub fn integer_range(&self, column: &str) -> Option<(i64, i64)> {
        let mut range: Option<(i64, i64)> = None;
        for file in &self.files {
            if file.num_records == Some(0) {
                continue;
            }
            let stats: serde_json::Value = serde_json::from_str(file.stats.as_deref()?).ok()?;
            let min = stats.get("minValues")?.get(column)?.as_i64()?;
            let max = stats.get("maxValues")?.get(column)?.as_i64()?;
            range = Some(match range {
                None => (min, max),
                Some((lo, hi)) => (lo.min(min), hi.max(max)),
            });
        }
        range
    }

    /// The rows the log promises a reader: the sum of `numRecords` less the rows deletion vectors
    /// remove, if every file recorded its count.
    pub(crate) fn logged_rows(&self) -> Option<u64> {
        self.files.iter().map(LogFile::live_rows).sum()
    }

    /// The reader features the table declares that this version cannot verify (type widening
    /// only without partitions, deletion vectors and column mapping, each named with it).
    pub(crate) fn unsupported_features(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .reader_features
            .iter()
            .filter(|f| !SUPPORTED_READER_FEATURES.contains(&f.as_str()))
            .cloned()
            .collect();
        if widened::declared(&self.reader_features) {
            let with = [
                (!self.partition_columns.is_empty(), "partition columns"),
                (self.deletion_vectors().next().is_some(), "deletion vectors"),
                (
                    self.reader_features.iter().any(|f| f == "columnMapping"),
                    "column mapping",
                ),
            ];
            for (_, what) in with.iter().filter(|(has, _)| *has) {
                out.push(format!("typeWidening together with {what}"));
            }
        }
        out
    }

    /// The rows the files' deletion vectors remove (as the log records them).
    pub(crate) fn deleted_rows(&self) -> u64 {
        self.deletion_vectors()
            .filter_map(|(_, dv)| dv.as_ref().ok())
            .map(|dv| dv.cardinality)
            .sum()
    }

    /// The deletion vectors of the files, each with its data file's path.
    pub fn deletion_vectors(
        &self,
    ) -> impl Iterator<Item = (&str, &Result<DeletionVector, String>)> {
        self.files
            .iter()
            .filter_map(|f| f.deletion_vector.as_ref().map(|dv| (f.path.as_str(), dv)))
    }
}

/// A log error in words a person can act on: a gap in the commit files is named by the
/// versions on either side; other errors pass through.
pub(crate) fn explain_log_error(error: &DeltaTableError) -> String {
    let text = error.to_string();
    if !text.contains("found gap") {
        return text;
    }
    let versions: Vec<u64> = text
        .split("filename: \"")
        .skip(1)
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect();
    match versions.as_slice() {
        [before, after, ..] => {
            let missing: Vec<String> = (before + 1..*after)
                .map(|v| format!("{v:020}.json"))
                .collect();
            format!(
                "commit file(s) missing from _delta_log: {} (the log jumps from version {before} to {after})",
                missing.join(", ")
            )
        }
        _ => text,
    }
}

/// Whether an error's text says a file or object is not there (as opposed to unreadable).
pub(crate) fn is_not_found(error: &str) -> bool {
    let lower = error.to_ascii_lowercase();
    lower.contains("not found")
        || lower.contains("no such file")
        || lower.contains("nosuchkey")
        || lower.contains("404")
}

/// Loads a table at its newest version, or at `version`.
pub async fn open(url: &Url, version: Option<u64>) -> Result<DeltaTable, DeltaTableError> {
    open_with(url, std::collections::HashMap::new(), version).await
}

/// Opens the table a drill restored into its run's sandbox.
pub(crate) async fn open_run(
    run: &crate::storage::RunSandbox,
) -> Result<DeltaTable, DeltaTableError> {
    let options = run
        .storage_options()
        .map_err(|e| DeltaTableError::Generic(e.to_string()))?;
    open_with(&run.url(), options, None).await
}

/// Opens the table in a read-only folder (local or S3, with its profile's options).
pub(crate) async fn open_dir(
    dir: &crate::storage::ReadOnlyDir,
    version: Option<u64>,
) -> Result<DeltaTable, DeltaTableError> {
    let options = dir
        .storage_options()
        .map_err(|e| DeltaTableError::Generic(e.to_string()))?;
    open_with(&dir.url(), options, version).await
}

async fn open_with(
    url: &Url,
    options: std::collections::HashMap<String, String>,
    version: Option<u64>,
) -> Result<DeltaTable, DeltaTableError> {
    let mut builder = DeltaTableBuilder::from_url(url.clone())?.with_storage_options(options);
    if let Some(v) = version {
        builder = builder.with_version(v as _);
    }
    builder.load().await
}

/// Reads the version, id, newest commit time, columns and files of a loaded table.
pub async fn describe(table: &DeltaTable) -> Result<TableInfo, DeltaTableError> {
    let state = table.snapshot()?;
    let version = state.version();
    let table_id = serde_json::to_value(state.metadata())
        .ok()
        .and_then(|m| m.get("id").and_then(|id| id.as_str().map(String::from)))
        .unwrap_or_default();
    let schema = state.schema();
    let columns = schema.fields().map(|f| f.name().to_string()).collect();
    let types = schema.fields().map(|f| f.data_type().to_string()).collect();
    let files = state
        .log_data()
        .iter()
        .map(|f| LogFile {
            path: f.path().into_owned(),
            partition_values: f.partition_values_map().into_iter().collect(),
            size: f.size().max(0) as u64,
            num_records: f.num_records().map(|n| n as u64),
            stats: f.stats(),
            deletion_vector: f
                .deletion_vector_descriptor()
                .map(|d| DeletionVector::from_descriptor(&d)),
        })
        .collect();
    let reader_features = state
        .protocol()
        .reader_features()
        .map(|features| features.iter().map(|f| f.to_string()).collect())
        .unwrap_or_default();
    // The commit file of exactly this version (the history of a table loaded at an older
    // version starts at the log's newest commit).
    let commit_millis = match table.log_store().read_commit_entry(version).await {
        Ok(Some(bytes)) => commit_time(&bytes),
        _ => None,
    }
    .or_else(|| state.version_timestamp(version));
    Ok(TableInfo {
        version,
        table_id,
        commit_timestamp: commit_millis.and_then(DateTime::from_timestamp_millis),
        columns,
        types,
        files,
        reader_features,
        partition_columns: state.metadata().partition_columns().to_vec(),
    })
}

/// `commitInfo.inCommitTimestamp` or `commitInfo.timestamp` of a commit file, in milliseconds.
pub(crate) fn commit_time(commit: &[u8]) -> Option<i64> {
    commit
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .find_map(|action| {
            let info = action.get("commitInfo")?;
            info.get("inCommitTimestamp")
                .or_else(|| info.get("timestamp"))?
                .as_i64()
        })
}

/// The newest commit time of a table's current version, for RPO.
pub(crate) async fn newest_commit(
    dir: &crate::storage::ReadOnlyDir,
) -> Result<(u64, Option<DateTime<Utc>>), DeltaTableError> {
    let table = open_dir(dir, None).await?;
    let info = describe(&table).await?;
    Ok((info.version, info.commit_timestamp))
}
