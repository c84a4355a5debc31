//! Where a drill restores a dump: the throwaway server it started in its run folder, or a
//! database of the run's own on an existing sandbox server named by the job (`sandbox_server`),
//! created for the run and dropped with its folder — or, for a restore for real, the database a
//! `postgres://` target names, created and kept.

use std::path::Path;

use super::copy::db_error;
use super::restore::RESTORED_DATABASE;
use super::server::{Binaries, Throwaway};
use super::settings::PgUrl;
use crate::storage::{SharedDatabase, record_shared_database};

/// The prefix of the databases drills create on a sandbox server.
pub const DATABASE_PREFIX: &str = "restore_drill_";
/// The longest identifier PostgreSQL keeps whole.
const NAME_MAX: usize = 63;

/// The server a drill restores into and the database it restores into there.
#[derive(Debug)]
pub enum RestoreTarget {
    /// The drill's own throwaway server; the dump goes into [`RESTORED_DATABASE`].
    Throwaway(Throwaway),
    /// A database of the run's own on the job's sandbox server.
    Shared(Box<SharedServer>),
}

/// A database of one run on an existing server.
#[derive(Debug)]
pub struct SharedServer {
    binaries: Binaries,
    /// The server as the job names it (its URL's database is the one connected to while the
    /// run's database is created and dropped).
    server: PgUrl,
    /// The connection to the URL's database, with its password.
    config: tokio_postgres::Config,
    /// The run's database.
    database: String,
    /// The server's major version.
    pub major: u32,
    /// A restore for real: the database is the user's, kept.
    real: bool,
}

impl From<Throwaway> for RestoreTarget {
    fn from(server: Throwaway) -> Self {
        RestoreTarget::Throwaway(server)
    }
}

impl RestoreTarget {
    /// The sandbox server `server` for the run in the folder `run`: connected to once to learn
    /// its version (at least `needed`, the dump's), and the run's database recorded in the run
    /// folder before it is created, so that whoever removes the folder drops it.
    pub async fn shared(
        binaries: Binaries,
        server: &PgUrl,
        run: &Path,
        needed: u32,
    ) -> Result<RestoreTarget, String> {
        let config = server.connection()?;
        let major = server_major(&config, server, needed).await?;
        let shared = SharedServer {
            binaries,
            server: server.clone(),
            database: database_name(run),
            major,
            config,
            real: false,
        };
        record_shared_database(
            run,
            &SharedDatabase {
                bin: shared.binaries.dir.clone(),
                server_args: shared.server_args(),
                maintenance: shared.maintenance().to_string(),
                password_env: server.password_env.clone(),
                database: shared.database.clone(),
            },
        )?;
        Ok(RestoreTarget::Shared(Box::new(shared)))
    }

    /// The database `target` names, for a restore for real: created by the restore on the
    /// URL's server (connected to through its `postgres` database) and kept.
    pub async fn real(
        binaries: Binaries,
        target: &PgUrl,
        needed: u32,
    ) -> Result<RestoreTarget, String> {
        let database = target
            .database()
            .ok_or_else(|| format!("the target {target} names no database"))?;
        let mut config = target.connection()?;
        config.dbname(MAINTENANCE);
        let major = server_major(&config, target, needed).await?;
        Ok(RestoreTarget::Shared(Box::new(SharedServer {
            binaries,
            server: target.clone(),
            config,
            database,
            major,
            real: true,
        })))
    }

    pub fn binaries(&self) -> &Binaries {
        match self {
            RestoreTarget::Throwaway(t) => &t.binaries,
            RestoreTarget::Shared(s) => &s.binaries,
        }
    }

    /// The database the dump is restored into.
    pub fn database(&self) -> &str {
        match self {
            RestoreTarget::Throwaway(_) => RESTORED_DATABASE,
            RestoreTarget::Shared(s) => &s.database,
        }
    }

    /// The database connected to while the restore's database is created.
    pub fn maintenance(&self) -> &str {
        match self {
            RestoreTarget::Throwaway(_) => "postgres",
            RestoreTarget::Shared(s) => s.maintenance(),
        }
    }

