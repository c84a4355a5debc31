//! A PostgreSQL job's settings: `source`, the live database as a `postgres://` URL (its password,
//! if any, from a named environment variable, never written in the file nor printed), and the
//! `snapshots` table of kind `pg_dump`, which may name an existing `sandbox_server` the same way.

use std::path::{Path, PathBuf};

use super::restore::Owners;
use crate::kinds::pattern::SnapshotPattern;
use crate::primitives::fields::{Fields, Problems};
use crate::storage::Location;
use crate::verify::suite::Severity;

/// A PostgreSQL server and database named by URL: the live database a job's dumps are of, or
/// the sandbox server a job restores into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// The URL as written, without a password.
    pub url: String,
    /// The environment variable holding the password, when the server needs one.
    pub password_env: Option<String>,
}

impl PgUrl {
    /// A `postgres://` or `postgresql://` URL as given on the command line (a restore's
    /// target), refused with a password in it; `password_env` names the password's variable.
    pub fn parse(text: &str, password_env: Option<String>) -> Result<PgUrl, String> {
        let parsed = url::Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"))
            .ok_or_else(|| format!("`{text}` is not a postgres:// URL"))?;
        if parsed.password().is_some() {
            return Err(format!(
                "`{}` holds a password; give the name of a variable that holds it instead",
                parsed
                    .as_str()
                    .replace(parsed.password().unwrap_or_default(), "***")
            ));
        }
        Ok(PgUrl {
            url: text.to_string(),
            password_env,
        })
    }

    /// The same server and user with the database `name`.
    pub fn with_database(&self, name: &str) -> PgUrl {
        let url = match url::Url::parse(&self.url) {
            Ok(mut parsed) => {
                parsed.set_path(&format!("/{name}"));
                parsed.to_string()
            }
            Err(_) => self.url.clone(),
        };
        PgUrl {
            url,
            password_env: self.password_env.clone(),
        }
    }

    /// The connection to the source: read-only by default, with the password from its variable.
    pub fn config(&self) -> Result<tokio_postgres::Config, String> {
        let mut config = self.connection()?;
        config.options("-c default_transaction_read_only=on");
        Ok(config)
    }

