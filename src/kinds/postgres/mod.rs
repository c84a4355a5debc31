//! PostgreSQL logical backups (`pg_dump`): dumps found by name under a backup location, each
//! restored into a throwaway PostgreSQL started in the run's folder (or a database of the run's
//! own on the job's sandbox server), checked by `pg_restore`'s own errors and `pg_amcheck`, and
//! read table by table into DataFusion for the suite.

pub mod amcheck;
pub mod archive;
pub mod catalog;
pub mod copy;
pub mod lab;
pub mod restore;
pub mod sequences;
pub mod server;
pub mod settings;
pub mod snapshot;
pub mod target;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;

use super::restore::{CopyProgress, PhaseTime, RestoreError, RestoreOutcome};
use super::snapshot::{RestoreMethod, Snapshot, SnapshotError};
use super::structure::{StructureReport, name_some};
use super::{Kind, RestorePlan, SourceAt, TableColumns, TableInfo};
use crate::storage::{ReadOnlyDir, RunSandbox, StorageError};
use crate::verify::plan::TABLE;
use crate::verify::suite::Severity;
use amcheck::Amcheck;
use catalog::PgTableInfo;
use restore::RestoreLog;
use server::{Binaries, Throwaway};
use settings::DumpSettings;
use snapshot::Dump;
use target::RestoreTarget;

/// A job's PostgreSQL dumps and the database they are of.
pub struct PgDump {
    settings: DumpSettings,
    /// The drill's server and what its restore did, from the restore phase on.
    restored: tokio::sync::Mutex<Option<Restored>>,
}

struct Restored {
    server: RestoreTarget,
    log: RestoreLog,
    /// The restored database's tables, read after the restore.
    tables: Vec<PgTableInfo>,
}

/// What the structure check found in a restored database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatabaseStructure {
    pub restore: RestoreLog,
    /// The tables the dump defines that the restored database lacks.
    pub missing_tables: Vec<String>,
    pub amcheck: Amcheck,
    /// Sequences behind the column they feed.
    pub sequences_behind: Vec<String>,
    /// The restored tables with their columns (name, type as the suite names types).
    #[serde(skip)]
    pub tables: Vec<TableColumns>,
}

impl PgDump {
    pub fn new(settings: DumpSettings) -> Self {
        PgDump {
            settings,
            restored: tokio::sync::Mutex::new(None),
        }
    }

    fn snapshot(&self, dump: Dump) -> Snapshot {
        Snapshot {
            id: dump.name.clone(),
            location: dump.backup.child(&dump.name),
            named_time: dump.time,
            table: Err("a pg_dump snapshot holds a database: see its archive header".into()),
            method: RestoreMethod::PgRestore(Box::new(dump)),
        }
    }

    /// The binaries that restore `dump`: the job's, or the newest installed of a major version
    /// at least the dump's server and `pg_dump`.
    async fn binaries(&self, dump: &Dump) -> Result<Binaries, String> {
        if let Some(dir) = &self.settings.postgres_bin {
            return Binaries::at(dir).await;
        }
        Binaries::installed(needed_major(dump))
    }

    /// Where the dump is restored: a throwaway server started in the run folder `folder`, or a
    /// database of the run's own on the job's sandbox server.
    async fn target(&self, dump: &Dump, folder: &std::path::Path) -> Result<RestoreTarget, String> {
        let binaries = self.binaries(dump).await?;
        if let Some(target) = &self.settings.restore_into {
            return RestoreTarget::real(binaries, target, needed_major(dump)).await;
        }
        match &self.settings.sandbox_server {
            Some(server) => {
                RestoreTarget::shared(binaries, server, folder, needed_major(dump)).await
            }
            None => Throwaway::start(binaries, folder, &self.settings.postgres_user)
                .await
                .map(RestoreTarget::from),
        }
    }
}