    /// A connection to `database` on the server.
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        match self {
            RestoreTarget::Throwaway(t) => t.config(database),
            RestoreTarget::Shared(s) => {
                let mut config = s.config.clone();
                config.dbname(database);
                config
            }
        }
    }

    /// A connection to the restored database.
    pub fn restored(&self) -> tokio_postgres::Config {
        self.config(self.database())
    }

    /// `libpq` arguments naming the server and its user (no database), for the client tools.
    pub fn server_args(&self) -> Vec<String> {
        match self {
            RestoreTarget::Throwaway(t) => t.server_args(),
            RestoreTarget::Shared(s) => s.server_args(),
        }
    }

    /// The same with `-d database`.
    pub fn client_args(&self, database: &str) -> Vec<String> {
        let mut args = self.server_args();
        args.extend(["-d".into(), database.into()]);
        args
    }

    /// Environment the client tools need: the sandbox server's password, when it has one.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        match self {
            RestoreTarget::Shared(s) => s
                .config
                .get_password()
                .map(|p| vec![("PGPASSWORD", String::from_utf8_lossy(p).into_owned())])
                .unwrap_or_default(),
            RestoreTarget::Throwaway(_) => Vec::new(),
        }
    }

    /// The restored database as libpq's variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`),
    /// for a smoke test; `PGPASSWORD` too with `credentials`.
    pub fn libpq_env(&self, credentials: bool) -> Vec<(String, String)> {
        let config = self.restored();
        let mut env = Vec::new();
        if let Some(host) = config.get_hosts().first() {
            let host = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            env.push(("PGHOST".to_string(), host));
        }
        let port = config.get_ports().first().copied().unwrap_or(5432);
        env.push(("PGPORT".into(), port.to_string()));
        if let Some(user) = config.get_user() {
            env.push(("PGUSER".into(), user.to_string()));
        }
        env.push(("PGDATABASE".into(), self.database().to_string()));
        if credentials {
            env.extend(
                self.client_env()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v)),
            );
        }
        env
    }

    /// Where the dump was restored, for the report (no password).
    pub fn describe(&self) -> String {
        match self {
            RestoreTarget::Throwaway(t) => format!(
                "database {RESTORED_DATABASE} of a throwaway PostgreSQL {} on a socket in {}",
                t.binaries.major,
                t.socket_dir().display()
            ),
            RestoreTarget::Shared(s) if s.real => format!(
                "the database {} (PostgreSQL {}), restored for real",
                s.server, s.major
            ),
            RestoreTarget::Shared(s) => format!(
                "database {} of the sandbox server {} (PostgreSQL {})",
                s.database, s.server, s.major
            ),
        }
    }

    /// Stops a throwaway server; a sandbox server's database stays until the run folder goes.
    pub async fn stop(&mut self) -> Result<(), String> {
        match self {
            RestoreTarget::Throwaway(t) => t.stop().await,
            RestoreTarget::Shared(_) => Ok(()),
        }
    }
}

impl SharedServer {
    fn maintenance(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    /// `-h host -p port -U user` of the server's URL.
    fn server_args(&self) -> Vec<String> {
        self.server.server_args()
    }
}

/// The database connected to on a restore's target server while its database is created,
/// checked or moved aside.
const MAINTENANCE: &str = "postgres";

/// The major version of the server `config` reaches (`server` names it in messages), which
/// must be at least `needed`, the dump's.
async fn server_major(
    config: &tokio_postgres::Config,
    server: &PgUrl,
    needed: u32,
) -> Result<u32, String> {
    let client = super::open(config)
        .await
        .map_err(|e| format!("cannot connect to the server of {server}: {e}"))?;
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| format!("the server of {server}: {}", db_error(&e)))?;
    let major = (row.get::<_, i32>(0) / 10000) as u32;
    if major < needed {
        return Err(format!(
            "the server of {server} runs PostgreSQL {major} and the dump needs {needed} or newer to restore; name a newer server"
        ));
    }
    Ok(major)
}

