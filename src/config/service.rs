//! `[server]` and `[history]`: how `serve` listens and runs drills, and where drills are
//! recorded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::primitives::fields::{Fields, Located, Problems};

/// Where drills are recorded (`[history]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    /// The journal's folder: one file per job.
    pub journal: PathBuf,
    /// A PostgreSQL URL; never shown in messages (it may hold a password).
    pub postgres: Option<String>,
    /// CA certificates (PEM) trusted for PostgreSQL's TLS besides the system's.
    pub postgres_ca_file: Option<PathBuf>,
    /// Records of drills older than this are dropped (`serve` prunes daily); `None` keeps all.
    pub keep: Option<Duration>,
}

/// How `serve` listens and runs drills (`[server]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The HTTP listener for `/metrics`, `/healthz`, `/readyz` and `/jobs`.
    pub listen: SocketAddr,
    /// Drills running at once, across all jobs.
    pub max_concurrent_drills: usize,
    /// A Prometheus exporter web configuration file (`tls_server_config`, `basic_auth_users`).
    pub web_config: Option<PathBuf>,
    /// How long running drills may go on after SIGTERM before they are cancelled.
    pub shutdown_grace: Duration,
    /// Whether this process drills alone or as one of several replicas.
    pub replicas: Replicas,
    /// How long a replica's claim on a drill holds without being renewed (`claim_lease`): a
    /// replica that dies mid-drill has its drill recorded as aborted by another this long after.
    pub claim_lease: Duration,
}

/// `[server] replicas`: one `serve` process, or several sharing the work through PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replicas {
    /// This process runs every drill of its configuration.
    #[default]
    Single,
    /// Every replica loads the same configuration; each drill is claimed by one of them in
    /// `[history] postgres`.
    Postgres,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            max_concurrent_drills: DEFAULT_MAX_CONCURRENT_DRILLS,
            web_config: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            replicas: Replicas::Single,
            claim_lease: DEFAULT_CLAIM_LEASE,
        }
    }
}

/// The default port of `serve`'s HTTP listener.
pub const DEFAULT_PORT: u16 = 9841;
pub const DEFAULT_MAX_CONCURRENT_DRILLS: usize = 2;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(300);
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(60);

/// `[history]`; without `journal`, the journal lives in the user's state folder:
/// `$RESTORE_DRILL_STATE_DIR/journal`, `$XDG_STATE_HOME/restore-drill/journal` or
/// `~/.local/state/restore-drill/journal`.
pub(super) fn history(
    f: Option<Fields>,
    base: &Path,
    env: &impl Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<HistorySettings> {
    let default_journal = || {
        env("RESTORE_DRILL_STATE_DIR")
            .map(|d| PathBuf::from(d).join("journal"))
            .or_else(|| {
                env("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("restore-drill/journal"))
            })
            .or_else(|| {
                env("HOME").map(|d| PathBuf::from(d).join(".local/state/restore-drill/journal"))
            })
            .unwrap_or_else(|| base.join("restore-drill-journal"))
    };
    let Some(mut f) = f else {
        return Some(HistorySettings {
            journal: default_journal(),
            postgres: None,
            postgres_ca_file: None,
            keep: None,
        });
    };
    let journal = f.string("journal", p).map(|j| base.join(j.value));
    let postgres = match f.string("postgres", p) {
        // Empty, e.g. "${RESTORE_DRILL_PG_URL:-}" without the variable: no PostgreSQL.
        None => Some(None),
        Some(url) if url.value.is_empty() => Some(None),
        Some(url) if url.value.parse::<tokio_postgres::Config>().is_ok() => Some(Some(url.value)),
        Some(url) => {
            p.report(
                url.at,
                "[history]: `postgres` is not a PostgreSQL URL; write e.g. \"postgres://user@host:5432/db\" (passwords belong in an environment variable: \"${RESTORE_DRILL_PG_URL}\")",
            );
            None
        }
    };
    let postgres_ca_file = existing_file(&mut f, "postgres_ca_file", base, p);
    let keep = match f.duration("keep", p) {
        Some(Some(k)) if k.value < Duration::from_secs(86_400) => {
            p.report(
                k.at,
                "[history]: `keep` must be at least 1d (audits look back months, e.g. \"400d\")",
            );
            None
        }
        other => other.map(|k| k.map(|k| k.value)),
    };
    f.finish(p);
    Some(HistorySettings {
        journal: journal.unwrap_or_else(default_journal),
        postgres: postgres?,
        postgres_ca_file,
        keep: keep?,
    })
}

/// `[server]`, and where its `replicas` key is (it requires `[history] postgres`).
pub(super) fn server(
    mut f: Fields,
    base: &Path,
    p: &mut Problems,
) -> (Option<Server>, Option<crate::primitives::fields::Position>) {
    let defaults = Server::default();
    let listen = match f.string("listen", p) {
        None => Some(defaults.listen),
        Some(text) => match text.value.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                p.report(
                    text.at,
                    format!(
                        "[server]: `listen` must be an address and port such as \"127.0.0.1:{DEFAULT_PORT}\" or \"0.0.0.0:{DEFAULT_PORT}\", found `{}`",
                        text.value
                    ),
                );
                None
            }
        },
    };
    let max_concurrent_drills = match f.integer("max_concurrent_drills", p) {
        None => Some(defaults.max_concurrent_drills),
        Some(Located { value, .. }) if (1..=1024).contains(&value) => Some(value as usize),
        Some(Located { value, at }) => {
            p.report(
                at,
                format!(
                    "[server]: `max_concurrent_drills` must be between 1 and 1024, found {value}"
                ),
            );
            None
        }
    };
    let web_config = existing_file(&mut f, "web_config", base, p);
    let shutdown_grace = f.duration("shutdown_grace", p);
    let replicas = match f.string("replicas", p) {
        None => Some((Replicas::Single, None)),
        Some(text) => match text.value.as_str() {
            "single" => Some((Replicas::Single, None)),
            "postgres" => Some((Replicas::Postgres, Some(text.at))),
            other => {
                p.report(
                    text.at,
                    format!(
                        "[server]: `replicas` must be \"single\" (one serve process) or \"postgres\" (several replicas claiming drills through [history] postgres), found `{other}`"
                    ),
                );
                None
            }
        },
    };
    let claim_lease = match f.duration("claim_lease", p) {
        Some(Some(lease)) if lease.value < Duration::from_secs(3) => {
            p.report(
                lease.at,
                "[server]: `claim_lease` must be at least 3s (it is renewed every quarter of its length)",
            );
            None
        }
        other => other.map(|l| l.map_or(DEFAULT_CLAIM_LEASE, |l| l.value)),
    };
    f.finish(p);
    let replicas_at = replicas.and_then(|(_, at)| at);
    let server = (|| {
        Some(Server {
            listen: listen?,
            max_concurrent_drills: max_concurrent_drills?,
            web_config,
            shutdown_grace: shutdown_grace?.map_or(defaults.shutdown_grace, |d| d.value),
            replicas: replicas?.0,
            claim_lease: claim_lease?,
        })
    })();
    (server, replicas_at)
}

/// An optional file named relative to the configuration file; reported when it does not exist.
fn existing_file(
    f: &mut Fields,
    key: &'static str,
    base: &Path,
    p: &mut Problems,
) -> Option<PathBuf> {
    let text = f.string(key, p)?;
    let path = base.join(&text.value);
    if path.is_file() {
        return Some(path);
    }
    p.report(
        text.at,
        format!(
            "{}: `{key}` file {} does not exist (paths are relative to the configuration file)",
            f.context(),
            path.display()
        ),
    );
    None
}
