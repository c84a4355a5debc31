//! Configuration: read the file, substitute `${VAR}`, validate every field (all problems at
//! once, each with file, line and column), and build the jobs.

mod substitute;

pub use substitute::{UnsetVariable, substitute};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;

use crate::kinds::delta::snapshot::{PointInTime, SnapshotPattern, SnapshotSource};
use crate::primitives::duration::parse_duration;
use crate::primitives::fields::{Fields, Located, Position, Problem, Problems, parse_document};
use crate::schedule::{Schedule, ScheduleError};
use crate::storage::Location;
use crate::storage::s3::S3Profile;
use crate::verify::sample::{CompareSpec, Fallback, SampleSize};
use crate::verify::suite::{Suite, load_suite};

/// The configuration could not be used; every problem found is listed.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let count = problems.len();
    format!(
        "{count} problem{} in the configuration:\n{}",
        if count == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

/// A loaded, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub server: Server,
    pub history: HistorySettings,
    pub jobs: Vec<Job>,
}

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
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            max_concurrent_drills: DEFAULT_MAX_CONCURRENT_DRILLS,
            web_config: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// The default port of `serve`'s HTTP listener.
pub const DEFAULT_PORT: u16 = 9841;
pub const DEFAULT_MAX_CONCURRENT_DRILLS: usize = 2;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(300);
/// How long a failed drill's sandbox is kept, unless the job sets `keep_failed_sandbox`.
pub const DEFAULT_KEEP_FAILED_SANDBOX: Duration = Duration::from_secs(48 * 3600);
/// A drill still running after this long is cancelled, unless the job sets `timeout`.
pub const DEFAULT_DRILL_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

impl Config {
    /// The job with this name, or an error listing the names there are.
    pub fn job(&self, name: &str) -> Result<&Job, String> {
        self.jobs.iter().find(|j| j.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
            format!(
                "no job named `{name}` in {}; its jobs are: {}",
                self.file.display(),
                names.join(", ")
            )
        })
    }
}

/// One protected dataset.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub source: Location,
    pub snapshots: SnapshotSource,
    pub sandbox: Location,
    pub suite_path: PathBuf,
    pub suite: Suite,
    pub objectives: Objectives,
    /// How many files the restore copies at once.
    pub copy_concurrency: usize,
    /// The keyed sample diff with the source, when configured.
    pub compare: Option<CompareSpec>,
    /// Columns whose values are masked in example rows.
    pub redact: Vec<String>,
    /// When `serve` drills the job; `None`: only when asked (`POST /jobs/{name}/run`).
    pub schedule: Option<Schedule>,
    /// A drill still running after this long is cancelled and recorded as `error`.
    pub timeout: Duration,
    /// Each scheduled drill starts after a random delay of up to this long.
    pub jitter: Duration,
    /// A failed drill's sandbox is kept this long for inspection, then swept.
    pub keep_failed_sandbox: Duration,
    /// SHA-256 of the configuration file's text and of the suite file's text, for the record.
    pub config_sha256: String,
    pub suite_sha256: String,
}

/// The recovery point and recovery time a job must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Objectives {
    pub rpo: Duration,
    pub rto: Duration,
}

/// The default number of files copied at once by a restore.
pub const DEFAULT_COPY_CONCURRENCY: usize = 8;

/// Reads and validates a configuration file, with `${VAR}` taken from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            at: Position { line: 1, column: 1 },
            message: format!("cannot read the configuration file: {e}"),
        }],
    })?;
    parse(path, &text, |name| std::env::var(name).ok())
}

