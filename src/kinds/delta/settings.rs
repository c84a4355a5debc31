//! A job's `snapshots` table: the kind (`delta_copy`, `delta_time_travel`, `s3_versions`, or
//! `pg_dump`, whose settings `kinds/postgres/settings.rs` reads) and its settings, read with
//! every problem reported at its position.

use std::path::Path;

use chrono::DateTime;

use super::snapshot::{PointInTime, SnapshotPattern, SnapshotSource};
use crate::kinds::Source;
use crate::kinds::postgres::settings::{DumpOptions, DumpSettings, read_dump};
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
    PgDump {
        location: Location,
        pattern: SnapshotPattern,
        options: DumpOptions,
    },
}

impl SnapshotSpec {
    /// The backup location, if the kind has one.
    pub fn location(&self) -> Option<&Location> {
        match &self.kind {
            SnapshotKindSpec::DeltaCopy { location, .. }
            | SnapshotKindSpec::Versions { location, .. }
            | SnapshotKindSpec::PgDump { location, .. } => Some(location),
            SnapshotKindSpec::TimeTravel(_) => None,
        }
    }

    /// Whether the job's source is a live database (else a Delta table's folder).
    pub fn reads_database(&self) -> bool {
        matches!(self.kind, SnapshotKindSpec::PgDump { .. })
    }

    pub(crate) fn location_mut(&mut self) -> Option<&mut Location> {
        match &mut self.kind {
            SnapshotKindSpec::DeltaCopy { location, .. }
            | SnapshotKindSpec::Versions { location, .. }
            | SnapshotKindSpec::PgDump { location, .. } => Some(location),
            SnapshotKindSpec::TimeTravel(_) => None,
        }
    }

    /// The job's snapshots with the source they are compared with; an error when the source is
    /// not of the kind's family (a Delta kind with a database, or the reverse).
    pub(crate) fn into_source(self, source: &Source) -> Result<SnapshotSource, String> {
        let kind = match &self.kind {
            SnapshotKindSpec::PgDump { .. } => "pg_dump",
            _ => "Delta",
        };
        match (self.kind, source) {
            (SnapshotKindSpec::DeltaCopy { location, pattern }, Source::Storage(source)) => {
                Ok(SnapshotSource::DeltaCopy {
                    location,
                    pattern,
                    source: source.clone(),
                })
            }
            (SnapshotKindSpec::TimeTravel(at), Source::Storage(source)) => {
                Ok(SnapshotSource::DeltaTimeTravel {
                    source: source.clone(),
                    at,
                })
            }
            (SnapshotKindSpec::Versions { location, at }, Source::Storage(source)) => {
                Ok(SnapshotSource::S3Versions {
                    location,
                    at,
                    source: source.clone(),
                })
            }
            (
                SnapshotKindSpec::PgDump {
                    location,
                    pattern,
                    options,
                },
                Source::Postgres(db),
            ) => Ok(SnapshotSource::PgDump(Box::new(DumpSettings {
                location,
                pattern,
                postgres_bin: options.postgres_bin,
                postgres_user: options.postgres_user,
                owners: options.owners,
                dump_timezone: options.dump_timezone,
                source: db.clone(),
                schema_differences: options.schema_differences,
            }))),
            (_, source) => Err(format!(
                "a {kind} job cannot drill against the source {source}"
            )),
        }
    }
}

pub(crate) const SNAPSHOT_KINDS: &str =
    "\"delta_copy\", \"delta_time_travel\", \"s3_versions\" or \"pg_dump\"";

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
        Some("pg_dump") => {
            read_dump(&mut s, base, p).map(|(location, pattern, options)| SnapshotSpec {
                kind: SnapshotKindSpec::PgDump {
                    location,
                    pattern,
                    options,
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
