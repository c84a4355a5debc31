//! `restore`: a snapshot restored for real, into a target outside every sandbox, by the very
//! procedure and checks its drills proved — then the target verified with the job's suite and
//! compared with the fingerprint its drill recorded. What the target held before is moved aside,
//! never deleted; a snapshot no drill passed with the same configuration and suite is refused
//! unless forced; every restore is recorded like a drill, as a record of its own kind. A
//! `pg_dump` job restores into a new database named by a `postgres://` target; what was there
//! under that name is renamed aside.

pub mod gate;

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::config::HistorySettings;
use crate::config::Job;
use crate::drill::{RecoveryEvidence, SnapshotEvidence};
use crate::kinds::postgres::settings::PgUrl;
use crate::kinds::postgres::target::{TargetDatabase, aside_name};
use crate::kinds::{self, RestorePlan, Snapshot, SnapshotSource};
use crate::primitives::bytes::human_bytes;
use crate::storage::{Location, target};

/// Where a restore goes: a folder or prefix (Delta tables), or a database (`pg_dump`).
#[derive(Debug, Clone)]
pub enum Place {
    Storage(Location),
    Database(PgUrl),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Storage(location) => location.fmt(f),
            Place::Database(url) => url.fmt(f),
        }
    }
}

impl Place {
    /// `--to` as given: a `postgres://` URL (its password in the variable `password_env`), or a
    /// folder or `s3://` prefix, relative to `here`, written with the profile of `sandbox`.
    pub fn parse(
        text: &str,
        password_env: Option<String>,
        here: &std::path::Path,
        sandbox: &Location,
    ) -> Result<Place, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return PgUrl::parse(text, password_env).map(Place::Database);
        }
        Ok(Place::Storage(
            Location::parse(text, here)?.with_profile_of(sandbox),
        ))
    }
}

/// What `restore` was asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// The configuration file, as the commands a refusal suggests name it.
    pub config: std::path::PathBuf,
    pub target: Place,
    pub reason: String,
    /// The snapshot to restore; `None`: the newest that passed a drill with the current
    /// configuration and suite.
    pub snapshot: Option<String>,
    pub replace: bool,
    pub force: bool,
}

/// A restore checked and ready: nothing has been written yet.
#[derive(Debug)]
pub struct Plan {
    pub run_id: String,
    pub snapshot: Snapshot,
    pub verdict: gate::Verdict,
    pub target: Place,
    /// Where the target's present contents go first, when it holds any (`--replace`).
    pub aside: Option<Place>,
    /// The target is a `delta_time_travel` job's table itself: restored to the snapshot's
    /// version as a new commit, nothing moved aside (its history keeps every version).
    pub new_version: bool,
    pub restore: RestorePlan,
}