/// Validates configuration text. `file` names the file in messages and is the base of relative
/// paths. The only I/O is reading the suite files and resolving paths that exist.
pub fn parse(
    file: &Path,
    raw: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let (text, unset) = substitute(raw, &env);
    let mut p = Problems::new(file, &text);
    {
        let raw_problems = Problems::new(file, raw);
        for v in unset {
            p.report(
                raw_problems.position(v.offset),
                format!(
                    "environment variable `{}` is not set (write `$${{{}}}` for a literal `${{`)",
                    v.name, v.name
                ),
            );
        }
    }
    let base = file
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let Some(doc) = parse_document(&mut p, &text) else {
        return Err(ConfigError {
            problems: p.into_vec(),
        });
    };
    let mut top = Fields::new(
        doc.as_table(),
        Position { line: 1, column: 1 },
        "configuration",
    );
    let server = match top.table("server", "[server]", &mut p) {
        None => Some(Server::default()),
        Some(f) => server(f, &base, &mut p),
    };
    let history = history(
        top.table("history", "[history]", &mut p),
        &base,
        &env,
        &mut p,
    );
    let profiles = match top.table("storage", "[storage]", &mut p) {
        Some(f) => storage_profiles(f, &mut p),
        None => HashMap::new(),
    };
    let config_sha256 = crate::primitives::hash::sha256_hex(raw.as_bytes());
    let mut jobs: Vec<Job> = Vec::new();
    let mut sandbox_positions: Vec<Position> = Vec::new();
    let mut suite_problems = Vec::new();
    match top.item("job", &p) {
        None => p.report(
            top.at(),
            "no jobs: add a `[[job]]` table with name, source, snapshots, sandbox, suite and objectives",
        ),
        Some((item, at)) => match item.as_array_of_tables() {
            None => p.report(at, "`job` must be an array of tables: write `[[job]]`"),
            Some(tables) => {
                for (i, table) in tables.iter().enumerate() {
                    let at = p.position_of(table.span());
                    let fields = Fields::new(table, at, format!("job #{}", i + 1));
                    if let Some((mut job, at)) =
                        read_job(fields, &base, &profiles, &mut p, &mut suite_problems)
                    {
                        job.config_sha256 = config_sha256.clone();
                        if jobs.iter().any(|j| j.name == job.name) {
                            p.report(
                                at.name,
                                format!("job name `{}` is used twice; names must be unique", job.name),
                            );
                        }
                        jobs.push(job);
                        sandbox_positions.push(at.sandbox);
                    }
                }
            }
        },
    }
    sandboxes_apart(&jobs, &sandbox_positions, &mut p);
    top.finish(&mut p);
    let mut problems = p.into_vec();
    problems.extend(suite_problems);
    match (server, history) {
        (Some(server), Some(history)) if problems.is_empty() => Ok(Config {
            file: file.to_path_buf(),
            server,
            history,
            jobs,
        }),
        _ => Err(ConfigError { problems }),
    }
}

