//! A Delta job's `snapshots` table: the kind (`delta_copy`, `delta_time_travel`,
//! `s3_versions`) and its settings, read with every problem reported at its position.

use std::path::Path;

use chrono::DateTime;

use super::snapshot::{PointInTime, SnapshotPattern, SnapshotSource};
use crate::primitives::fields::{Fields, Located, Problems};
use crate::storage::Location;

/// A snapshot source as read, before the job's storage profiles are applied.
pub struct SnapshotSpec {
    kind: SnapshotKindSpec,
    /// `snapshots.storage`: the profile of the backup location, when it differs from the job's.
    pub storage: Option<Located<String>>,
}

/// The kinds with their settings; time travel has no backup location (it reads the source).
enum SnapshotKindSpec {
    DeltaCopy {
        location: Location,
        pattern: SnapshotPattern,
    },
    TimeTravel(PointInTime),
    Versions {
        location: Location,
        at: PointInTime,
    },
}

impl SnapshotSpec {
    /// The backup location, if the kind has one.
    pub fn location(&self) -> Option<&Location> {
        match &self.kind {
            SnapshotKindSpec::DeltaCopy { location, .. }
            | SnapshotKindSpec::Versions { location, .. } => Some(location),
            SnapshotKindSpec::TimeTravel(_) => None,
        }
    }

    pub(crate) fn location_mut(&mut self) -> Option<&mut Location> {
        match &mut self.kind {
            SnapshotKindSpec::DeltaCopy { location, .. }
            | SnapshotKindSpec::Versions { location, .. } => Some(location),
            SnapshotKindSpec::TimeTravel(_) => None,
        }
    }

    pub(crate) fn into_source(self, source: &Location) -> SnapshotSource {
        match self.kind {
            SnapshotKindSpec::DeltaCopy { location, pattern } => {
                SnapshotSource::DeltaCopy { location, pattern }
            }
            SnapshotKindSpec::TimeTravel(at) => SnapshotSource::DeltaTimeTravel {
                source: source.clone(),
                at,
            },
            SnapshotKindSpec::Versions { location, at } => {
                SnapshotSource::S3Versions { location, at }
            }
        }
    }
}

pub(crate) const SNAPSHOT_KINDS: &str = "\"delta_copy\", \"delta_time_travel\" or \"s3_versions\"";

pub fn read(f: &mut Fields, base: &Path, p: &mut Problems) -> Option<Located<SnapshotSpec>> {
    let context = format!("{} snapshots", f.context());
    let mut s = f.required_table(
        "snapshots",
        "e.g. { kind = \"delta_copy\", location = \"/backups/daily\", pattern = \"orders_{date}\" }",
        context,
        p,
    )?;
    let at = s.at();
    let kind = s.required_string("kind", SNAPSHOT_KINDS, p);
    let storage = s.string("storage", p);
    let spec = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("delta_copy") => {
            let location = Location::read(
                &mut s,
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
                .map(|(location, pattern)| SnapshotSpec {
                    kind: SnapshotKindSpec::DeltaCopy {
                        location: location.value,
                        pattern,
                    },
                    storage,
                })
        }
        Some("delta_time_travel") => {
            let point = point_in_time(&mut s, true, p);
            if let Some(storage) = &storage {
                p.report(
                    storage.at,
                    format!(
                        "{}: a delta_time_travel snapshot is read from the source; set `source_storage` on the job instead",
                        s.context()
                    ),
                );
            }
            point.map(|at| SnapshotSpec {
                kind: SnapshotKindSpec::TimeTravel(at),
                storage: None,
            })
        }
        Some("s3_versions") => {
            let location = Location::read(
                &mut s,
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
            let point = point_in_time(&mut s, false, p);
            location.zip(point).map(|(location, at)| SnapshotSpec {
                kind: SnapshotKindSpec::Versions {
                    location: location.value,
                    at,
                },
                storage,
            })
        }
        Some(other) => {
            p.report(
                kind.as_ref().map_or(at, |k| k.at),
                format!(
                    "{}: unknown snapshot kind `{other}`; use {SNAPSHOT_KINDS}",
                    s.context()
                ),
            );
            None
        }
        None => None,
    };
    s.finish(p);
    spec.map(|spec| Located::new(spec, at))
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