    /// The connection as the URL says, with the password from its variable.
    pub fn connection(&self) -> Result<tokio_postgres::Config, String> {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("the URL {self} does not parse: {e}"))?;
        if let Some(var) = &self.password_env {
            config.password(self.password(var)?);
        }
        config.application_name("restore-drill");
        Ok(config)
    }

    /// The password in the variable `var`.
    fn password(&self, var: &str) -> Result<String, String> {
        std::env::var(var).map_err(|_| {
            format!(
                "the password variable `{var}` of {self} is not set in restore-drill's environment"
            )
        })
    }

    /// Whether `other` names the same database on the same server (host, port, database; the
    /// local machine's names taken as one).
    pub fn same_database(&self, other: &PgUrl) -> bool {
        let (Ok(a), Ok(b)) = (
            self.url.parse::<tokio_postgres::Config>(),
            other.url.parse::<tokio_postgres::Config>(),
        ) else {
            return self.url == other.url;
        };
        let server = |c: &tokio_postgres::Config| {
            let host = c.get_hosts().first().map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => match name.as_str() {
                    "localhost" | "127.0.0.1" | "::1" | "[::1]" => "local".to_string(),
                    other => other.to_ascii_lowercase(),
                },
                tokio_postgres::config::Host::Unix(path) => {
                    format!("local socket {}", path.display())
                }
            });
            let port = c.get_ports().first().copied().unwrap_or(5432);
            (host, port, c.get_dbname().map(String::from))
        };
        server(&a) == server(&b)
    }

    /// `-h HOST -p PORT -U USER` of the URL, as the client tools take them (no database, no
    /// password).
    pub fn server_args(&self) -> Vec<String> {
        let Ok(config) = self.url.parse::<tokio_postgres::Config>() else {
            return Vec::new();
        };
        let mut args = Vec::new();
        if let Some(host) = config.get_hosts().first() {
            let host = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.to_string_lossy().into_owned(),
            };
            args.extend(["-h".to_string(), host]);
        }
        if let Some(port) = config.get_ports().first() {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        if let Some(user) = config.get_user() {
            args.extend(["-U".to_string(), user.to_string()]);
        }
        args
    }

    /// The database name the URL names.
    pub fn database(&self) -> Option<String> {
        self.url
            .parse::<tokio_postgres::Config>()
            .ok()
            .and_then(|c| c.get_dbname().map(String::from))
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// A `pg_dump` job's snapshots and how they are restored.
#[derive(Debug, Clone)]
pub struct DumpSettings {
    /// Where the dumps are.
    pub location: Location,
    pub pattern: SnapshotPattern,
    /// The server binaries to restore with; the newest installed ones able to, when `None`.
    pub postgres_bin: Option<PathBuf>,
    /// The operating-system user the throwaway server runs as when restore-drill runs as root.
    pub postgres_user: String,
    pub owners: Owners,
    /// The zone of the dumping machine's clock, in which archive headers give their time.
    pub dump_timezone: chrono_tz::Tz,
    /// The live database the dumps are of.
    pub source: PgUrl,
    /// An existing server to restore into (a database of the run's own on it), instead of a
    /// throwaway server.
    pub sandbox_server: Option<PgUrl>,
    /// A restore for real (`restore --to postgres://…`): the dump goes into this URL's
    /// database, which the restore creates and keeps. Never read from the configuration.
    pub restore_into: Option<PgUrl>,
    /// How much a schema object the source has and the restore lacks (or defines otherwise)
    /// matters.
    pub schema_differences: Severity,
}

/// Reads `source` for a PostgreSQL job: a `postgres://` or `postgresql://` URL without a
/// password, and `source_password_env`.
pub fn read_source(f: &mut Fields, p: &mut Problems) -> Option<PgUrl> {
    let url = f.required_string(
        "source",
        "the live database, e.g. \"postgres://reader@db.internal:5432/app\"",
        p,
    )?;
    read_url(
        f,
        (
            "source",
            "source_password_env",
            "a pg_dump job's `source` is the live database",
        ),
        url,
        p,
    )
}

/// Checks the URL read from `keys.0` (`keys.2` says what it is) and reads its password
/// variable's name from `keys.1`.
fn read_url(
    f: &mut Fields,
    keys: (&'static str, &'static str, &str),
    url: crate::primitives::fields::Located<String>,
    p: &mut Problems,
) -> Option<PgUrl> {
    let (key, password_key, what) = keys;
    let password_env = f.string(password_key, p).map(|v| v.value);
    let parsed = url::Url::parse(&url.value)
        .ok()
        .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"));
    let Some(parsed) = parsed else {
        p.report(
            url.at,
            format!(
                "{}: {what} as a URL such as \"postgres://reader@db.internal:5432/app\"",
                f.context()
            ),
        );
        return None;
    };
    if parsed.password().is_some() {
        p.report(
            url.at,
            format!(
                "{}: `{key}` holds a password; remove it from the URL and name the environment variable that holds it with `{password_key}`",
                f.context()
            ),
        );
        return None;
    }
    if parsed.path().trim_start_matches('/').is_empty() {
        p.report(
            url.at,
            format!(
                "{}: `{key}` names no database; end the URL with it, e.g. \"…:5432/app\"",
                f.context()
            ),
        );
        return None;
    }
    if url.value.parse::<tokio_postgres::Config>().is_err() {
        p.report(
            url.at,
            format!(
                "{}: `{key}` does not parse as a PostgreSQL URL",
                f.context()
            ),
        );
        return None;
    }
    Some(PgUrl {
        url: url.value,
        password_env,
    })
}

/// Reads the rest of a `pg_dump` snapshots table (`kind` already read).
pub fn read_dump(
    s: &mut Fields,
    base: &Path,
    p: &mut Problems,
) -> Option<(Location, SnapshotPattern, DumpOptions)> {
    let location = Location::read(s, "location", "the folder holding the dumps", base, p);
    let pattern = s
        .required_string(
            "pattern",
            "the dump's file or folder name, e.g. \"app_{date}.dump\"",
            p,
        )
        .and_then(|text| match SnapshotPattern::parse(&text.value) {
            Ok(pattern) => Some(pattern),
            Err(e) => {
                p.report(text.at, format!("{}: {e}", s.context()));
                None
            }
        });
    let postgres_bin = s.string("postgres_bin", p).and_then(|bin| {
        let path = base.join(&bin.value);
        if path.join("pg_restore").is_file() && path.join("pg_ctl").is_file() {
            Some(path)
        } else {
            p.report(
                bin.at,
                format!(
                    "{}: `postgres_bin` {} holds no pg_restore and pg_ctl; name a folder such as \"/usr/lib/postgresql/16/bin\"",
                    s.context(),
                    path.display()
                ),
            );
            None
        }
    });
    let postgres_user = s
        .string("postgres_user", p)
        .map_or_else(|| "postgres".to_string(), |u| u.value);
    let owners = match s.string("owners", p) {
        None => Some(Owners::Create),
        Some(o) => match o.value.as_str() {
            "create" => Some(Owners::Create),
            "skip" => Some(Owners::Skip),
            other => {
                p.report(
                    o.at,
                    format!(
                        "{}: `owners` `{other}` is unknown; use \"create\" (create the roles the dump names) or \"skip\" (restore without owners and grants)",
                        s.context()
                    ),
                );
                None
            }
        },
    };
    let dump_timezone = match s.string("dump_timezone", p) {
        None => Some(chrono_tz::UTC),
        Some(z) => match z.value.parse::<chrono_tz::Tz>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                p.report(
                    z.at,
                    format!(
                        "{}: `dump_timezone` `{}` is not a time zone such as \"UTC\" or \"Europe/Berlin\"",
                        s.context(),
                        z.value
                    ),
                );
                None
            }
        },
    };
    let schema_differences = match s.string("schema_differences", p) {
        None => Some(Severity::Fail),
        Some(v) => match v.value.as_str() {
            "fail" => Some(Severity::Fail),
            "warn" => Some(Severity::Warn),
            other => {
                p.report(
                    v.at,
                    format!(
                        "{}: `schema_differences` `{other}` is unknown; use \"fail\" or \"warn\"",
                        s.context()
                    ),
                );
                None
            }
        },
    };
    let sandbox_server = match s.string("sandbox_server", p) {
        None => Some(None),
        Some(url) => read_url(
            s,
            (
                "sandbox_server",
                "sandbox_server_password_env",
                "`sandbox_server` is a database of the server to restore into",
            ),
            url,
            p,
        )
        .map(Some),
    };
    let options = DumpOptions {
        sandbox_server: sandbox_server?,
        postgres_bin,
        postgres_user,
        owners: owners?,
        dump_timezone: dump_timezone?,
        schema_differences: schema_differences?,
    };
    Some((location?.value, pattern?, options))
}

/// The `pg_dump` settings besides location and pattern.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    pub sandbox_server: Option<PgUrl>,
    pub postgres_bin: Option<PathBuf>,
    pub postgres_user: String,
    pub owners: Owners,
    pub dump_timezone: chrono_tz::Tz,
    pub schema_differences: Severity,
}