/// `[history]`; without `journal`, the journal lives in the user's state folder:
/// `$RESTORE_DRILL_STATE_DIR/journal`, `$XDG_STATE_HOME/restore-drill/journal` or
/// `~/.local/state/restore-drill/journal`.
fn history(
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
    let keep = match optional_duration(&mut f, "keep", p) {
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

fn server(mut f: Fields, base: &Path, p: &mut Problems) -> Option<Server> {
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
    let shutdown_grace = optional_duration(&mut f, "shutdown_grace", p);
    f.finish(p);
    Some(Server {
        listen: listen?,
        max_concurrent_drills: max_concurrent_drills?,
        web_config,
        shutdown_grace: shutdown_grace?.map_or(defaults.shutdown_grace, |d| d.value),
    })
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

/// An optional duration: `Some(None)` when absent, `None` when present but invalid (reported).
fn optional_duration(
    f: &mut Fields,
    key: &'static str,
    p: &mut Problems,
) -> Option<Option<Located<Duration>>> {
    match f.string(key, p) {
        None => Some(None),
        Some(text) => match parse_duration(&text.value) {
            Ok(d) => Some(Some(Located::new(d, text.at))),
            Err(e) => {
                p.report(text.at, format!("{}: `{key}`: {e}", f.context()));
                None
            }
        },
    }
}

/// Where a job's name and sandbox are written, for problems found across jobs.
struct JobPositions {
    name: Position,
    sandbox: Position,
}

/// No job's sandbox may overlap any job's source or backups, nor another job's sandbox unless
/// both name the same root (each drill writes below `<root>/<job>/<run-id>/`).
fn sandboxes_apart(jobs: &[Job], positions: &[Position], p: &mut Problems) {
    for (job, at) in jobs.iter().zip(positions) {
        for other in jobs.iter().filter(|o| o.name != job.name) {
            let places = [
                ("source", &other.source),
                ("snapshots.location", other.snapshots.location()),
                ("sandbox", &other.sandbox),
            ];
            for (role, place) in places {
                let same_root = role == "sandbox" && job.sandbox.same_place(place);
                if !same_root && job.sandbox.overlaps(place) {
                    p.report(
                        *at,
                        format!(
                            "job `{}`: the sandbox {} overlaps the {role} {place} of job `{}`; a drill must never write where another job's data, backups or drills live — give each job a separate folder, or the same sandbox root",
                            job.name, job.sandbox, other.name
                        ),
                    );
                }
            }
        }
    }
}

fn read_job(
    mut f: Fields,
    base: &Path,
    profiles: &HashMap<String, Arc<S3Profile>>,
    p: &mut Problems,
    suite_problems: &mut Vec<Problem>,
) -> Option<(Job, JobPositions)> {
    let at = f.at();
    let name = f.required_string("name", "the job's name, e.g. \"orders\"", p);
    if let Some(name) = &name {
        f.set_context(format!("job `{}`", name.value));
        let valid = !name.value.is_empty()
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !name.value.starts_with('.');
        if !valid {
            p.report(
                name.at,
                format!(
                    "job name `{}` may hold only letters, digits, `_`, `-` and `.` (it names sandbox folders and metric labels)",
                    name.value
                ),
            );
        }
    }
    let description = f.string("description", p).map(|d| d.value);
    let owner = f.string("owner", p).map(|o| o.value);
    let source = location(&mut f, "source", "the live Delta table's folder", base, p);
    let snapshots = snapshot_source(&mut f, base, p);
    let sandbox = location(
        &mut f,
        "sandbox",
        "the folder under which drills restore",
        base,
        p,
    );
    // The storage profiles of the job's s3:// locations: `storage` for all three, unless
    // `source_storage`, `snapshots.storage` or `sandbox_storage` names another.
    let default_profile = profile_named(&mut f, "storage", profiles, p);
    let source_profile = profile_named(&mut f, "source_storage", profiles, p);
    let sandbox_profile = profile_named(&mut f, "sandbox_storage", profiles, p);
    let pick = |own: &Option<Option<Arc<S3Profile>>>| -> Option<Arc<S3Profile>> {
        match (own, &default_profile) {
            (Some(Some(profile)), _) | (_, Some(Some(profile))) => Some(profile.clone()),
            _ => None,
        }
    };
    let source = source.map(|l| Located::new(with_profile(l.value, &pick(&source_profile)), l.at));
    let sandbox =
        sandbox.map(|l| Located::new(with_profile(l.value, &pick(&sandbox_profile)), l.at));
    let snapshots = snapshots.map(|mut l| {
        let own = l
            .value
            .storage
            .take()
            .map(|name| Some(resolve_profile(&name, profiles, f.context(), p)));
        if let Some(location) = l.value.location_mut() {
            *location = with_profile(location.clone(), &pick(&own.flatten()));
        }
        l
    });
    let suite_field = f.required_string("suite", "the suite file, e.g. \"checks/orders.toml\"", p);
    let objectives = objectives(&mut f, p);
    let copy_concurrency = match f.integer("copy_concurrency", p) {
        None => Some(DEFAULT_COPY_CONCURRENCY),
        Some(Located { value, .. }) if (1..=256).contains(&value) => Some(value as usize),
        Some(Located { value, at }) => {
            p.report(
                at,
                format!(
                    "{}: `copy_concurrency` must be between 1 and 256, found {value}",
                    f.context()
                ),
            );
            None
        }
    };

    let compare = match f.table("compare", format!("{} compare", f.context()), p) {
        None => Some(None),
        Some(c) => compare_spec(c, p).map(Some),
    };
    let redact = f.strings("redact", p).map(|r| r.value).unwrap_or_default();
    let schedule = schedule(&mut f, p);
    let timeout = match optional_duration(&mut f, "timeout", p) {
        Some(Some(d)) if d.value.is_zero() => {
            p.report(
                d.at,
                format!("{}: `timeout` must be longer than 0s", f.context()),
            );
            None
        }
        other => other.map(|d| d.map_or(DEFAULT_DRILL_TIMEOUT, |d| d.value)),
    };
    let jitter =
        optional_duration(&mut f, "jitter", p).map(|d| d.map(|d| d.value).unwrap_or_default());
    let keep_failed_sandbox = optional_duration(&mut f, "keep_failed_sandbox", p)
        .map(|d| d.map_or(DEFAULT_KEEP_FAILED_SANDBOX, |d| d.value));

    if let Some(sandbox) = &sandbox {
        for (role, other) in [
            ("source", source.as_ref().map(|s| &s.value)),
            (
                "snapshots.location",
                snapshots.as_ref().and_then(|s| s.value.location()),
            ),
        ] {
            if let Some(other) = other
                && sandbox.value.overlaps(other)
            {
                p.report(
                    sandbox.at,
                    format!(
                        "{}: the sandbox {} overlaps the {role} {}; a drill must never write where production data or backups live — choose a separate folder",
                        f.context(),
                        sandbox.value,
                        other
                    ),
                );
            }
        }
    }

    let suite = suite_field.as_ref().and_then(|s| {
        let path = base.join(&s.value);
        if !path.is_file() {
            p.report(
                s.at,
                format!(
                    "{}: suite file {} does not exist (suite paths are relative to the configuration file)",
                    f.context(),
                    path.display()
                ),
            );
            return None;
        }
        match load_suite(&path) {
            Ok(suite) => Some((path, suite)),
            Err(problems) => {
                suite_problems.extend(problems);
                None
            }
        }
    });
    f.finish(p);
    let (suite_path, suite) = suite?;
    let sandbox_at = sandbox.as_ref().map(|s| s.at);
    let source = source?.value;
    let snapshots = snapshots?.value.into_source(&source);
    let suite_sha256 = std::fs::read(&suite_path)
        .map(|bytes| crate::primitives::hash::sha256_hex(&bytes))
        .unwrap_or_default();
    Some((
        Job {
            name: name?.value,
            description,
            owner,
            source,
            snapshots,
            sandbox: sandbox?.value,
            suite_path,
            suite,
            objectives: objectives?,
            copy_concurrency: copy_concurrency?,
            compare: compare?,
            redact,
            schedule: schedule?,
            timeout: timeout?,
            jitter: jitter?,
            keep_failed_sandbox: keep_failed_sandbox?,
            config_sha256: String::new(),
            suite_sha256,
        },
        JobPositions {
            name: at,
            sandbox: sandbox_at?,
        },
    ))
}

/// `schedule` and `timezone`: `Some(None)` when the job has no schedule.
fn schedule(f: &mut Fields, p: &mut Problems) -> Option<Option<Schedule>> {
    let expression = f.string("schedule", p);
    let timezone = f.string("timezone", p);
    let Some(expression) = expression else {
        if let Some(tz) = timezone {
            p.report(
                tz.at,
                format!(
                    "{}: `timezone` is set but `schedule` is not; add a schedule such as \"0 30 2 * * *\" or remove the time zone",
                    f.context()
                ),
            );
            return None;
        }
        return Some(None);
    };
    let zone = timezone
        .as_ref()
        .map_or("UTC", |t| t.value.as_str())
        .to_string();
    match Schedule::parse(&expression.value, &zone) {
        Ok(s) => Some(Some(s)),
        Err(e) => {
            let at = match (&e, &timezone) {
                (ScheduleError::TimeZone(_), Some(tz)) => tz.at,
                _ => expression.at,
            };
            p.report(at, format!("{}: {e}", f.context()));
            None
        }
    }
}

fn with_profile(location: Location, profile: &Option<Arc<S3Profile>>) -> Location {
    match profile {
        Some(profile) => location.with_profile(profile.clone()),
        None => location,
    }
}

/// The profile a job's key names: `None` when the key is absent, `Some(None)` when it names no
/// profile (reported).
fn profile_named(
    f: &mut Fields,
    key: &'static str,
    profiles: &HashMap<String, Arc<S3Profile>>,
    p: &mut Problems,
) -> Option<Option<Arc<S3Profile>>> {
    let name = f.string(key, p)?;
    let context = f.context().to_string();
    Some(resolve_profile(&name, profiles, &context, p))
}

fn resolve_profile(
    name: &Located<String>,
    profiles: &HashMap<String, Arc<S3Profile>>,
    context: &str,
    p: &mut Problems,
) -> Option<Arc<S3Profile>> {
    if let Some(profile) = profiles.get(&name.value) {
        return Some(profile.clone());
    }
    let mut known: Vec<&str> = profiles.keys().map(String::as_str).collect();
    known.sort_unstable();
    p.report(
        name.at,
        format!(
            "{context}: no storage profile `{}`; define it as [storage.{}] (profiles: {})",
            name.value,
            name.value,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    );
    None
}

/// `[storage.NAME]` tables: S3 profiles.
fn storage_profiles(mut f: Fields, p: &mut Problems) -> HashMap<String, Arc<S3Profile>> {
    let mut profiles = HashMap::new();
    for name in f.keys() {
        let Some(mut t) = f.table_key(&name, format!("[storage.{name}]"), p) else {
            continue;
        };
        let endpoint = t.string("endpoint", p).and_then(|e| {
            if e.value.starts_with("http://") || e.value.starts_with("https://") {
                Some(e.value)
            } else {
                p.report(
                    e.at,
                    format!(
                        "[storage.{name}]: `endpoint` must be an http:// or https:// URL, e.g. \"http://minio:9000\""
                    ),
                );
                None
            }
        });
        let region = t.string("region", p).map(|r| r.value);
        let path_style = t.boolean("path_style", p).is_some_and(|b| b.value);
        let id = t.string("access_key_id_env", p);
        let secret = t.string("secret_access_key_env", p);
        let keys = match (id, secret) {
            (Some(id), Some(secret)) => Some((id.value, secret.value)),
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => {
                p.report(
                    one.at,
                    format!(
                        "[storage.{name}]: give both `access_key_id_env` and `secret_access_key_env` (the names of the environment variables with the keys), or neither for the AWS default credential chain"
                    ),
                );
                None
            }
        };
        t.finish(p);
        profiles.insert(
            name.clone(),
            Arc::new(S3Profile::new(name, endpoint, region, path_style, keys)),
        );
    }
    profiles
}

fn location(
    f: &mut Fields,
    key: &'static str,
    want: &str,
    base: &Path,
    p: &mut Problems,
) -> Option<Located<Location>> {
    let text = f.required_string(key, want, p)?;
    match Location::parse(&text.value, base) {
        Ok(l) => Some(Located::new(l, text.at)),
        Err(e) => {
            p.report(text.at, format!("{}: `{key}`: {e}", f.context()));
            None
        }
    }
}

/// A snapshot source as read, before the job's storage profiles are applied.
struct SnapshotSpec {
    kind: SnapshotKindSpec,
    /// `snapshots.storage`: the profile of the backup location, when it differs from the job's.
    storage: Option<Located<String>>,
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
    fn location(&self) -> Option<&Location> {
        match &self.kind {
            SnapshotKindSpec::DeltaCopy { location, .. }
            | SnapshotKindSpec::Versions { location, .. } => Some(location),
            SnapshotKindSpec::TimeTravel(_) => None,
        }
    }

    fn location_mut(&mut self) -> Option<&mut Location> {
        match &mut self.kind {
            SnapshotKindSpec::DeltaCopy { location, .. }
            | SnapshotKindSpec::Versions { location, .. } => Some(location),
            SnapshotKindSpec::TimeTravel(_) => None,
        }
    }

    fn into_source(self, source: &Location) -> SnapshotSource {
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

const SNAPSHOT_KINDS: &str = "\"delta_copy\", \"delta_time_travel\" or \"s3_versions\"";

fn snapshot_source(f: &mut Fields, base: &Path, p: &mut Problems) -> Option<Located<SnapshotSpec>> {
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
            let location = location(
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
            let location = location(
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
fn point_in_time(s: &mut Fields, versions: bool, p: &mut Problems) -> Option<PointInTime> {
    let lag = optional_duration(s, "lag", p);
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

fn compare_spec(mut c: Fields, p: &mut Problems) -> Option<CompareSpec> {
    let key = c.strings("key", p);
    let fraction = c.number("sample_fraction", p);
    let rows = c.integer("sample_rows", p);
    let fallback = c.string("fallback", p);
    let tolerance = c.number_map("tolerance", p);
    let mut ok = true;
    let key = match key {
        Some(k) if !k.value.is_empty() => Some(k.value),
        Some(k) => {
            p.report(
                k.at,
                format!("{}: `key` is empty; name the key column(s)", c.context()),
            );
            None
        }
        None => {
            p.report(
                c.at(),
                format!(
                    "{}: missing `key` (the column(s) that identify a row)",
                    c.context()
                ),
            );
            None
        }
    };
    let sample = match (fraction, rows) {
        (Some(f), None) if f.value > 0.0 && f.value <= 1.0 => Some(SampleSize::Fraction(f.value)),
        (Some(f), None) => {
            p.report(
                f.at,
                format!(
                    "{}: `sample_fraction` must be above 0 and at most 1, found {}",
                    c.context(),
                    f.value
                ),
            );
            None
        }
        (None, Some(r)) if r.value >= 1 => Some(SampleSize::Rows(r.value as u64)),
        (None, Some(r)) => {
            p.report(
                r.at,
                format!(
                    "{}: `sample_rows` must be at least 1, found {}",
                    c.context(),
                    r.value
                ),
            );
            None
        }
        (Some(_), Some(r)) => {
            p.report(
                r.at,
                format!(
                    "{}: give `sample_fraction` or `sample_rows`, not both",
                    c.context()
                ),
            );
            None
        }
        (None, None) => {
            p.report(
                c.at(),
                format!(
                    "{}: missing `sample_fraction` (e.g. 0.01) or `sample_rows` (e.g. 10000)",
                    c.context()
                ),
            );
            None
        }
    };
    let fallback = match fallback {
        None => Some(Fallback::None),
        Some(f) => match f.value.as_str() {
            "none" => Some(Fallback::None),
            "append_only" => Some(Fallback::AppendOnly),
            other => {
                p.report(
                    f.at,
                    format!(
                        "{}: fallback `{other}` is unknown; use \"none\" or \"append_only\"",
                        c.context()
                    ),
                );
                None
            }
        },
    };
    let tolerance = tolerance.map(|t| t.value).unwrap_or_default();
    for (column, t) in &tolerance {
        if *t < 0.0 {
            ok = false;
            p.report(
                c.at(),
                format!("{}: tolerance of `{column}` is negative", c.context()),
            );
        }
    }
    c.finish(p);
    if !ok {
        return None;
    }
    Some(CompareSpec {
        key: key?,
        sample: sample?,
        fallback: fallback?,
        tolerance,
    })
}

fn objectives(f: &mut Fields, p: &mut Problems) -> Option<Objectives> {
    let context = format!("{} objectives", f.context());
    let mut o = f.required_table(
        "objectives",
        "e.g. { rpo = \"26h\", rto = \"2h\" }",
        context,
        p,
    )?;
    let duration = |key: &'static str, want: &str, o: &mut Fields, p: &mut Problems| {
        let text = o.required_string(key, want, p)?;
        match parse_duration(&text.value) {
            Ok(d) => Some(d),
            Err(e) => {
                p.report(text.at, format!("{} `{key}`: {e}", o.context()));
                None
            }
        }
    };
    let rpo = duration(
        "rpo",
        "the recovery point objective, e.g. \"26h\"",
        &mut o,
        p,
    );
    let rto = duration("rto", "the recovery time objective, e.g. \"2h\"", &mut o, p);
    o.finish(p);
    Some(Objectives {
        rpo: rpo?,
        rto: rto?,
    })
}
