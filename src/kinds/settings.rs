//! A job's `snapshots` table: its `kind` chooses the family whose reader takes the rest
//! (`kinds/delta/settings.rs`: `delta_copy`, `delta_time_travel`, `s3_versions`;
//! `kinds/postgres/settings.rs`: `pg_dump`), every problem reported at its position.

use std::path::Path;

use super::Source;
use super::pattern::SnapshotPattern;
use super::postgres::settings::{DumpOptions, DumpSettings, read_dump};
use super::snapshot::{PointInTime, SnapshotSource};
use crate::primitives::fields::{Fields, Located, Problems};
use crate::storage::Location;

/// A snapshot source as read, before the job's storage profiles are applied.
pub struct SnapshotSpec {
    pub(crate) kind: SnapshotKindSpec,
    /// `snapshots.storage`: the profile of the backup location, when it differs from the job's.
    pub storage: Option<Located<String>>,
}

/// The kinds with their settings; time travel has no backup location (it reads the source).
pub(crate) enum SnapshotKindSpec {
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
            ) => {
                if let Some(sandbox) = &options.sandbox_server
                    && sandbox.same_database(db)
                {
                    return Err(format!(
                        "`sandbox_server` {sandbox} names the source's own server and database: a drill never restores where the source lives; name a database of a sandbox server (each run creates a database of its own there and drops it afterwards)"
                    ));
                }
                Ok(SnapshotSource::PgDump(Box::new(DumpSettings {
                    location,
                    pattern,
                    postgres_bin: options.postgres_bin,
                    postgres_user: options.postgres_user,
                    owners: options.owners,
                    dump_timezone: options.dump_timezone,
                    source: db.clone(),
                    sandbox_server: options.sandbox_server,
                    restore_into: None,
                    schema_differences: options.schema_differences,
                })))
            }
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
        Some(name @ ("delta_copy" | "delta_time_travel" | "s3_versions")) => {
            super::delta::settings::read_kind(name, &mut s, base, &storage, p).map(|kind| {
                // Time travel reads the source: its storage is the job's `source_storage`.
                let storage = match kind {
                    SnapshotKindSpec::TimeTravel(_) => None,
                    _ => storage.clone(),
                };
                SnapshotSpec { kind, storage }
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
