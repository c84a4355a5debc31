//! Snapshots: the restorable points of a source, found by the job's snapshot kind, and how each
//! is materialised in a sandbox — the descriptions every kind of data fills and the drill reads.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::delta::table::TableInfo;
use super::pattern::SnapshotPattern;
use super::postgres::settings::DumpSettings;
use super::postgres::snapshot::Dump;
use crate::storage::{FileEntry, Location, StorageError};

/// Where a job's snapshots are and what they are.
#[derive(Debug, Clone)]
pub enum SnapshotSource {
    /// Complete copies of the Delta table, one folder each, named by `pattern`.
    DeltaCopy {
        location: Location,
        pattern: SnapshotPattern,
        source: Location,
    },
    /// Versions of the source table's own history.
    DeltaTimeTravel { source: Location, at: PointInTime },
    /// The state of a prefix in a versioned bucket at a point in time.
    S3Versions {
        location: Location,
        at: PointInTime,
        source: Location,
    },
    /// PostgreSQL dumps named by `pattern` under a location, and the database they are of.
    PgDump(Box<DumpSettings>),
}

/// Which point of the past a time-travel or versioned-bucket drill restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointInTime {
    /// The newest state at or before `now - lag`.
    Lag(Duration),
    /// The newest state at or before this time.
    Timestamp(DateTime<Utc>),
    /// This version of the table (time travel only).
    Version(u64),
}

impl SnapshotSource {
    pub fn kind(&self) -> &'static str {
        match self {
            SnapshotSource::DeltaCopy { .. } => "delta_copy",
            SnapshotSource::DeltaTimeTravel { .. } => "delta_time_travel",
            SnapshotSource::S3Versions { .. } => "s3_versions",
            SnapshotSource::PgDump(_) => "pg_dump",
        }
    }

    /// Where the snapshots are read from (read-only to every drill): the backup location, or
    /// the source for time travel.
    pub fn location(&self) -> &Location {
        match self {
            SnapshotSource::DeltaCopy { location, .. }
            | SnapshotSource::S3Versions { location, .. } => location,
            SnapshotSource::DeltaTimeTravel { source, .. } => source,
            SnapshotSource::PgDump(settings) => &settings.location,
        }
    }
}

/// One restorable point of a source.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The snapshot's name: its folder name (`delta_copy`), `v<version>` (`delta_time_travel`)
    /// or the point in time (`s3_versions`).
    pub id: String,
    /// Where it is read from.
    pub location: Location,
    /// The time in the snapshot's name, the version's commit time, or the point in time.
    pub named_time: DateTime<Utc>,
    /// What the snapshot's log says, or why it could not be read (for `s3_versions`, known
    /// only once it is restored).
    pub table: Result<TableInfo, String>,
    pub method: RestoreMethod,
}

/// How a snapshot is materialised in a sandbox.
#[derive(Debug, Clone)]
pub enum RestoreMethod {
    /// Copy every object under the snapshot's location.
    CopyAll,
    /// Read the table at the snapshot's location at this version and write its rows as a new
    /// table.
    Rewrite { version: u64 },
    /// A restore for real of a time-travel snapshot into the table itself: Delta's restore, a
    /// new commit whose contents are this version's (every version stays in the history).
    NewVersion { version: u64 },
    /// Copy these versions of the objects under the snapshot's location.
    CopyVersions(Vec<FileEntry>),
    /// Fetch this dump into the run's folder and restore it into a throwaway server.
    PgRestore(Box<Dump>),
}

impl Snapshot {
    pub fn version(&self) -> Option<u64> {
        self.table.as_ref().ok().map(|t| t.version)
    }

    /// The time the snapshot's data is as of: its newest commit, or a dump's creation time.
    pub fn commit_timestamp(&self) -> Option<DateTime<Utc>> {
        if let RestoreMethod::PgRestore(dump) = &self.method {
            return Some(dump.time);
        }
        self.table.as_ref().ok().and_then(|t| t.commit_timestamp)
    }
}

/// Discovery could not produce a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "no snapshot in {location} matches the pattern `{pattern}` ({seen} names looked at); check `snapshots.location` and `snapshots.pattern`, and that the backup job ran"
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
    /// The point in time asked for is older than the history the table or bucket still keeps.
    /// A drill reports this as a failure: the time-travel window is shorter than the job expects.
    #[error("{0}")]
    OutsideWindow(String),
    #[error(
        "{location}: the bucket `{bucket}` does not keep object versions (versioning is {status}); an s3_versions snapshot needs a bucket with versioning enabled"
    )]
    NotVersioned {
        location: Location,
        bucket: String,
        status: String,
    },
    #[error(
        "{0}: an s3_versions snapshot lives in a versioned S3 bucket; give an s3://bucket/prefix/ location"
    )]
    NotOnS3(Location),
    #[error("{location} held nothing at {at}: {reason}")]
    NoneAt {
        location: Location,
        at: DateTime<Utc>,
        reason: String,
    },
    /// A commit file the search for a point in time read has no commit time.
    #[error("{0}")]
    NoCommitTime(String),
    #[error("`{0}` names no snapshot of this kind: {1}")]
    BadPin(String, String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}
