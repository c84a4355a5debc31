//! Delta Lake tables: dated copies (`delta_copy`), the table's own history
//! (`delta_time_travel`) and versioned buckets (`s3_versions`).

pub mod damage;
mod identity;
pub mod restore;
pub mod settings;
pub mod snapshot;
pub mod table;

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deltalake::datafusion::prelude::SessionContext;

use super::{Described, Kind, RestorePlan, SourceAt};
use crate::primitives::duration::seconds_to_time;
use crate::primitives::hash::sha256_hex;
use crate::storage::{Location, ReadOnlyDir, RunSandbox, StorageError};
use crate::verify::plan::{self, TABLE};
use crate::verify::{scan, values};
use restore::{CopyProgress, RestoreError, RestoreOutcome, StructureReport};
use snapshot::{RestoreMethod, Snapshot, SnapshotError, SnapshotSource};
use table::TableInfo;

/// A job's Delta snapshots and the live table they are compared with.
pub struct Delta {
    snapshots: SnapshotSource,
    source: Location,
}

impl Delta {
    pub fn new(snapshots: SnapshotSource) -> Self {
        let source = match &snapshots {
            SnapshotSource::DeltaCopy { source, .. }
            | SnapshotSource::DeltaTimeTravel { source, .. }
            | SnapshotSource::S3Versions { source, .. } => source.clone(),
            SnapshotSource::PgDump(settings) => settings.location.clone(),
        };
        Self { snapshots, source }
    }

    fn source_dir(&self) -> ReadOnlyDir {
        ReadOnlyDir::new(&self.source)
    }

    /// Which files of the restored copy are byte-identical to the source's at its version.
    async fn prove_identical(
        &self,
        run: &RunSandbox,
        source: &deltalake::DeltaTable,
        source_info: &TableInfo,
        source_dir: &ReadOnlyDir,
    ) -> Option<super::equality::Equality> {
        let restored = table::open_run(run).await.ok()?;
        let restored_info = table::describe(&restored).await.ok()?;
        let restored_dir = ReadOnlyDir::new(run.location());
        identity::prove(
            identity::Side {
                table: &restored,
                info: &restored_info,
                dir: &restored_dir,
            },
            identity::Side {
                table: source,
                info: source_info,
                dir: source_dir,
            },
        )
        .await
    }

    /// The source table as it is now, or why its log cannot be read.
    async fn open_current(&self) -> Result<deltalake::DeltaTable, String> {
        table::open_dir(&self.source_dir(), None)
            .await
            .map_err(|e| table::explain_log_error(&e))
    }
}

#[async_trait]
impl Kind for Delta {
    async fn list(&self, now: DateTime<Utc>) -> Result<Vec<Snapshot>, SnapshotError> {
        snapshot::list(&self.snapshots, now).await
    }

