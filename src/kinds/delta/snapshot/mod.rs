//! Delta snapshots: the dated copies (`delta_copy`), the versions of the table's own history
//! (`delta_time_travel`) and the state of a versioned prefix (`s3_versions`).

mod delta_copy;
mod time_travel;
mod versions;

pub use crate::kinds::pattern::{Placeholder, SnapshotPattern};
pub use crate::kinds::snapshot::{
    PointInTime, RestoreMethod, Snapshot, SnapshotError, SnapshotSource,
};

use chrono::{DateTime, Utc};

/// The time a `lag` or `timestamp` points at.
fn resolve(at: PointInTime, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match at {
        PointInTime::Lag(lag) => Some(now - chrono::Duration::from_std(lag).unwrap_or_default()),
        PointInTime::Timestamp(t) => Some(t),
        PointInTime::Version(_) => None,
    }
}

/// The snapshots of a source, newest first: every `delta_copy` folder, the newest versions of
/// a time-travelled table, or the state of a versioned prefix at the job's point in time.
pub(crate) async fn list(
    source: &SnapshotSource,
    now: DateTime<Utc>,
) -> Result<Vec<Snapshot>, SnapshotError> {
    match source {
        SnapshotSource::DeltaCopy {
            location, pattern, ..
        } => delta_copy::list(location, pattern).await,
        SnapshotSource::DeltaTimeTravel { source, .. } => time_travel::list(source).await,
        SnapshotSource::S3Versions { location, at, .. } => {
            Ok(vec![versions::choose(location, *at, None, now).await?])
        }
        SnapshotSource::PgDump(_) => Err(SnapshotError::BadPin(
            source.kind().into(),
            "not a Delta snapshot kind".into(),
        )),
    }
}

/// The snapshot a drill restores now: the newest, the one at the job's point in time, or the
/// one named by `pinned` (a folder name, a version `v42`, or an RFC 3339 time).
pub(crate) async fn choose(
    source: &SnapshotSource,
    pinned: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Snapshot, SnapshotError> {
    match source {
        SnapshotSource::DeltaCopy {
            location, pattern, ..
        } => match pinned {
            Some(id) => delta_copy::named(location, pattern, id).await,
            None => delta_copy::newest(location, pattern).await,
        },
        SnapshotSource::DeltaTimeTravel { source, at } => {
            time_travel::choose(source, *at, pinned, now).await
        }
        SnapshotSource::S3Versions { location, at, .. } => {
            versions::choose(location, *at, pinned, now).await
        }
        SnapshotSource::PgDump(_) => Err(SnapshotError::BadPin(
            source.kind().into(),
            "not a Delta snapshot kind".into(),
        )),
    }
}

/// A pinned point in time: `v42` or `42` (a version, where `versions` allows) or an RFC 3339
/// time.
fn parse_pin(text: &str, versions: bool) -> Result<PointInTime, SnapshotError> {
    let digits = text.strip_prefix('v').unwrap_or(text);
    if versions && let Ok(v) = digits.parse::<u64>() {
        return Ok(PointInTime::Version(v));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| PointInTime::Timestamp(t.to_utc()))
        .map_err(|_| {
            SnapshotError::BadPin(
                text.to_string(),
                if versions {
                    "give a version such as v42, or a time such as 2026-11-28T02:00:00Z".into()
                } else {
                    "give a time such as 2026-11-28T02:00:00Z".into()
                },
            )
        })
}