/// The oldest major version able to restore `dump`: its server's and its `pg_dump`'s.
fn needed_major(dump: &Dump) -> u32 {
    dump.header
        .as_ref()
        .ok()
        .map(|h| {
            h.server_major()
                .unwrap_or(0)
                .max(h.dump_major().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn dump_of(snapshot: &Snapshot) -> Result<&Dump, String> {
    match &snapshot.method {
        RestoreMethod::PgRestore(dump) => Ok(dump),
        _ => Err(format!("snapshot {} is not a pg_dump dump", snapshot.id)),
    }
}

#[async_trait]
impl Kind for PgDump {
    async fn list(&self, _now: DateTime<Utc>) -> Result<Vec<Snapshot>, SnapshotError> {
        let s = &self.settings;
        let dumps = snapshot::list(&s.location, &s.pattern, s.dump_timezone).await?;
        Ok(dumps.into_iter().map(|d| self.snapshot(d)).collect())
    }

    async fn choose(
        &self,
        pinned: Option<&str>,
        _now: DateTime<Utc>,
    ) -> Result<Snapshot, SnapshotError> {
        let s = &self.settings;
        let dump = snapshot::choose(&s.location, &s.pattern, s.dump_timezone, pinned).await?;
        Ok(self.snapshot(dump))
    }

    async fn plan_restore(&self, snapshot: &Snapshot) -> Result<RestorePlan, StorageError> {
        let Ok(dump) = dump_of(snapshot) else {
            return Ok(RestorePlan {
                method: "none: not a dump".into(),
                files: 0,
                bytes: 0,
            });
        };
        let method = match &dump.header {
            Ok(header) => {
                let tool = if header.format.is_archive() {
                    "pg_restore"
                } else {
                    "psql"
                };
                let into = match (self.binaries(dump).await, &self.settings.sandbox_server) {
                    (Ok(b), _) if self.settings.restore_into.is_some() => format!(
                        "the new database {} (client tools {}), kept",
                        self.settings
                            .restore_into
                            .as_ref()
                            .map_or(String::new(), |t| t.to_string()),
                        b.dir.display()
                    ),
                    (Ok(b), None) => format!(
                        "a throwaway PostgreSQL {} ({}) on a socket in the run folder",
                        b.major,
                        b.dir.display()
                    ),
                    (Ok(b), Some(server)) => format!(
                        "a database of the run's own on the sandbox server {server} (client tools {}), dropped with the run folder",
                        b.dir.display()
                    ),
                    (Err(e), _) => format!("a PostgreSQL server — no binaries fit: {e}"),
                };
                format!(
                    "fetch the {} dump into the run folder, restore it with {tool} into {into}, then pg_amcheck",
                    header.format.as_str()
                )
            }
            Err(e) => format!("none: the dump's header cannot be read ({e})"),
        };
        Ok(RestorePlan {
            method,
            files: dump.files.len(),
            bytes: dump.bytes(),
        })
    }

    async fn restore(
        &self,
        snapshot: &Snapshot,
        run: &RunSandbox,
        concurrency: usize,
        progress: &dyn CopyProgress,
    ) -> Result<RestoreOutcome, RestoreError> {
        let started = std::time::Instant::now();
        let dump = dump_of(snapshot).map_err(RestoreError::Write)?;
        let Some(folder) = run.local_path().map(std::path::Path::to_path_buf) else {
            return Err(RestoreError::Write(
                "a pg_dump drill needs a sandbox on local disk for its server".into(),
            ));
        };
        // Fetch: the dump's files into the run folder.
        progress.start(dump.files.len(), dump.bytes());
        let fetched = run
            .copy_in(
                &ReadOnlyDir::new(&dump.backup),
                &dump.files,
                concurrency,
                &|bytes| progress.copied(bytes),
            )
            .await;
        progress.finish();
        fetched?;
        let fetch_seconds = crate::clock::elapsed_seconds(started);
        let server = self
            .target(dump, &folder)
            .await
            .map_err(RestoreError::Write)?;
        let log = match &dump.header {
            Ok(header) => restore::restore(
                &server,
                &folder.join(dump.restore_path()),
                header.format,
                self.settings.owners,
            )
            .await
            .map_err(RestoreError::Write)?,
            Err(e) => RestoreLog {
                tool: "none".into(),
                status: "not run".into(),
                errors: vec![format!("the dump cannot be restored: {e}")],
                error_count: 1,
                ..RestoreLog::default()
            },
        };
        let tables = match connect(&server).await {
            Ok(client) => catalog::tables(&client).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        *self.restored.lock().await = Some(Restored {
            server,
            log,
            tables,
        });
        let seconds = crate::clock::elapsed_seconds(started);
        Ok(RestoreOutcome {
            files: dump.files.len(),
            bytes: dump.bytes(),
            seconds,
            phases: vec![
                PhaseTime::new("fetch", fetch_seconds),
                PhaseTime::new("restore", seconds - fetch_seconds),
            ],
        })
    }

    async fn verify_structure(
        &self,
        _snapshot: &mut Snapshot,
        _run: &RunSandbox,
    ) -> StructureReport {
        let guard = self.restored.lock().await;
        let Some(restored) = guard.as_ref() else {
            return StructureReport {
                problems: vec!["nothing was restored".into()],
                ..StructureReport::default()
            };
        };
        let mut problems: Vec<String> = Vec::new();
        let log = &restored.log;
        if log.error_count > 0 {
            let more = log.error_count - log.errors.len();
            problems.push(format!(
                "{} reported {} error{}: {}{}",
                log.tool,
                log.error_count,
                if log.error_count == 1 { "" } else { "s" },
                log.errors.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        let missing_tables: Vec<String> = log
            .dump_tables
            .iter()
            .filter(|t| catalog::find(&restored.tables, t).is_none())
            .cloned()
            .collect();
        if !missing_tables.is_empty() {
            problems.push(format!(
                "the dump defines table(s) the restored database lacks: {}",
                missing_tables.join(", ")
            ));
        }
        let amcheck = amcheck::run(&restored.server).await;
        if !amcheck.corrupt.is_empty() {
            problems.push(format!(
                "pg_amcheck found corruption in the restored database: {}",
                amcheck.corrupt.join("; ")
            ));
        }
        let mut warnings = Vec::new();
        if let Some(e) = &amcheck.error {
            warnings.push(format!(
                "the restored database could not be checked with pg_amcheck: {e}"
            ));
        }
        let sequences_behind: Vec<String> = match connect(&restored.server).await {
            Ok(client) => match sequences::behind(&client).await {
                Ok(found) => found.iter().map(|s| s.to_string()).collect(),
                Err(e) => {
                    warnings.push(format!("the sequences could not be checked: {e}"));
                    Vec::new()
                }
            },
            Err(e) => {
                problems.push(format!("the restored database does not answer: {e}"));
                Vec::new()
            }
        };
        problems.extend(sequences_behind.iter().cloned());
        let database = DatabaseStructure {
            restore: log.clone(),
            missing_tables,
            amcheck,
            sequences_behind,
            tables: restored.tables.iter().map(table_columns).collect(),
        };
        StructureReport {
            log_replays: log.error_count == 0,
            problems,
            warnings,
            database: Some(database),
            ..StructureReport::default()
        }
    }

    async fn register_restored(
        &self,
        _run: &RunSandbox,
        table: Option<&str>,
        ctx: &SessionContext,
    ) -> Result<(), String> {
        let guard = self.restored.lock().await;
        let restored = guard.as_ref().ok_or("nothing was restored")?;
        let name = table.ok_or("a database's suite names a table per check")?;
        let info = catalog::find(&restored.tables, name)
            .ok_or_else(|| format!("the restored database has no table {name}"))?;
        // Nothing writes to the restored database: its table is read in parallel ranges.
        let client = connect(&restored.server).await?;
        let blocks = catalog::blocks(&client, info).await?;
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let provider = copy::CopyTable::new(
            restored.server.restored(),
            &copy::quote_qualified(&info.schema, &info.name),
            &info.columns,
        )
        .provider_in_parts(blocks, parts)
        .map_err(|e| e.to_string())?;
        ctx.register_table(TABLE, Arc::new(provider))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn locate_damage(&self, _run: &RunSandbox, _info: &TableInfo) -> Vec<String> {
        Vec::new()
    }

    async fn open_source(
        &self,
        _snapshot: &Snapshot,
        _run: &RunSandbox,
        _ctx: &SessionContext,
    ) -> Result<SourceAt, String> {
        Ok(SourceAt::NoVersion)
    }

    async fn describe_source(&self) -> Result<super::Described, String> {
        let client = open(&self.settings.source.config()?).await?;
        let tables = catalog::tables(&client).await;
        Ok(super::Described::Database(
            tables?.iter().map(table_columns).collect(),
        ))
    }

    async fn check_restore_target(&self) -> Result<(), String> {
        let Some(server) = &self.settings.sandbox_server else {
            return Ok(());
        };
        let client = open(&server.connection()?)
            .await
            .map_err(|e| format!("the sandbox server {server} cannot be reached: {e}"))?;
        let row = client
            .query_one(
                "SELECT rolname::text, rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| format!("the sandbox server {server}: {}", copy::db_error(&e)))?;
        let (user, may_create): (String, bool) = (row.get(0), row.get(1));
        if !may_create {
            return Err(format!(
                "the sandbox server {server}: its user `{user}` may not create databases, and each drill creates one there; grant it CREATEDB"
            ));
        }
        Ok(())
    }

    async fn open_current_source(&self, _ctx: &SessionContext) -> Option<Vec<String>> {
        None
    }

    fn gone(&self, _error: &str) -> Option<String> {
        None
    }

    async fn source_newest_change(&self) -> Result<Option<DateTime<Utc>>, String> {
        // A live database has no record of its newest change: the RPO is now minus the dump's
        // time.
        Ok(Some(Utc::now()))
    }

    fn change_basis(&self) -> &'static str {
        "now"
    }

    async fn source_newest_value(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        let client = open(&self.settings.source.config()?).await?;
        newest_value(&client, column).await
    }

    async fn restored_newest_value(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        let guard = self.restored.lock().await;
        let restored = guard.as_ref().ok_or("nothing was restored")?;
        newest_value(&connect(&restored.server).await?, column).await
    }

    async fn register_source(
        &self,
        table: &str,
        name: &str,
        ctx: &SessionContext,
    ) -> Result<Vec<(String, String)>, String> {
        let config = self.settings.source.config()?;
        let tables = catalog::tables(&open(&config).await?).await?;
        let info = catalog::find(&tables, table)
            .ok_or_else(|| format!("the source has no table {table}"))?;
        let provider = copy::CopyTable::new(
            config,
            &copy::quote_qualified(&info.schema, &info.name),
            &info.columns,
        )
        .provider()
        .map_err(|e| e.to_string())?;
        ctx.register_table(name, Arc::new(provider))
            .map_err(|e| e.to_string())?;
        Ok(table_columns(info).columns)
    }

    async fn compare_structure(
        &self,
        snapshot: &Snapshot,
    ) -> Result<Vec<(Severity, String)>, String> {
        let source = &self.settings.source;
        let source_schema = catalog::schema(&open(&source.config()?).await?).await?;
        let mut found = Vec::new();
        let dumped = dump_of(snapshot)
            .ok()
            .and_then(|d| d.header.as_ref().ok())
            .and_then(|h| h.database.clone());
        if let (Some(dumped), Some(live)) = (dumped, source.database())
            && dumped != live
        {
            found.push((
                Severity::Fail,
                format!(
                    "the dump is of database `{dumped}` but the source {source} is database `{live}`: the backup holds another database"
                ),
            ));
        }
        let guard = self.restored.lock().await;
        let Some(restored) = guard.as_ref() else {
            return Ok(found);
        };
        let restored_schema = catalog::schema(&connect(&restored.server).await?).await?;
        let (missing, extra) =
            catalog::schema_differences(&source_schema, &restored_schema, &["extension amcheck"]);
        for (severity, what, differences) in [
            (
                self.settings.schema_differences,
                "the restored schema lacks or differs from the source's",
                missing,
            ),
            (
                Severity::Warn,
                "the restored schema has objects the source no longer has (changed since the dump?)",
                extra,
            ),
        ] {
            if !differences.is_empty() {
                found.push((
                    severity,
                    format!("{what}: {}", name_some(differences.iter())),
                ));
            }
        }
        Ok(found)
    }

    async fn restored_key_range(&self, table: &str, column: &str) -> Option<(i64, i64)> {
        let guard = self.restored.lock().await;
        let restored = guard.as_ref()?;
        let info = catalog::find(&restored.tables, table)?;
        let client = connect(&restored.server).await.ok()?;
        catalog::indexed_range(&client, info, column).await
    }

    async fn restored_env(&self, credentials: bool) -> Vec<(String, String)> {
        match self.restored.lock().await.as_ref() {
            Some(restored) => restored.server.libpq_env(credentials),
            None => Vec::new(),
        }
    }

    async fn release(&self) {
        if let Some(restored) = self.restored.lock().await.as_mut()
            && let Err(e) = restored.server.stop().await
        {
            tracing::warn!(error = %e, "could not stop the drill's server");
        }
    }
}

/// `schema.table.column`, or `table.column` of a table in `public`, as table and column.
pub fn split_column(qualified: &str) -> Option<(&str, &str)> {
    let (table, column) = qualified.rsplit_once('.')?;
    (!table.is_empty() && !column.is_empty()).then_some((table, column))
}

/// The newest value of a timestamp or date column (`schema.table.column`) in the database
/// `client` is connected to, to the microsecond.
async fn newest_value(
    client: &tokio_postgres::Client,
    qualified: &str,
) -> Result<Option<DateTime<Utc>>, String> {
    let (table, column) = split_column(qualified)
        .ok_or_else(|| format!("`{qualified}` names no table; write schema.table.column"))?;
    let tables = catalog::tables(client).await?;
    let info = catalog::find(&tables, table).ok_or_else(|| format!("there is no table {table}"))?;
    let sql = format!(
        "SELECT (extract(epoch FROM max({})) * 1000000)::bigint FROM {}",
        copy::quote_ident(column),
        copy::quote_qualified(&info.schema, &info.name)
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| copy::db_error(&e))?;
    let micros: Option<i64> = row.get(0);
    Ok(micros.and_then(DateTime::from_timestamp_micros))
}

/// A table's name and its columns with the suite's type names.
fn table_columns(t: &PgTableInfo) -> TableColumns {
    TableColumns {
        name: t.qualified(),
        columns: t
            .columns
            .iter()
            .map(|c| (c.name.clone(), copy::suite_type(c)))
            .collect(),
    }
}

/// A connection through `config`; its driver runs until the client is dropped.
pub async fn open(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| copy::db_error(&e))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A connection to the restored database.
async fn connect(target: &RestoreTarget) -> Result<tokio_postgres::Client, String> {
    open(&target.restored()).await
}