    async fn choose(
        &self,
        pinned: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Snapshot, SnapshotError> {
        snapshot::choose(&self.snapshots, pinned, now).await
    }

    async fn plan_restore(&self, snapshot: &Snapshot) -> Result<RestorePlan, StorageError> {
        let (files, bytes) = match &snapshot.method {
            RestoreMethod::CopyAll => {
                let files = ReadOnlyDir::new(&snapshot.location).list_files().await?;
                (files.len(), files.iter().map(|f| f.size).sum())
            }
            RestoreMethod::CopyVersions(files) => (files.len(), files.iter().map(|f| f.size).sum()),
            RestoreMethod::PgRestore(dump) => (dump.files.len(), dump.bytes()),
            RestoreMethod::Rewrite { .. } | RestoreMethod::NewVersion { .. } => snapshot
                .table
                .as_ref()
                .map_or((0, 0), |t| (t.files.len(), t.bytes())),
        };
        let method = match &snapshot.method {
            RestoreMethod::CopyAll => "copy every object".into(),
            RestoreMethod::CopyVersions(_) => {
                "copy the object versions current at the snapshot's time".into()
            }
            RestoreMethod::Rewrite { version } => {
                format!("read version {version} and write its rows as a new table")
            }
            RestoreMethod::NewVersion { version } => format!(
                "restore the table itself to version {version} as a new commit (Delta's restore; every version stays in its history)"
            ),
            RestoreMethod::PgRestore(_) => "none: a dump is not a Delta table".into(),
        };
        Ok(RestorePlan {
            method,
            files,
            bytes,
        })
    }

    async fn restore(
        &self,
        snapshot: &Snapshot,
        run: &RunSandbox,
        concurrency: usize,
        progress: &dyn CopyProgress,
    ) -> Result<RestoreOutcome, RestoreError> {
        restore::restore(snapshot, run, concurrency, progress).await
    }

    async fn verify_structure(&self, snapshot: &mut Snapshot, run: &RunSandbox) -> StructureReport {
        // A copy replays to the snapshot's version; a rewrite is a new table's first version; a
        // versioned-bucket restore is at whatever version the bucket held then.
        let expected_version = match &snapshot.method {
            RestoreMethod::CopyAll => snapshot.version(),
            RestoreMethod::Rewrite { .. } => Some(0),
            RestoreMethod::NewVersion { .. }
            | RestoreMethod::CopyVersions(_)
            | RestoreMethod::PgRestore(_) => None,
        };
        let structure = restore::verify_structure(run, expected_version).await;
        if let (RestoreMethod::CopyVersions(_), Some(info)) = (&snapshot.method, &structure.table) {
            snapshot.table = Ok(info.clone());
        }
        structure
    }

    async fn register_restored(
        &self,
        run: &RunSandbox,
        _table: Option<&str>,
        ctx: &SessionContext,
    ) -> Result<(), String> {
        let table = table::open_run(run).await.map_err(|e| e.to_string())?;
        table::register(ctx, &table)
            .await
            .map_err(|e| e.to_string())
    }

    async fn locate_damage(&self, run: &RunSandbox, info: &TableInfo) -> Vec<String> {
        damage::find_undecodable(run, &info.files)
            .await
            .into_iter()
            .map(|bad| format!("{} ({})", bad.path, bad.reason))
            .collect()
    }

    async fn open_source(
        &self,
        snapshot: &Snapshot,
        run: &RunSandbox,
        ctx: &SessionContext,
    ) -> Result<SourceAt, String> {
        let Some(version) = snapshot.version() else {
            return Ok(SourceAt::NoVersion);
        };
        let source_dir = self.source_dir();
        let current = self.open_current().await?;
        let current_version = current.version().unwrap_or_default();
        if version > current_version {
            return Ok(SourceAt::Foreign(format!(
                "the snapshot holds version {version} of the table but the source {} is at version {current_version}: the backup does not belong to this source's history (a copy of another environment's table, or the source was recreated)",
                self.source
            )));
        }
        // The commit at the snapshot's version, as the source's log holds it (absent once the
        // log was cleaned past it).
        let source_commit = current
            .log_store()
            .read_commit_entry(version as _)
            .await
            .map_err(|e| e.to_string())?;
        let at_version = match table::open_dir(&source_dir, Some(version)).await {
            Ok(t) => table::describe(&t).await.map(|info| (t, info)),
            Err(e) => Err(e),
        };
        let (source, info) = match at_version {
            Ok(found) => found,
            Err(e) if source_commit.is_none() => {
                let reason = format!(
                    "{} (the source's log no longer holds this version: its time-travel window is shorter than the snapshot's age)",
                    table::explain_log_error(&e)
                );
                return Ok(SourceAt::Gone { version, reason });
            }
            Err(e) => return Err(table::explain_log_error(&e)),
        };
        if let Ok(snap) = &snapshot.table
            && !snap.table_id.is_empty()
            && snap.table_id != info.table_id
        {
            return Ok(SourceAt::Foreign(format!(
                "the snapshot is a copy of Delta table {} but the source {} is table {}: the backup holds a different table",
                snap.table_id, self.source, info.table_id
            )));
        }
        // A copy holds the source's own commit files: the same bytes at the same version.
        let commit_file = format!("_delta_log/{version:020}.json");
        let altered = match (&snapshot.method, &source_commit) {
            (RestoreMethod::Rewrite { .. } | RestoreMethod::NewVersion { .. }, _) | (_, None) => {
                None
            }
            (_, Some(source_commit)) => match run.read(Path::new(&commit_file)).await {
                Ok(restored_commit) if restored_commit != *source_commit => Some(format!(
                    "the snapshot's commit {version:020}.json differs from the source's commit of that version (SHA-256 {} against {}): the backup's log was altered, or the backup does not belong to this source's history",
                    &sha256_hex(&restored_commit)[..12],
                    &sha256_hex(source_commit)[..12]
                )),
                _ => None,
            },
        };
        table::register(ctx, &source)
            .await
            .map_err(|e| e.to_string())?;
        let equality = match &snapshot.method {
            RestoreMethod::CopyAll | RestoreMethod::CopyVersions(_) => self
                .prove_identical(run, &source, &info, &source_dir)
                .await
                .map(Box::new),
            _ => None,
        };
        Ok(SourceAt::Open {
            version,
            info,
            altered,
            equality,
        })
    }

    async fn describe_source(&self) -> Result<Described, String> {
        let current = self.open_current().await?;
        table::describe(&current)
            .await
            .map(Described::Table)
            .map_err(|e| e.to_string())
    }

    async fn open_current_source(&self, ctx: &SessionContext) -> Option<Vec<String>> {
        let current = self.open_current().await.ok()?;
        let info = table::describe(&current).await.ok()?;
        table::register(ctx, &current).await.ok()?;
        Some(info.columns)
    }

    fn gone(&self, error: &str) -> Option<String> {
        // Data files of the version removed (VACUUM): the time-travel window again.
        table::is_not_found(error).then(|| format!(
            "{error} (the source's files of this version were removed, e.g. by VACUUM: its time-travel window is shorter than the snapshot's age)"
        ))
    }

    async fn source_newest_value(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        let current = self.open_current().await?;
        let ctx = scan::session();
        table::register(&ctx, &current)
            .await
            .map_err(|e| e.to_string())?;
        let sql = format!("SELECT {} FROM {TABLE}", plan::newest_seconds(column));
        let newest = scan::single_value(&ctx, &sql)
            .await
            .map_err(|e| e.to_string())?;
        Ok(values::as_f64(&newest).and_then(seconds_to_time))
    }

    async fn source_newest_change(&self) -> Result<Option<DateTime<Utc>>, String> {
        table::newest_commit(&self.source_dir())
            .await
            .map(|(_, time)| time)
            .map_err(|e| e.to_string())
    }
}
