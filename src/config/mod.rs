//! Configuration: read the file, substitute `${VAR}`, validate every field (all problems at
//! once, each with file, line and column), and build the jobs.

mod across_jobs;
mod service;
mod substitute;

pub use service::{
    DEFAULT_MAX_CONCURRENT_DRILLS, DEFAULT_PORT, DEFAULT_SHUTDOWN_GRACE, HistorySettings, Replicas,
    Server,
};
pub(crate) use substitute::substitute;

use across_jobs::{Suites, sandboxes_apart};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::kinds::postgres::settings::read_source as read_pg_source;
use crate::kinds::{self, SnapshotSource, Source};
use crate::primitives::duration::parse_duration;
use crate::primitives::fields::{Fields, Located, Position, Problem, Problems, parse_document};
use crate::schedule::{Schedule, ScheduleError};
use crate::storage::Location;
use crate::storage::profiles::{
    Profiles, profile_named, read_profiles, resolve_profile, with_profile,
};
use crate::storage::s3::S3Profile;
use crate::verify::compare_settings;
use crate::verify::sample::CompareSpec;
use crate::verify::suite::{Suite, TypeNeed};

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

/// How long a failed drill's sandbox is kept, unless the job sets `keep_failed_sandbox`.
pub(crate) const DEFAULT_KEEP_FAILED_SANDBOX: Duration = Duration::from_secs(48 * 3600);
/// How recent a snapshot's passed drill must be for `restore`, unless the job sets
/// `restore_requires_drill_within`.
pub(crate) const DEFAULT_RESTORE_REQUIRES_DRILL_WITHIN: Duration = Duration::from_secs(7 * 86400);
/// A drill still running after this long is cancelled, unless the job sets `timeout`.
pub(crate) const DEFAULT_DRILL_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

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

impl Job {
    /// What in the job does not fit a table with these columns (name, Delta type): suite checks
    /// reading a column it lacks or of the wrong type, `compare.key` and `rpo_column`.
    pub fn misfits(&self, columns: &[(String, String)]) -> Vec<String> {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let mut problems: Vec<String> = Vec::new();
        if let Some(spec) = &self.compare {
            for column in spec.key.iter().filter(|k| !names.contains(&k.as_str())) {
                problems.push(format!(
                    "{}: compare.key names column `{column}`, which the table does not have; its columns are: {}",
                    self.name,
                    names.join(", ")
                ));
            }
        }
        if let Some(column) = &self.rpo_column {
            match columns.iter().find(|(n, _)| n == column) {
                None => problems.push(format!(
                    "{}: rpo_column names column `{column}`, which the table does not have; its columns are: {}",
                    self.name,
                    names.join(", ")
                )),
                Some((_, t)) if !TypeNeed::Timestamp.fits(t) => problems.push(format!(
                    "{}: rpo_column needs {} but `{column}` is {t}",
                    self.name,
                    TypeNeed::Timestamp.describe()
                )),
                Some(_) => {}
            }
        }
        problems.extend(
            self.suite
                .mismatches(&self.suite_path, columns)
                .iter()
                .map(|p| p.to_string()),
        );
        problems
    }
}

