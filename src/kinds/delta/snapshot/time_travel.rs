//! `delta_time_travel`: a snapshot is a version of the source table's own history — the newest
//! version committed at or before a point in time, or a pinned version. What a runbook's
//! "read versionAsOf, then write" step can reach depends on what the log and the data files
//! still hold; a point older than that is reported as a time-travel window shorter than the job
//! expects.

use chrono::{DateTime, Utc};

use super::PointInTime;
use super::{RestoreMethod, Snapshot, SnapshotError, parse_pin, resolve};
use std::path::Path;

use crate::kinds::delta::table;
use crate::storage::{Location, ReadOnlyDir};

/// How many versions `list` describes, newest first.
const LISTED_VERSIONS: usize = 30;

/// The versions of the commit files in the table's `_delta_log`, ascending.
async fn commits(dir: &ReadOnlyDir) -> Result<Vec<u64>, SnapshotError> {
    let log = dir.child("_delta_log");
    let mut versions: Vec<u64> = log
        .list_files()
        .await?
        .iter()
        .filter_map(|f| {
            let name = f.relative.to_str()?;
            let digits = name.strip_suffix(".json")?;
            (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        })
        .collect();
    versions.sort_unstable();
    if versions.is_empty() {
        return Err(SnapshotError::OutsideWindow(format!(
            "{}: no commit files in _delta_log; the source is not a Delta table, or its log was removed",
            dir.location()
        )));
    }
    Ok(versions)
}

/// The commit time of one version, from its commit file's `commitInfo`.
async fn commit_time(dir: &ReadOnlyDir, version: u64) -> Result<DateTime<Utc>, SnapshotError> {
    let commit = dir
        .read(Path::new(&format!("_delta_log/{version:020}.json")))
        .await?;
    table::commit_time(&commit)
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| {
            SnapshotError::NoCommitTime(format!(
                "{}_delta_log/{version:020}.json has no commit time (commitInfo.timestamp); a point in time cannot be matched to a version",
                dir.location()
            ))
        })
}

/// The newest version committed at or before `at` (commit times rise with versions, so a
/// binary search reads a few commit files only).
async fn version_at(
    dir: &ReadOnlyDir,
    commits: &[u64],
    at: DateTime<Utc>,
) -> Result<u64, SnapshotError> {
    let oldest = commits[0];
    let oldest_time = commit_time(dir, oldest).await?;
    if oldest_time > at {
        let when = at.format("%Y-%m-%d %H:%M:%S UTC");
        return Err(if oldest == 0 {
            SnapshotError::NoneAt {
                location: dir.location().clone(),
                at,
                reason: format!(
                    "the table's first commit is later, at {}",
                    oldest_time.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            }
        } else {
            SnapshotError::OutsideWindow(format!(
                "the table's time-travel window is shorter than the job expects: the oldest version still in the log of {} is {oldest}, committed at {}, after {when}; older commits were removed (log retention, delta.logRetentionDuration)",
                dir.location(),
                oldest_time.format("%Y-%m-%d %H:%M:%S UTC"),
            ))
        });
    }
    // Invariant: commits[lo] was committed at or before `at`.
    let (mut lo, mut hi) = (0, commits.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if commit_time(dir, commits[mid]).await? <= at {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(commits[lo])
}

/// The table at `version` as a snapshot; a version the log or the files no longer hold is
/// outside the time-travel window.
async fn at_version(source: &Location, version: u64) -> Result<Snapshot, SnapshotError> {
    let dir = ReadOnlyDir::new(source);
    let loaded = match table::open_dir(&dir, Some(version)).await {
        Ok(t) => table::describe(&t).await,
        Err(e) => Err(e),
    };
    let info = loaded.map_err(|e| {
        SnapshotError::OutsideWindow(format!(
            "the table's time-travel window is shorter than the job expects: {source} cannot be read at version {version}: {}",
            table::explain_log_error(&e)
        ))
    })?;
    Ok(Snapshot {
        id: format!("v{version}"),
        location: source.clone(),
        named_time: info.commit_timestamp.unwrap_or_default(),
        table: Ok(info),
        method: RestoreMethod::Rewrite { version },
    })
}

pub(crate) async fn choose(
    source: &Location,
    at: PointInTime,
    pinned: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Snapshot, SnapshotError> {
    let point = match pinned {
        Some(text) => parse_pin(text, true)?,
        None => at,
    };
    let dir = ReadOnlyDir::new(source);
    let commits = commits(&dir).await?;
    let newest = *commits.last().expect("commits are never empty");
    let version = match (point, resolve(point, now)) {
        (PointInTime::Version(v), _) if v > newest => {
            return Err(SnapshotError::BadPin(
                format!("v{v}"),
                format!("the newest version of {source} is {newest}"),
            ));
        }
        (PointInTime::Version(v), _) if v < commits[0] => {
            return Err(SnapshotError::OutsideWindow(format!(
                "the table's time-travel window is shorter than the job expects: the oldest version still in the log of {source} is {}, and version {v} was asked for; older commits were removed (log retention)",
                commits[0]
            )));
        }
        (PointInTime::Version(v), _) => v,
        (_, Some(at)) => version_at(&dir, &commits, at).await?,
        (_, None) => unreachable!("only versions resolve to no time"),
    };
    at_version(source, version).await
}

/// The newest versions of the table, newest first (at most 30).
pub(crate) async fn list(source: &Location) -> Result<Vec<Snapshot>, SnapshotError> {
    let dir = ReadOnlyDir::new(source);
    let commits = commits(&dir).await?;
    let mut out = Vec::new();
    for version in commits.iter().rev().take(LISTED_VERSIONS) {
        out.push(match at_version(source, *version).await {
            Ok(s) => s,
            Err(e) => Snapshot {
                id: format!("v{version}"),
                location: source.clone(),
                named_time: DateTime::default(),
                table: Err(e.to_string()),
                method: RestoreMethod::Rewrite { version: *version },
            },
        });
    }
    Ok(out)
}