/// Checks everything a restore needs before it writes anything: the target fits the job's kind
/// and is not a backup or sandbox location, the snapshot passed a drill (the parity gate), the
/// target is empty or may be replaced. An error says why the restore is refused and what to do.
pub async fn prepare(
    job: &Job,
    history: &HistorySettings,
    request: &Request,
    run_id: String,
    now: DateTime<Utc>,
) -> Result<Plan, String> {
    if request.reason.trim().is_empty() {
        return Err("--reason is empty; say why this restore is done (it is recorded)".into());
    }
    let database = matches!(job.snapshots, SnapshotSource::PgDump(_));
    let new_version = match (&request.target, &job.snapshots) {
        (Place::Storage(target), SnapshotSource::DeltaTimeTravel { source, .. }) => {
            target.resolved() == source.resolved()
        }
        _ => false,
    };
    match (&request.target, database) {
        (Place::Storage(_), false) if new_version => {}
        (Place::Storage(target), false) => refuse_backup_places(job, target)?,
        (Place::Database(_), true) => {}
        (Place::Storage(target), true) => {
            return Err(format!(
                "job `{}` restores dumps into a database: give --to postgres://USER@HOST:PORT/NAME (a new database NAME), not {target}",
                job.name
            ));
        }
        (Place::Database(target), false) => {
            return Err(format!(
                "job `{}` restores a Delta table into a folder or s3:// prefix, not the database {target}",
                job.name
            ));
        }
    }
    let forced = |refusal: String| {
        if request.force {
            Ok(())
        } else {
            Err(format!(
                "{refusal}. Nothing was written. (--force restores anyway; the override is recorded.)"
            ))
        }
    };
    let (records, place) = gate::records(history, job).await?;
    let pinned = match &request.snapshot {
        Some(id) => Some(id.clone()),
        None => {
            let newest = gate::newest_verified(&records, job);
            if newest.is_none() {
                forced(format!(
                    "job `{}`: no snapshot passed a drill with the current configuration and suite ({place})",
                    job.name
                ))?;
            }
            newest
        }
    };
    let kind = kinds::of(&job.snapshots);
    let snapshot = kind
        .choose(pinned.as_deref(), now)
        .await
        .map_err(|e| e.to_string())?;
    let verdict = gate::check((&records, &place), &request.config, job, &snapshot.id, now);
    if let Some(refusal) = &verdict.refusal {
        forced(refusal.clone())?;
    }
    let aside = match &request.target {
        Place::Storage(_) if new_version => None,
        Place::Storage(target) => aside_of_storage(target, request.replace, &run_id).await?,
        Place::Database(target) => aside_of_database(target, request.replace, &run_id).await?,
    };
    let mut snapshot = snapshot;
    if let (true, kinds::RestoreMethod::Rewrite { version }) = (new_version, &snapshot.method) {
        snapshot.method = kinds::RestoreMethod::NewVersion { version: *version };
    }
    let restore = match &request.target {
        Place::Database(target) => kinds::restoring_into(&job.snapshots, target),
        Place::Storage(_) => None,
    }
    .unwrap_or(kind)
    .plan_restore(&snapshot)
    .await
    .map_err(|e| e.to_string())?;
    Ok(Plan {
        run_id,
        snapshot,
        verdict,
        target: request.target.clone(),
        aside,
        new_version,
        restore,
    })
}

/// Refuses a folder or prefix that overlaps the job's backups or its sandbox.
fn refuse_backup_places(job: &Job, target: &Location) -> Result<(), String> {
    let backups = job.snapshots.location();
    if target.overlaps(backups) {
        let what = match job.snapshots {
            SnapshotSource::DeltaTimeTravel { .. } => {
                "the source, whose own history holds this job's snapshots"
            }
            _ => "the job's backups",
        };
        return Err(format!(
            "the target {target} overlaps {what} at {backups}; a restore never writes where backups live — choose another target"
        ));
    }
    if target.overlaps(&job.sandbox) {
        return Err(format!(
            "the target {target} overlaps the job's sandbox {}, whose folders drills remove; choose a target outside it",
            job.sandbox
        ));
    }
    Ok(())
}

/// Where a folder's or prefix's contents go first: `None` when it holds nothing; refused when
/// it holds something and `replace` is not given.
async fn aside_of_storage(
    target: &Location,
    replace: bool,
    run_id: &str,
) -> Result<Option<Place>, String> {
    let holds = target::holds_anything(target)
        .await
        .map_err(|e| e.to_string())?;
    if !holds {
        return Ok(None);
    }
    if !replace {
        return Err(occupied(&target.to_string()));
    }
    target::aside_of(target, run_id)
        .map(|aside| Some(Place::Storage(aside)))
        .ok_or_else(|| {
            format!("the target {target} has no name to move its contents aside beside; choose a folder below it")
        })
}

