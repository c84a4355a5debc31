//! The kinds of data restore-drill drills, one folder per family, each behind [`Kind`]: how its
//! snapshots are found, how one is restored into a sandbox, how the restored data's structure is
//! checked, and how the restored data and the source are read as DataFusion tables. The drill
//! (`crate::drill`) calls these phase by phase; adding a family means a folder here and one line
//! in [`of`].
//!
//! The descriptions the drill reads — [`Snapshot`], [`TableInfo`], [`StructureReport`] — are
//! the Delta family's, widened for a PostgreSQL dump: its snapshot is a `RestoreMethod::PgRestore`
//! and its structure a `StructureReport::database`.

pub mod delta;
pub mod equality;
pub mod pattern;
pub mod postgres;
pub mod restore;
pub mod settings;
pub mod snapshot;
pub mod structure;

pub use delta::restore::{CopyProgress, PhaseTime, RestoreError, RestoreOutcome, StructureReport};
pub use delta::table::TableInfo;
pub use snapshot::{PointInTime, RestoreMethod, Snapshot, SnapshotError, SnapshotSource};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deltalake::datafusion::prelude::SessionContext;

use crate::storage::{Location, RunSandbox, StorageError};
use crate::verify::suite::Severity;

/// One family of data: what a drill needs to know about it, in the order it needs it.
#[async_trait]
pub trait Kind: Send + Sync {
    /// The snapshots there are, newest first (`snapshots`).
    async fn list(&self, now: DateTime<Utc>) -> Result<Vec<Snapshot>, SnapshotError>;

    /// The snapshot a drill restores: the newest, the one at the job's point in time, or the one
    /// `pinned` names.
    async fn choose(
        &self,
        pinned: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Snapshot, SnapshotError>;

    /// What restoring `snapshot` would read, and how, found by reading only (`run --dry-run`).
    async fn plan_restore(&self, snapshot: &Snapshot) -> Result<RestorePlan, StorageError>;

    /// Materialises `snapshot` in the run's sandbox.
    async fn restore(
        &self,
        snapshot: &Snapshot,
        run: &RunSandbox,
        concurrency: usize,
        progress: &dyn CopyProgress,
    ) -> Result<RestoreOutcome, RestoreError>;

    /// Checks the restored data's structure. Completes `snapshot`'s description with what only
    /// the restore shows (a versioned bucket's table version).
    async fn verify_structure(&self, snapshot: &mut Snapshot, run: &RunSandbox) -> StructureReport;

    /// Registers the restored data in `ctx` (a verification session) under the name every
    /// query uses — for a database, its table `table` (`schema.name`); an error says why it
    /// cannot be read.
    async fn register_restored(
        &self,
        run: &RunSandbox,
        table: Option<&str>,
        ctx: &SessionContext,
    ) -> Result<(), String>;

    /// When the restored data could not be scanned: its damaged files, each with what is wrong.
    async fn locate_damage(&self, run: &RunSandbox, info: &TableInfo) -> Vec<String>;

    /// The source at the snapshot's version, registered in `ctx` under the name every query
    /// uses, or why there is nothing to compare with. An error: the source cannot be read at all.
    async fn open_source(
        &self,
        snapshot: &Snapshot,
        run: &RunSandbox,
        ctx: &SessionContext,
    ) -> Result<SourceAt, String>;

    /// What the source is now (its columns, for `validate`), or why it cannot be read.
    async fn describe_source(&self) -> Result<Described, String>;

    /// Whether the place the kind restores into besides the sandbox folder can take a restore
    /// (a sandbox server: it answers and lets its user create databases), for `validate`.
    async fn check_restore_target(&self) -> Result<(), String> {
        Ok(())
    }

    /// The source as it is now, registered in `ctx`, and its columns (the append-only fallback
    /// of a comparison); `None` when it cannot be read.
    async fn open_current_source(&self, ctx: &SessionContext) -> Option<Vec<String>>;

    /// When a scan of the source at a version failed with `error` because that version's data
    /// is gone (not because the source is unreadable): the reason, for the finding.
    fn gone(&self, error: &str) -> Option<String>;

    /// The time of the source's newest change: the reference of the RPO. `Ok(None)`: the source
    /// does not say.
    async fn source_newest_change(&self) -> Result<Option<DateTime<Utc>>, String>;

    /// What [`Kind::source_newest_change`] measures, as the report names the RPO's basis.
    fn change_basis(&self) -> &'static str {
        "source_newest_commit"
    }

    /// The newest value of a timestamp or date column in the source as it is now (the job's
    /// `rpo_column`); `Ok(None)` when the column holds no value.
    async fn source_newest_value(&self, column: &str) -> Result<Option<DateTime<Utc>>, String>;

    /// The newest value of the job's `rpo_column` in the restored data, when the kind reads it
    /// apart from the suite's scan (a database's `schema.table.column`).
    async fn restored_newest_value(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        Err(format!("`{column}` is read by the restored table's scan"))
    }

