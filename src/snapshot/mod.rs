//! Snapshots: the restorable points of a source, found by the job's snapshot kind.

mod delta_copy;
mod pattern;

pub use pattern::{Placeholder, SnapshotPattern};

use chrono::{DateTime, Utc};

use crate::config::SnapshotSource;
use crate::storage::{Location, StorageError};
use crate::table::TableInfo;

/// One restorable point of a source.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The snapshot's name: its folder name for `delta_copy`.
    pub id: String,
    pub location: Location,
    /// The time in the snapshot's name.
    pub named_time: DateTime<Utc>,
    /// What the snapshot's log says, or why it could not be read.
    pub table: Result<TableInfo, String>,
}

impl Snapshot {
    pub fn version(&self) -> Option<u64> {
        self.table.as_ref().ok().map(|t| t.version)
    }

    pub fn commit_timestamp(&self) -> Option<DateTime<Utc>> {
        self.table.as_ref().ok().and_then(|t| t.commit_timestamp)
    }
}

/// Discovery could not produce a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "no snapshot in {location} matches the pattern `{pattern}` ({seen} folders looked at); check `snapshots.location` and `snapshots.pattern`, and that the backup job ran"
    )]
    NoneFound {
        location: Location,
        pattern: String,
        seen: usize,
    },
    #[error("no snapshot named `{id}` in {location}; snapshots there: {available}")]
    NotFound {
        id: String,
        location: Location,
        available: String,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Every snapshot of a source, newest first.
pub async fn list(source: &SnapshotSource) -> Result<Vec<Snapshot>, SnapshotError> {
    match source {
        SnapshotSource::DeltaCopy { location, pattern } => {
            delta_copy::list(location, pattern).await
        }
    }
}

/// The newest snapshot, or the one named `pinned`.
pub async fn choose(
    source: &SnapshotSource,
    pinned: Option<&str>,
) -> Result<Snapshot, SnapshotError> {
    match source {
        SnapshotSource::DeltaCopy { location, pattern } => match pinned {
            Some(id) => delta_copy::named(location, pattern, id).await,
            None => delta_copy::newest(location, pattern).await,
        },
    }
}