/// A restore's target database: whether it exists, and moving it aside.
pub struct TargetDatabase {
    client: tokio_postgres::Client,
    pub name: String,
}

impl TargetDatabase {
    /// Connects to the server of `target` (its `postgres` database).
    pub async fn connect(target: &PgUrl) -> Result<TargetDatabase, String> {
        let name = target
            .database()
            .ok_or_else(|| format!("the target {target} names no database"))?;
        let mut config = target.connection()?;
        config.dbname(MAINTENANCE);
        let client = super::open(&config)
            .await
            .map_err(|e| format!("cannot connect to the server of {target}: {e}"))?;
        Ok(TargetDatabase { client, name })
    }

    /// Whether the database `name` exists on the server.
    pub async fn exists(&self, name: &str) -> Result<bool, String> {
        let row = self
            .client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| db_error(&e))?;
        Ok(row.is_some())
    }

    /// Renames the target database to `aside`. Refused while sessions are connected to it:
    /// the applications must be paused first (a rename needs the database to itself).
    pub async fn move_aside(&self, aside: &str) -> Result<(), String> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let sessions: i64 = row.get(0);
        if sessions > 0 {
            return Err(format!(
                "{sessions} session(s) are connected to the database {}; pause what uses it (the runbook's step \"Isolate and confirm\") and run the restore again",
                self.name
            ));
        }
        self.client
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                super::copy::quote_ident(&self.name),
                super::copy::quote_ident(aside)
            ))
            .await
            .map_err(|e| db_error(&e))
    }
}

/// The name a target database is moved aside to: its name and the run id, in the characters
/// an unquoted name may have, at most 63 of them — the name shortened, never the run id.
pub fn aside_name(database: &str, run_id: &str) -> String {
    let suffix = identifier(&format!("_moved_aside_{run_id}"));
    let mut name = identifier(database);
    name.truncate(NAME_MAX.saturating_sub(suffix.len()));
    name + &suffix
}

/// `text` as a name that needs no quotes: lower-case letters, digits and `_`, at most 63.
fn identifier(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(NAME_MAX);
    name
}

/// The run's database on a sandbox server: the prefix and the run folder's name (a run id, whose
/// time and random part make it unique), in the characters an unquoted name may have.
fn database_name(run: &Path) -> String {
    let id = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    identifier(&format!("{DATABASE_PREFIX}{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_database_is_named_by_its_run() {
        assert_eq!(
            database_name(Path::new("/sandbox/app/run-20261202T010000Z-4f3a9c")),
            "restore_drill_run_20261202t010000z_4f3a9c"
        );
    }

    #[test]
    fn a_database_moved_aside_keeps_the_whole_run_id() {
        let run = "run-20261202T010000Z-4f3a9c";
        assert_eq!(
            aside_name("Orders", run),
            "orders_moved_aside_run_20261202t010000z_4f3a9c"
        );
        let long = aside_name(&"x".repeat(60), run);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("_moved_aside_run_20261202t010000z_4f3a9c"));
    }

    #[test]
    fn server_arguments_come_from_the_url() {
        let url = PgUrl {
            url: "postgres://reader@db.internal:5433/app".into(),
            password_env: None,
        };
        assert_eq!(
            url.server_args().join(" "),
            "-h db.internal -p 5433 -U reader"
        );
    }

    #[test]
    fn the_sources_own_database_is_recognised_under_another_spelling() {
        let url = |u: &str| PgUrl {
            url: u.into(),
            password_env: None,
        };
        let source = url("postgres://reader@localhost/app");
        assert!(source.same_database(&url("postgresql://drill@127.0.0.1:5432/app")));
        assert!(!source.same_database(&url("postgres://drill@127.0.0.1:5432/postgres")));
        assert!(!source.same_database(&url("postgres://drill@sandbox-db:5432/app")));
        assert!(!source.same_database(&url("postgres://drill@localhost:5433/app")));
    }
}