/// Where a database goes first: `None` when it does not exist; refused when it exists and
/// `replace` is not given, or when its new name is taken.
async fn aside_of_database(
    target: &PgUrl,
    replace: bool,
    run_id: &str,
) -> Result<Option<Place>, String> {
    let server = TargetDatabase::connect(target).await?;
    if !server.exists(&server.name).await? {
        return Ok(None);
    }
    if !replace {
        return Err(occupied(&format!("database {target}")));
    }
    let aside = aside_name(&server.name, run_id);
    if server.exists(&aside).await? {
        return Err(format!(
            "the database {aside} exists already; nothing was written"
        ));
    }
    Ok(Some(Place::Database(target.with_database(&aside))))
}

/// The refusal of a target that holds data.
fn occupied(target: &str) -> String {
    format!(
        "the target {target} already holds data; nothing was written. --replace moves its contents aside first (nothing is deleted), or choose an empty target"
    )
}

/// Moves the target's present contents to `aside`.
pub async fn move_aside(target: &Place, aside: &Place) -> Result<(), String> {
    match (target, aside) {
        (Place::Storage(from), Place::Storage(to)) => target::move_aside(from, to)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        (Place::Database(from), Place::Database(to)) => {
            let name = to
                .database()
                .ok_or_else(|| format!("{to} names no database"))?;
            TargetDatabase::connect(from).await?.move_aside(&name).await
        }
        _ => Err(format!(
            "{target} and {aside} are not the same kind of place"
        )),
    }
}

impl Plan {
    /// Whether the gate refused and `--force` overrode it (a refused plan exists only then).
    pub fn forced(&self) -> bool {
        self.verdict.refusal.is_some()
    }

    /// The record's evidence of this restore.
    pub fn evidence(&self, request: &Request) -> RecoveryEvidence {
        let (user, host) = who();
        RecoveryEvidence {
            reason: request.reason.trim().to_string(),
            user,
            host,
            target: self.target.to_string(),
            moved_aside: self.aside.as_ref().map(Place::to_string),
            forced: self.forced(),
            gate: self.verdict.said.clone(),
            drill_run_id: self.verdict.drill.as_ref().map(|d| d.run_id.clone()),
        }
    }

    /// The plan in words, as `--dry-run` prints it and a restore prints before it starts.
    pub fn render(&self, job: &Job) -> String {
        let mut out = String::new();
        let snapshot = SnapshotEvidence::from(&self.snapshot);
        let version = snapshot
            .version
            .map_or(String::new(), |v| format!(" (version {v})"));
        let _ = writeln!(out, "restore    {}  {}", job.name, self.run_id);
        let _ = writeln!(out, "snapshot   {}{version}", snapshot.id);
        let _ = writeln!(out, "           {}", snapshot.location);
        let _ = writeln!(
            out,
            "gate       {}{}",
            if self.forced() { "FORCED: " } else { "" },
            self.verdict.said
        );
        let _ = writeln!(
            out,
            "restore    {}: {} files, {} with {} copies at once",
            self.restore.method,
            self.restore.files,
            human_bytes(self.restore.bytes),
            job.copy_concurrency
        );
        let _ = writeln!(
            out,
            "target     {}{}",
            self.target,
            if self.new_version {
                " (the table itself, as a new version: its history keeps every version)"
            } else {
                ""
            }
        );
        if let Some(aside) = &self.aside {
            let _ = writeln!(
                out,
                "replace    its present contents are first moved aside to {aside} (nothing is deleted)"
            );
        }
        let _ = writeln!(
            out,
            "verify     structure, {} check(s) of {}, fingerprint equal to drill {}",
            job.suite.checks.len(),
            job.suite_path.display(),
            self.verdict
                .drill
                .as_ref()
                .map_or("(none: not compared)", |d| d.run_id.as_str())
        );
        out
    }
}

/// The OS user and host running this process, for the record.
fn who() -> (String, String) {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(user_of_process)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    (user, host)
}

/// The name of the process's real user, from `/proc/self/status` and `/etc/passwd`.
fn user_of_process() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(
        passwd
            .lines()
            .find_map(|l| {
                let fields: Vec<&str> = l.split(':').collect();
                (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_string())
            })
            .unwrap_or_else(|| format!("uid {uid}")),
    )
}
