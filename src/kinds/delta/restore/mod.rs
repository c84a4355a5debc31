//! Restore: materialise a snapshot in the run's sandbox, then verify its structure.

mod rewrite;
mod structure;

pub use crate::kinds::structure::{StructureReport, name_some};
pub use structure::verify_structure;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::kinds::delta::snapshot::{RestoreMethod, Snapshot};
pub use crate::kinds::restore::{CopyProgress, PhaseTime, RestoreError, RestoreOutcome};
use crate::storage::{FileEntry, ReadOnlyDir, RunSandbox, StorageError};

/// Materialises a snapshot in the run's sandbox the way its kind is restored: copy its objects,
/// copy the object versions current at its time, or rewrite a version of the table.
pub async fn restore(
    snapshot: &Snapshot,
    sandbox: &RunSandbox,
    concurrency: usize,
    progress: &dyn CopyProgress,
) -> Result<RestoreOutcome, RestoreError> {
    match &snapshot.method {
        RestoreMethod::CopyAll => {
            Ok(restore_copy(snapshot, None, sandbox, concurrency, progress).await?)
        }
        RestoreMethod::CopyVersions(files) => {
            Ok(restore_copy(snapshot, Some(files), sandbox, concurrency, progress).await?)
        }
        RestoreMethod::Rewrite { version } => {
            rewrite::rewrite(snapshot, *version, sandbox, progress).await
        }
        RestoreMethod::NewVersion { version } => {
            rewrite::new_version(snapshot, *version, sandbox, progress).await
        }
        RestoreMethod::PgRestore(_) => Err(RestoreError::Write(format!(
            "snapshot {} is a PostgreSQL dump, not a Delta table",
            snapshot.id
        ))),
    }
}

/// Copies the files of a snapshot (log and data) into the sandbox, as `cp --recursive` in the
/// runbook would, at most `concurrency` files at a time: every file under its location, or
/// the object versions given.
async fn restore_copy(
    snapshot: &Snapshot,
    versions: Option<&[FileEntry]>,
    sandbox: &RunSandbox,
    concurrency: usize,
    progress: &dyn CopyProgress,
) -> Result<RestoreOutcome, StorageError> {
    let started = Instant::now();
    let from = ReadOnlyDir::new(&snapshot.location);
    let files = match versions {
        Some(files) => files.to_vec(),
        None => from.list_files().await?,
    };
    let total: u64 = files.iter().map(|f| f.size).sum();
    progress.start(files.len(), total);
    let copied = AtomicU64::new(0);
    let on_copied = |bytes: u64| {
        copied.fetch_add(bytes, Ordering::Relaxed);
        progress.copied(bytes);
    };
    let result = sandbox
        .copy_in(&from, &files, concurrency, &on_copied)
        .await;
    progress.finish();
    result?;
    let seconds = crate::clock::elapsed_seconds(started);
    Ok(RestoreOutcome {
        files: files.len(),
        bytes: copied.load(Ordering::Relaxed),
        seconds,
        phases: vec![PhaseTime::new("restore", seconds)],
    })
}