impl Job {
    /// What in a database job's suite does not fit the database's tables: a table it lacks, or
    /// a column its table lacks or of the wrong type.
    pub fn table_misfits(&self, tables: &[kinds::TableColumns]) -> Vec<String> {
        let mut problems = Vec::new();
        let find = |table: &str| kinds::TableColumns::find(tables, table);
        if let Some((table, column)) = self
            .rpo_column
            .as_deref()
            .and_then(kinds::postgres::split_column)
        {
            let found = find(table).and_then(|t| t.columns.iter().find(|(c, _)| c == column));
            match found {
                None => problems.push(format!(
                    "{}: rpo_column names `{column}` of table `{table}`, which the source does not have",
                    self.name
                )),
                Some((_, t)) if !TypeNeed::Timestamp.fits(t) => problems.push(format!(
                    "{}: rpo_column needs {} but `{table}.{column}` is {t}",
                    self.name,
                    TypeNeed::Timestamp.describe()
                )),
                Some(_) => {}
            }
        }
        for table in self.suite.tables() {
            match find(table) {
                None => problems.push(format!(
                    "{}: the suite reads table `{table}`, which the source does not have; its tables are: {}",
                    self.name,
                    tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
                Some(t) => problems.extend(
                    self.suite
                        .for_table(table)
                        .mismatches(&self.suite_path, &t.columns)
                        .iter()
                        .map(|p| format!("{}: table {table}: {p}", self.name)),
                ),
            }
        }
        problems
    }
}

/// One protected dataset.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// What the job's runbook says of an incident: how bad, what it affects, whom to tell.
    pub incident: Incident,
    pub source: Source,
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
    /// A timestamp or date column whose newest value measures the RPO: the source's newest
    /// minus the restored data's newest (what a restore would lose), instead of commit times.
    pub rpo_column: Option<String>,
    /// When `serve` drills the job; `None`: only when asked (`POST /jobs/{name}/run`).
    pub schedule: Option<Schedule>,
    /// When `serve` self-tests the job (`restore-drill selftest`); `None`: never.
    pub selftest_schedule: Option<Schedule>,
    /// A drill still running after this long is cancelled and recorded as `error`.
    pub timeout: Duration,
    /// Each scheduled drill starts after a random delay of up to this long.
    pub jitter: Duration,
    /// A failed drill's sandbox is kept this long for inspection, then swept.
    pub keep_failed_sandbox: Duration,
    /// `restore` restores only a snapshot that passed a drill with the same configuration and
    /// suite within this long (unless forced).
    pub restore_requires_drill_within: Duration,
    /// The team's programs run against the restored data after the suite passed.
    pub smoke: Vec<crate::smoke::SmokeTest>,
    /// Whether smoke tests see the sandbox profile's keys (or the sandbox server's password).
    pub smoke_credentials: bool,
    /// Whether the RTO measured includes the smoke tests' time.
    pub rto_includes_smoke: bool,
    /// SHA-256 of the configuration file's text and of the suite file's text, for the record.
    pub config_sha256: String,
    pub suite_sha256: String,
}

/// What a job's data means when it is lost, for its runbook (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incident {
    /// How bad a loss is, in the team's own words (e.g. "SEV1").
    pub severity: Option<String>,
    /// The systems and people that see the loss.
    pub affects: Vec<String>,
    /// Jobs, pipelines or services that read the data and must be paused and resynced.
    pub dependents: Vec<String>,
    /// Where an incident is declared (e.g. "#inc-orders").
    pub incident_channel: Option<String>,
}

/// The recovery point and recovery time a job must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Objectives {
    pub rpo: Duration,
    pub rto: Duration,
}

