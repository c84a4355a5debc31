//! The Delta kinds' settings in a job's `snapshots` table: `delta_copy` (`location`,
//! `pattern`), `delta_time_travel` (a point in time of the source's own history) and
//! `s3_versions` (`location` in a versioned bucket and a point in time).

use std::path::Path;

use chrono::DateTime;

use crate::kinds::pattern::SnapshotPattern;
use crate::kinds::settings::SnapshotKindSpec;
use crate::kinds::snapshot::PointInTime;
use crate::primitives::fields::{Fields, Located, Problems};
use crate::storage::Location;

/// Reads the settings of the Delta kind `name` (`kind` and `storage` already read).
pub(crate) fn read_kind(
    name: &str,
    s: &mut Fields,
    base: &Path,
    storage: &Option<Located<String>>,
    p: &mut Problems,
) -> Option<SnapshotKindSpec> {
    match name {
        "delta_copy" => {
            let location = Location::read(
                s,
                "location",
                "the folder holding the snapshot folders",
                base,
                p,
            );
            let pattern = s
                .required_string(
                    "pattern",
                    "the snapshot folder name, e.g. \"orders_{date}\"",
                    p,
                )
                .and_then(|text| match SnapshotPattern::parse(&text.value) {
                    Ok(pattern) => Some(pattern),
                    Err(e) => {
                        p.report(text.at, format!("{}: {e}", s.context()));
                        None
                    }
                });
            location
                .zip(pattern)
                .map(|(location, pattern)| SnapshotKindSpec::DeltaCopy {
                    location: location.value,
                    pattern,
                })
        }
        "delta_time_travel" => {
            let point = point_in_time(s, true, p);
            if let Some(storage) = storage {
                p.report(
                    storage.at,
                    format!(
                        "{}: a delta_time_travel snapshot is read from the source; set `source_storage` on the job instead",
                        s.context()
                    ),
                );
            }
            point.map(SnapshotKindSpec::TimeTravel)
        }
        "s3_versions" => {
            let location = Location::read(
                s,
                "location",
                "the prefix in a versioned bucket, e.g. \"s3://lake/orders/\"",
                base,
                p,
            )
            .filter(|l| {
                let on_s3 = l.value.is_s3();
                if !on_s3 {
                    p.report(
                        l.at,
                        format!(
                            "{}: an s3_versions snapshot lives in a versioned S3 bucket; give an s3://bucket/prefix/ location",
                            s.context()
                        ),
                    );
                }
                on_s3
            });
            let point = point_in_time(s, false, p);
            location
                .zip(point)
                .map(|(location, at)| SnapshotKindSpec::Versions {
                    location: location.value,
                    at,
                })
        }
        _ => None,
    }
}

/// The point in time a snapshot is taken at: `lag` (before now), `timestamp`, or — for time
/// travel — `version`; exactly one.
pub(crate) fn point_in_time(
    s: &mut Fields,
    versions: bool,
    p: &mut Problems,
) -> Option<PointInTime> {
    let lag = s.duration("lag", p);
    let timestamp = s.string("timestamp", p);
    let version = if versions {
        s.integer("version", p)
    } else {
        None
    };
    let choices = if versions {
        "`lag` (e.g. \"24h\"), `timestamp` (e.g. \"2026-11-28T00:00:00Z\") or `version` (e.g. 42)"
    } else {
        "`lag` (e.g. \"1h\") or `timestamp` (e.g. \"2026-11-28T00:00:00Z\")"
    };
    let given = [
        lag.as_ref().is_some_and(Option::is_some),
        timestamp.is_some(),
        version.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            p.report(
                s.at(),
                format!(
                    "{}: give the point in time to restore: {choices}",
                    s.context()
                ),
            );
            return None;
        }
        1 => {}
        _ => {
            p.report(
                s.at(),
                format!("{}: give only one of {choices}", s.context()),
            );
            return None;
        }
    }
    if let Some(Some(lag)) = lag {
        return Some(PointInTime::Lag(lag.value));
    }
    if let Some(text) = timestamp {
        return match DateTime::parse_from_rfc3339(&text.value) {
            Ok(t) => Some(PointInTime::Timestamp(t.to_utc())),
            Err(e) => {
                p.report(
                    text.at,
                    format!(
                        "{}: `timestamp` `{}` is not an RFC 3339 time such as \"2026-11-28T00:00:00Z\": {e}",
                        s.context(),
                        text.value
                    ),
                );
                None
            }
        };
    }
    match version {
        Some(v) if v.value >= 0 => Some(PointInTime::Version(v.value as u64)),
        Some(v) => {
            p.report(
                v.at,
                format!(
                    "{}: `version` must be 0 or more, found {}",
                    s.context(),
                    v.value
                ),
            );
            None
        }
        None => None,
    }
}
