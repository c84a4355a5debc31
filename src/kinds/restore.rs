//! What a restore into a run's sandbox did, or why it did not complete, for every kind of data;
//! and how it reports progress.

use serde::Serialize;

use crate::storage::StorageError;

/// Why a restore did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The snapshot's data could not be read (time travel: the version's files are gone).
    #[error("{0}")]
    Unreadable(String),
    /// Writing the restored table failed.
    #[error("{0}")]
    Write(String),
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// The restore's phases and their seconds (`restore`; `fetch` and `restore` for a dump).
    pub phases: Vec<PhaseTime>,
}

/// One phase of a drill and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PhaseTime {
    pub phase: String,
    pub seconds: f64,
}

impl PhaseTime {
    pub fn new(phase: &str, seconds: f64) -> Self {
        PhaseTime {
            phase: phase.into(),
            seconds: (seconds * 1000.0).round() / 1000.0,
        }
    }
}

/// Progress of a copy: told the totals first, then each file's bytes as they land.
pub trait CopyProgress: Send + Sync {
    fn start(&self, files: usize, bytes: u64);
    fn copied(&self, bytes: u64);
    fn finish(&self);
}