/// The default number of files copied at once by a restore.
pub(crate) const DEFAULT_COPY_CONCURRENCY: usize = 8;

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
    let (server, replicas_at) = match top.table("server", "[server]", &mut p) {
        None => (Some(Server::default()), None),
        Some(f) => service::server(f, &base, &mut p),
    };
    let history = service::history(
        top.table("history", "[history]", &mut p),
        &base,
        &env,
        &mut p,
    );
    if let (Some(at), Some(history)) = (replicas_at, &history)
        && history.postgres.is_none()
    {
        p.report(
            at,
            "[server]: `replicas = \"postgres\"` needs `[history] postgres`: the replicas claim each drill in that database (set it, or remove `replicas` to run one serve process)",
        );
    }
    let profiles = match top.table("storage", "[storage]", &mut p) {
        Some(f) => read_profiles(f, &mut p),
        None => HashMap::new(),
    };
    let config_sha256 = crate::primitives::hash::sha256_hex(raw.as_bytes());
    let mut jobs: Vec<Job> = Vec::new();
    let mut sandbox_positions: Vec<Position> = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut suites = Suites::default();
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
                        read_job(fields, &base, &profiles, &mut p, &mut suites)
                    {
                        job.config_sha256 = config_sha256.clone();
                        if !names.insert(job.name.clone()) {
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
    problems.extend(suites.problems);
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

/// Where a job's name and sandbox are written, for problems found across jobs.
struct JobPositions {
    name: Position,
    sandbox: Position,
}

fn read_job(
    mut f: Fields,
    base: &Path,
    profiles: &Profiles,
    p: &mut Problems,
    suites: &mut Suites,
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
    let incident = Incident {
        severity: f.string("severity", p).map(|v| v.value),
        affects: f.strings("affects", p).map(|v| v.value).unwrap_or_default(),
        dependents: f
            .strings("dependents", p)
            .map(|v| v.value)
            .unwrap_or_default(),
        incident_channel: f.string("incident_channel", p).map(|v| v.value),
    };
    let snapshots = kinds::read_snapshots(&mut f, base, p);
    let reads_database = snapshots.as_ref().is_some_and(|s| s.value.reads_database());
    let source: Option<Located<Source>> = if reads_database {
        let at = f.at();
        read_pg_source(&mut f, p).map(|db| Located::new(Source::Postgres(db), at))
    } else {
        Location::read(&mut f, "source", "the live Delta table's folder", base, p)
            .map(|l| Located::new(Source::Storage(l.value), l.at))
    };
    let sandbox = Location::read(
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
    let source = source.map(|l| {
        let value = match l.value {
            Source::Storage(location) => {
                Source::Storage(with_profile(location, &pick(&source_profile)))
            }
            database => database,
        };
        Located::new(value, l.at)
    });
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
        Some(c) => compare_settings::read(c, p).map(Some),
    };
    let redact = f.strings("redact", p).map(|r| r.value).unwrap_or_default();
    let rpo_column = match f.string("rpo_column", p) {
        Some(c) if c.value.is_empty() => {
            p.report(
                c.at,
                format!(
                    "{}: `rpo_column` is empty; name a timestamp or date column, or leave it out",
                    f.context()
                ),
            );
            None
        }
        other => Some(other.map(|c| c.value)),
    };
    let schedules = schedules(&mut f, p);
    let (schedule, selftest_schedule) = match schedules {
        Some((s, t)) => (Some(s), Some(t)),
        None => (None, None),
    };
    let timeout = match f.duration("timeout", p) {
        Some(Some(d)) if d.value.is_zero() => {
            p.report(
                d.at,
                format!("{}: `timeout` must be longer than 0s", f.context()),
            );
            None
        }
        other => other.map(|d| d.map_or(DEFAULT_DRILL_TIMEOUT, |d| d.value)),
    };
    let jitter = f
        .duration("jitter", p)
        .map(|d| d.map(|d| d.value).unwrap_or_default());
    let keep_failed_sandbox = f
        .duration("keep_failed_sandbox", p)
        .map(|d| d.map_or(DEFAULT_KEEP_FAILED_SANDBOX, |d| d.value));
    let restore_requires_drill_within = f
        .duration("restore_requires_drill_within", p)
        .map(|d| d.map_or(DEFAULT_RESTORE_REQUIRES_DRILL_WITHIN, |d| d.value));
    let smoke = crate::smoke::read(&mut f, base, p);
    let smoke_credentials = f.boolean("smoke_credentials", p).is_some_and(|b| b.value);
    let rto_includes_smoke = f.boolean("rto_includes_smoke", p).is_some_and(|b| b.value);

    if let Some(sandbox) = &sandbox {
        for (role, other) in [
            ("source", source.as_ref().and_then(|s| s.value.location())),
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
        suites.get(&path).map(|(suite, sha256)| (path, suite, sha256))
    });
    if let Some((path, suite, _)) = &suite {
        table_rules(&f, path, suite, reads_database, p);
    }
    if reads_database {
        if let Some(sandbox) = sandbox.as_ref().filter(|s| s.value.is_s3()) {
            p.report(
                sandbox.at,
                format!(
                    "{}: a pg_dump job restores into a server on local disk; give a local `sandbox` folder",
                    f.context()
                ),
            );
        }
        if let Some(Some(column)) = &rpo_column
            && kinds::postgres::split_column(column).is_none()
        {
            p.report(
                at,
                format!(
                    "{}: `rpo_column` `{column}` names no table; a pg_dump job's is schema.table.column, e.g. \"public.orders.updated_at\"",
                    f.context()
                ),
            );
        }
    }
    if let Some(Some(spec)) = &compare {
        let problem = match (reads_database, &spec.table, &spec.as_of) {
            (true, None, _) => {
                Some("names no `table`: give the table compared, e.g. table = \"public.orders\"")
            }
            (true, _, None) => Some(
                "names no `as_of`: a live database changes after its dump; name the column holding when each row last changed, e.g. as_of = \"updated_at\"",
            ),
            (false, Some(_), _) | (false, _, Some(_)) => Some(
                "names `table` or `as_of`, which only a pg_dump job's comparison with a live database takes",
            ),
            _ => None,
        };
        if let Some(problem) = problem {
            p.report(at, format!("{}: `compare` {problem}", f.context()));
        }
    }
    f.finish(p);
    let (suite_path, suite, suite_sha256) = suite?;
    let sandbox_at = sandbox.as_ref().map(|s| s.at);
    let source = source?.value;
    let snapshots_at = snapshots.as_ref()?.at;
    let snapshots = match snapshots?.value.into_source(&source) {
        Ok(s) => s,
        Err(e) => {
            p.report(snapshots_at, format!("job `{}`: {e}", name.as_ref()?.value));
            return None;
        }
    };
    Some((
        Job {
            name: name?.value,
            description,
            owner,
            incident,
            source,
            snapshots,
            sandbox: sandbox?.value,
            suite_path,
            suite,
            objectives: objectives?,
            copy_concurrency: copy_concurrency?,
            compare: compare?,
            redact,
            rpo_column: rpo_column?,
            schedule: schedule?,
            selftest_schedule: selftest_schedule?,
            timeout: timeout?,
            jitter: jitter?,
            keep_failed_sandbox: keep_failed_sandbox?,
            restore_requires_drill_within: restore_requires_drill_within?,
            smoke: smoke?,
            smoke_credentials,
            rto_includes_smoke,
            config_sha256: String::new(),
            suite_sha256,
        },
        JobPositions {
            name: at,
            sandbox: sandbox_at?,
        },
    ))
}

/// A database's suite names the table of each check; a Delta table's names none.
fn table_rules(f: &Fields, path: &Path, suite: &Suite, reads_database: bool, p: &mut Problems) {
    for check in &suite.checks {
        let problem = match (reads_database, &check.table) {
            (true, None) => format!(
                "check `{}` names no `table`; a pg_dump job's checks each name the table they read, e.g. table = \"public.orders\"",
                check.id
            ),
            (false, Some(table)) => format!(
                "check `{}` names table `{table}`, but the job drills one Delta table; remove `table`",
                check.id
            ),
            _ => continue,
        };
        p.report(
            f.at(),
            format!(
                "{}: suite {} line {}: {problem}",
                f.context(),
                path.display(),
                check.at.line
            ),
        );
    }
}

/// `schedule`, `selftest_schedule` and their `timezone`: `Some((None, None))` when the job has
/// neither.
fn schedules(f: &mut Fields, p: &mut Problems) -> Option<(Option<Schedule>, Option<Schedule>)> {
    let expression = f.string("schedule", p);
    let selftest = f.string("selftest_schedule", p);
    let timezone = f.string("timezone", p);
    if expression.is_none() && selftest.is_none() {
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
        return Some((None, None));
    }
    let zone = timezone
        .as_ref()
        .map_or("UTC", |t| t.value.as_str())
        .to_string();
    let mut parse =
        |expression: Option<crate::primitives::fields::Located<String>>| match expression {
            None => Some(None),
            Some(expression) => match Schedule::parse(&expression.value, &zone) {
                Ok(s) => Some(Some(s)),
                Err(e) => {
                    let at = match (&e, &timezone) {
                        (ScheduleError::TimeZone(_), Some(tz)) => tz.at,
                        _ => expression.at,
                    };
                    p.report(at, format!("{}: {e}", f.context()));
                    None
                }
            },
        };
    let schedule = parse(expression);
    let selftest = parse(selftest);
    Some((schedule?, selftest?))
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
