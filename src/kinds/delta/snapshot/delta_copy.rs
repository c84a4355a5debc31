//! `delta_copy`: each folder under the backup location whose name matches the pattern is a
//! complete copy of the Delta table. The newest is the latest time in its name; the newest
//! commit in its log breaks ties.

use std::cmp::Reverse;

use chrono::{DateTime, Utc};

use super::{RestoreMethod, Snapshot, SnapshotError, SnapshotPattern};
use crate::kinds::delta::table;
use crate::storage::{Location, ReadOnlyDir};

struct Candidate {
    name: String,
    named_time: DateTime<Utc>,
}

async fn candidates(
    location: &Location,
    pattern: &SnapshotPattern,
) -> Result<Vec<Candidate>, SnapshotError> {
    let dir = ReadOnlyDir::new(location);
    let folders = dir.list_folders().await?;
    let seen = folders.len();
    let mut found: Vec<Candidate> = folders
        .into_iter()
        .filter_map(|name| {
            pattern
                .matches(&name)
                .map(|named_time| Candidate { name, named_time })
        })
        .collect();
    if found.is_empty() {
        return Err(SnapshotError::NoneFound {
            location: location.clone(),
            pattern: pattern.to_string(),
            seen,
        });
    }
    found.sort_by_key(|c| Reverse(c.named_time));
    Ok(found)
}

async fn describe(location: &Location, candidate: Candidate) -> Snapshot {
    let dir = ReadOnlyDir::new(location).child(&candidate.name);
    let table = match table::open_dir(&dir, None).await {
        Ok(t) => table::describe(&t)
            .await
            .map_err(|e| table::explain_log_error(&e)),
        Err(e) => Err(table::explain_log_error(&e)),
    };
    Snapshot {
        id: candidate.name,
        location: dir.location().clone(),
        named_time: candidate.named_time,
        table,
        method: RestoreMethod::CopyAll,
    }
}

/// Newest first: by the time in the name, then by the newest commit (unreadable logs last).
fn newest_first(snapshots: &mut [Snapshot]) {
    snapshots.sort_by_key(|s| Reverse((s.named_time, s.commit_timestamp())));
}

pub(crate) async fn list(
    location: &Location,
    pattern: &SnapshotPattern,
) -> Result<Vec<Snapshot>, SnapshotError> {
    let mut out = Vec::new();
    for c in candidates(location, pattern).await? {
        out.push(describe(location, c).await);
    }
    newest_first(&mut out);
    Ok(out)
}

pub async fn newest(
    location: &Location,
    pattern: &SnapshotPattern,
) -> Result<Snapshot, SnapshotError> {
    let all = candidates(location, pattern).await?;
    let newest_time = all[0].named_time;
    let mut tied = Vec::new();
    for c in all.into_iter().take_while(|c| c.named_time == newest_time) {
        tied.push(describe(location, c).await);
    }
    newest_first(&mut tied);
    Ok(tied.swap_remove(0))
}

pub async fn named(
    location: &Location,
    pattern: &SnapshotPattern,
    id: &str,
) -> Result<Snapshot, SnapshotError> {
    let all = candidates(location, pattern).await?;
    let names: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
    match all.into_iter().find(|c| c.name == id.trim_end_matches('/')) {
        Some(c) => Ok(describe(location, c).await),
        None => Err(SnapshotError::NotFound {
            id: id.to_string(),
            location: location.clone(),
            available: names.join(", "),
        }),
    }
}
