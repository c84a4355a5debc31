//! `s3_versions`: a snapshot is the state of a prefix in a versioned bucket at a point in time.
//! For each key, the version that was current then is restored; keys whose current version
//! then was a delete marker (deleted at that time) and keys written later are left out.

use chrono::{DateTime, Utc};

use super::PointInTime;
use super::{RestoreMethod, Snapshot, SnapshotError, parse_pin, resolve};
use crate::storage::s3::{self, ObjectVersion};
use crate::storage::{Backend, FileEntry, Location, S3Prefix};

pub(crate) async fn choose(
    location: &Location,
    at: PointInTime,
    pinned: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Snapshot, SnapshotError> {
    let point = match pinned {
        Some(text) => parse_pin(text, false)?,
        None => at,
    };
    let at = resolve(point, now).expect("s3_versions points are times");
    let Backend::S3(S3Prefix {
        bucket,
        prefix,
        profile,
    }) = location.backend()
    else {
        return Err(SnapshotError::NotOnS3(location.clone()));
    };
    let status = s3::versioning(&profile, bucket).await?;
    if status != "Enabled" && status != "Suspended" {
        return Err(SnapshotError::NotVersioned {
            location: location.clone(),
            bucket: bucket.to_string(),
            status,
        });
    }
    let history = s3::list_versions(&profile, bucket, prefix).await?;
    let listed = history.len();
    let files = state_at(history, at);
    if files.is_empty() {
        return Err(SnapshotError::NoneAt {
            location: location.clone(),
            at,
            reason: format!(
                "of the {listed} versions and delete markers listed, none was current then; check `lag`/`timestamp`, and how long the bucket's lifecycle rules keep noncurrent versions"
            ),
        });
    }
    Ok(Snapshot {
        id: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        location: location.clone(),
        named_time: at,
        table: Err("an s3_versions snapshot's log is read once it is restored".into()),
        method: RestoreMethod::CopyVersions(files),
    })
}

/// For each key, the version current at `at`: the newest version or delete marker written at
/// or before it, unless that was a delete marker.
fn state_at(mut history: Vec<ObjectVersion>, at: DateTime<Utc>) -> Vec<FileEntry> {
    // Newest first within each key. S3 lists versions and delete markers apart, so for equal
    // times (object times have a resolution of a second) the delete marker is taken as the
    // newer: a key written and deleted within one second counts as deleted.
    history.sort_by(|a, b| {
        a.relative
            .cmp(&b.relative)
            .then(b.last_modified.cmp(&a.last_modified))
            .then(b.delete_marker.cmp(&a.delete_marker))
    });
    let mut files = Vec::new();
    let mut previous: Option<&str> = None;
    for version in &history {
        if previous == Some(version.relative.as_str()) || version.last_modified > at {
            continue;
        }
        previous = Some(&version.relative);
        if !version.delete_marker {
            files.push(FileEntry {
                relative: version.relative.clone().into(),
                size: version.size,
                etag: version.etag.clone(),
                version_id: Some(version.version_id.clone()),
            });
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(key: &str, id: &str, at: &str, delete_marker: bool) -> ObjectVersion {
        ObjectVersion {
            relative: key.into(),
            version_id: id.into(),
            last_modified: DateTime::parse_from_rfc3339(at).unwrap().to_utc(),
            size: 10,
            etag: None,
            delete_marker,
        }
    }

    #[test]
    fn the_version_current_at_the_time_is_chosen_and_deleted_keys_are_left_out() {
        let history = vec![
            version("a.parquet", "a2", "2026-11-28T12:00:00Z", false),
            version("a.parquet", "a1", "2026-11-28T08:00:00Z", false),
            version("b.parquet", "bdel", "2026-11-28T09:00:00Z", true),
            version("b.parquet", "b1", "2026-11-28T07:00:00Z", false),
            version("c.parquet", "c1", "2026-11-28T11:00:00Z", false),
            version("d.parquet", "ddel", "2026-11-28T11:00:00Z", true),
            version("d.parquet", "d1", "2026-11-28T06:00:00Z", false),
            version("e.parquet", "e1", "2026-11-28T09:30:00Z", false),
            version("e.parquet", "edel", "2026-11-28T09:30:00Z", true),
        ];
        let at = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .to_utc();
        let chosen: Vec<(String, String)> = state_at(history, at)
            .into_iter()
            .map(|f| (f.relative.display().to_string(), f.version_id.unwrap()))
            .collect();
        assert_eq!(
            chosen,
            vec![
                ("a.parquet".to_string(), "a1".to_string()),
                ("d.parquet".to_string(), "d1".to_string()),
            ]
        );
    }
}
