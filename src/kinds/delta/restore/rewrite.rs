//! Restore by rewrite (`delta_time_travel`): read the source at the snapshot's version and
//! write its rows as a new Delta table in the sandbox, with the same partition columns — what a
//! runbook's "read versionAsOf, then write" step does. The rows stream through DataFusion; they
//! are never all in memory.

use std::time::Instant;

use deltalake::DeltaTable;

use super::{CopyProgress, PhaseTime, RestoreError, RestoreOutcome};
use crate::kinds::delta::snapshot::Snapshot;
use crate::kinds::delta::table;
use crate::storage::{ReadOnlyDir, RunSandbox};
use crate::verify::scan;

pub(crate) async fn rewrite(
    snapshot: &Snapshot,
    version: u64,
    sandbox: &RunSandbox,
    progress: &dyn CopyProgress,
) -> Result<RestoreOutcome, RestoreError> {
    timed(snapshot, progress, write(snapshot, version, sandbox)).await
}

/// Restores the table at `target` — the source itself, a restore for real — to `version` with
/// Delta's restore: one new commit that removes the files added since and adds back those
/// removed, so that its contents are the version's; every version stays in the history.
pub(crate) async fn new_version(
    snapshot: &Snapshot,
    version: u64,
    target: &RunSandbox,
    progress: &dyn CopyProgress,
) -> Result<RestoreOutcome, RestoreError> {
    let restored = async {
        let table = table::open_run(target)
            .await
            .map_err(|e| RestoreError::Write(format!("{}: {e}", target.location())))?;
        let (table, _) = table
            .restore()
            .with_version_to_restore(version)
            .await
            .map_err(|e| {
                let message = e.to_string();
                if is_missing_file(&message) {
                    RestoreError::Unreadable(format!(
                        "{} cannot be restored to version {version}: a data file of that version is gone (removed by VACUUM?): {message}",
                        target.location()
                    ))
                } else {
                    RestoreError::Write(format!(
                        "restoring {} to version {version} failed: {message}",
                        target.location()
                    ))
                }
            })?;
        let info = table::describe(&table)
            .await
            .map_err(|e| RestoreError::Write(format!("{}: {e}", target.location())))?;
        Ok((info.files.len(), info.bytes()))
    };
    timed(snapshot, progress, restored).await
}

/// Runs `work` (which returns the files and bytes of the table it wrote) as the restore phase,
/// with progress over the snapshot's files.
async fn timed(
    snapshot: &Snapshot,
    progress: &dyn CopyProgress,
    work: impl std::future::Future<Output = Result<(usize, u64), RestoreError>>,
) -> Result<RestoreOutcome, RestoreError> {
    let started = Instant::now();
    if let Ok(info) = &snapshot.table {
        progress.start(info.files.len(), info.bytes());
    }
    let written = work.await;
    if let Ok((_, bytes)) = &written {
        progress.copied(*bytes);
    }
    progress.finish();
    let (files, bytes) = written?;
    let seconds = crate::clock::elapsed_seconds(started);
    Ok(RestoreOutcome {
        files,
        bytes,
        seconds,
        phases: vec![PhaseTime::new("restore", seconds)],
    })
}

/// Writes the version's rows into the sandbox; returns the files and bytes of the new table.
async fn write(
    snapshot: &Snapshot,
    version: u64,
    sandbox: &RunSandbox,
) -> Result<(usize, u64), RestoreError> {
    let source_dir = ReadOnlyDir::new(&snapshot.location);
    let unreadable = |e: &dyn std::fmt::Display| {
        RestoreError::Unreadable(format!(
            "the table's time-travel window is shorter than the job expects: {} cannot be read at version {version}: {e}",
            snapshot.location
        ))
    };
    let source = table::open_dir(&source_dir, Some(version))
        .await
        .map_err(|e| unreadable(&table::explain_log_error(&e)))?;
    let partition_columns = source
        .snapshot()
        .map_err(|e| unreadable(&e))?
        .metadata()
        .partition_columns()
        .to_vec();
    let ctx = scan::session();
    let provider = table::provider(&ctx, &source)
        .await
        .map_err(|e| unreadable(&e))?;
    let plan = ctx
        .read_table(provider)
        .map_err(|e| unreadable(&e))?
        .logical_plan()
        .clone();
    let options = sandbox.storage_options()?;
    let target = DeltaTable::try_from_url_with_storage_options(sandbox.url(), options)
        .await
        .map_err(|e| RestoreError::Write(format!("{}: {e}", sandbox.location())))?;
    let written = target
        .write(Vec::new())
        .with_input_plan(plan)
        .with_partition_columns(partition_columns)
        .await;
    let table = match written {
        Ok(table) => table,
        // Reading a data file the log still names but the store no longer has: VACUUM removed
        // the files of this version.
        Err(e) if is_missing_file(&e.to_string()) => {
            return Err(unreadable(&format!(
                "a data file of this version is gone (removed by VACUUM?): {e}"
            )));
        }
        Err(e) => {
            return Err(RestoreError::Write(format!(
                "writing version {version} of {} into {} failed: {e}",
                snapshot.location,
                sandbox.location()
            )));
        }
    };
    let info = table::describe(&table)
        .await
        .map_err(|e| RestoreError::Write(format!("{}: {e}", sandbox.location())))?;
    Ok((info.files.len(), info.bytes()))
}

fn is_missing_file(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("not found") || lower.contains("no such file") || lower.contains("nosuchkey")
}
