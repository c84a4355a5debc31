//! Restore: materialise a snapshot in the run's sandbox, then verify its structure.

mod structure;

pub use structure::{StructureReport, name_some, verify_structure};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::snapshot::Snapshot;
use crate::storage::{ReadOnlyDir, RunSandbox, StorageError};

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// Progress of a copy: told the totals first, then each file's bytes as they land.
pub trait CopyProgress: Sync {
    fn start(&self, files: usize, bytes: u64);
    fn copied(&self, bytes: u64);
    fn finish(&self);
}

/// Copies every file of a `delta_copy` snapshot (log and data) into the sandbox, as
/// `cp --recursive` in the runbook would, at most `concurrency` files at a time.
pub async fn restore_copy(
    snapshot: &Snapshot,
    sandbox: &RunSandbox,
    concurrency: usize,
    progress: &dyn CopyProgress,
) -> Result<RestoreOutcome, StorageError> {
    let started = Instant::now();
    let from = ReadOnlyDir::new(&snapshot.location);
    let files = from.list_files().await?;
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
    Ok(RestoreOutcome {
        files: files.len(),
        bytes: copied.load(Ordering::Relaxed),
        seconds: crate::clock::elapsed_seconds(started),
    })
}
