//! Where a drill restores a dump: the throwaway server it started in its run folder, or a
//! database of the run's own on an existing sandbox server named by the job (`sandbox_server`),
//! created for the run and dropped with its folder.

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
        let client = super::open(&config)
            .await
            .map_err(|e| format!("cannot connect to the sandbox server {server}: {e}"))?;
        let row = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| format!("the sandbox server {server}: {}", db_error(&e)))?;
        let major = (row.get::<_, i32>(0) / 10000) as u32;
        if major < needed {
            return Err(format!(
                "the sandbox server {server} runs PostgreSQL {major} and the dump needs {needed} or newer to restore; name a newer server"
            ));
        }
        let shared = SharedServer {
            binaries,
            server: server.clone(),
            database: database_name(run),
            major,
            config,
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

    /// Where the dump was restored, for the report (no password).
    pub fn describe(&self) -> String {
        match self {
            RestoreTarget::Throwaway(t) => format!(
                "database {RESTORED_DATABASE} of a throwaway PostgreSQL {} on a socket in {}",
                t.binaries.major,
                t.socket_dir().display()
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

/// The run's database on a sandbox server: the prefix and the run folder's name (a run id, whose
/// time and random part make it unique), in the characters an unquoted name may have.
fn database_name(run: &Path) -> String {
    let id = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = format!("{DATABASE_PREFIX}{id}")
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