    /// The smallest and largest value of the integer column `column` of the restored table
    /// `table`, when the kind learns them without reading the table (a database's index), so
    /// that its keys are counted with one bit per possible value.
    async fn restored_key_range(&self, _table: &str, _column: &str) -> Option<(i64, i64)> {
        None
    }

    /// The restored data as variables for a smoke test besides its folder (a database's libpq
    /// variables; its password with `credentials`).
    async fn restored_env(&self, _credentials: bool) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Stops what the restore started (a server) before the run's folder is kept or removed.
    async fn release(&self) {}

    /// Registers the source's table `table` as it is now in `ctx` as `name`, read-only, and
    /// returns its columns with the suite's type names (a database's tables, compared as read
    /// now). An error: the source cannot be read.
    async fn register_source(
        &self,
        table: &str,
        _name: &str,
        _ctx: &SessionContext,
    ) -> Result<Vec<(String, String)>, String> {
        Err(format!(
            "the source of this kind is not read table by table (`{table}`)"
        ))
    }

    /// How the restored data's structure differs from the source's as it is now, each
    /// difference with its severity (a database's schema; Delta tables compare through
    /// [`Kind::open_source`] instead). An error: the source cannot be read.
    async fn compare_structure(
        &self,
        _snapshot: &Snapshot,
    ) -> Result<Vec<(Severity, String)>, String> {
        Ok(Vec::new())
    }
}

/// What a source holds, for `validate`: one Delta table, or a database's tables.
#[derive(Debug, Clone)]
pub enum Described {
    Table(TableInfo),
    Database(Vec<TableColumns>),
}

/// A table's name (`schema.name`) and its columns with the suite's type names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableColumns {
    pub name: String,
    pub columns: Vec<(String, String)>,
}

impl TableColumns {
    /// The table a suite names among `tables`: `schema.name`, or `name` of a table in `public`.
    pub fn find<'a>(tables: &'a [TableColumns], name: &str) -> Option<&'a TableColumns> {
        tables
            .iter()
            .find(|t| t.name == name || t.name == format!("public.{name}"))
    }
}

/// What a restore would do.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// How the snapshot is restored, in words.
    pub method: String,
    /// What the restore reads: files copied, or the data files of the version rewritten.
    pub files: usize,
    pub bytes: u64,
}

/// The source at a snapshot's version.
pub enum SourceAt {
    /// The snapshot has no version to compare at.
    NoVersion,
    /// The snapshot does not belong to the source's history: a failed drill, and no comparison.
    Foreign(String),
    /// The source no longer holds the version (its time-travel window is shorter than the
    /// snapshot's age): a warning, and the job's fallback.
    Gone { version: u64, reason: String },
    /// Registered at the version, with its description; `altered` says how the snapshot
    /// differs from the source's own record of that version, when it does (a failed drill,
    /// and the contents are still compared).
    /// `equality`: for a copy, which of its files were proven identical to the source's by
    /// their bytes (their rows need not be decoded on the source's side).
    Open {
        version: u64,
        info: TableInfo,
        altered: Option<String>,
        equality: Option<Box<equality::Equality>>,
    },
}

/// Reads a job's `snapshots` table: which kind, and its settings.
pub use settings::read as read_snapshots;

/// What a job's snapshots are of: a Delta table's folder, or a live PostgreSQL database.
#[derive(Debug, Clone)]
pub enum Source {
    Storage(Location),
    Postgres(postgres::settings::PgUrl),
}

impl Source {
    /// The folder, for a source on storage.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Source::Storage(location) => Some(location),
            Source::Postgres(_) => None,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Storage(location) => location.fmt(f),
            Source::Postgres(db) => db.fmt(f),
        }
    }
}

/// The kind of a job's `pg_dump` snapshots restoring for real into the database `target`
/// names (created and kept); `None` for a kind that does not restore into a database.
pub fn restoring_into(
    snapshots: &SnapshotSource,
    target: &postgres::settings::PgUrl,
) -> Option<Box<dyn Kind>> {
    match snapshots {
        SnapshotSource::PgDump(settings) => {
            let mut settings = (**settings).clone();
            settings.restore_into = Some(target.clone());
            Some(Box::new(postgres::PgDump::new(settings)))
        }
        _ => None,
    }
}

/// The kind of a job's snapshots, each with the source it is compared with.
pub fn of(snapshots: &SnapshotSource) -> Box<dyn Kind> {
    match snapshots {
        SnapshotSource::DeltaCopy { .. }
        | SnapshotSource::DeltaTimeTravel { .. }
        | SnapshotSource::S3Versions { .. } => Box::new(delta::Delta::new(snapshots.clone())),
        SnapshotSource::PgDump(settings) => Box::new(postgres::PgDump::new((**settings).clone())),
    }
}
