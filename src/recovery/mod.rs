//! `restore`: a snapshot restored for real, into a target outside every sandbox, by the very
//! procedure and checks its drills proved — then the target verified with the job's suite and
//! compared with the fingerprint its drill recorded. What the target held before is moved aside,
//! never deleted; a snapshot no drill passed with the same configuration and suite is refused
//! unless forced; every restore is recorded like a drill, as a record of its own kind.

pub mod gate;

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::config::Job;
use crate::drill::{RecoveryEvidence, SnapshotEvidence};
use crate::history::journal::Journal;
use crate::kinds::{self, RestorePlan, Snapshot, SnapshotSource};
use crate::primitives::bytes::human_bytes;
use crate::storage::{Location, target};

/// What `restore` was asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// The configuration file, as the commands a refusal suggests name it.
    pub config: std::path::PathBuf,
    pub target: Location,
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
    /// Whether the gate refused and `--force` overrode it.
    pub forced: bool,
    pub target: Location,
    /// Where the target's present contents go first, when it holds any (`--replace`).
    pub aside: Option<Location>,
    pub restore: RestorePlan,
}

/// Checks everything a restore needs before it writes anything: the target is not a backup
/// or sandbox location, the snapshot passed a drill (the parity gate), the target is empty or
/// may be replaced. An error says why the restore is refused and what to do.
pub async fn prepare(
    job: &Job,
    journal: &Journal,
    request: &Request,
    run_id: String,
    now: DateTime<Utc>,
) -> Result<Plan, String> {
    if let SnapshotSource::PgDump(_) = job.snapshots {
        return Err(format!(
            "job `{}`: restoring a pg_dump job for real is not in this version; follow the recovery steps of its runbook (restore-drill runbook --config {} {})",
            job.name,
            request.config.display(),
            job.name
        ));
    }
    if request.reason.trim().is_empty() {
        return Err("--reason is empty; say why this restore is done (it is recorded)".into());
    }
    let target = &request.target;
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
    let forced = |refusal: String| {
        if request.force {
            Ok(())
        } else {
            Err(format!(
                "{refusal}. Nothing was written. (--force restores anyway; the override is recorded.)"
            ))
        }
    };
    let pinned = match &request.snapshot {
        Some(id) => Some(id.clone()),
        None => {
            let newest = gate::newest_verified(journal, job).map_err(|e| e.to_string())?;
            if newest.is_none() {
                forced(format!(
                    "job `{}`: no snapshot passed a drill with the current configuration and suite (journal {})",
                    job.name,
                    journal.dir().display()
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
    let verdict =
        gate::check(journal, &request.config, job, &snapshot.id, now).map_err(|e| e.to_string())?;
    if let Some(refusal) = &verdict.refusal {
        forced(refusal.clone())?;
    }
    let holds = target::holds_anything(target)
        .await
        .map_err(|e| e.to_string())?;
    let aside = match (holds, request.replace) {
        (false, _) => None,
        (true, false) => {
            return Err(format!(
                "the target {target} already holds data; nothing was written. --replace moves its contents aside first (nothing is deleted), or choose an empty target"
            ));
        }
        (true, true) => Some(target::aside_of(target, &run_id).ok_or_else(|| {
            format!("the target {target} has no name to move its contents aside beside; choose a folder below it")
        })?),
    };
    let restore = kind
        .plan_restore(&snapshot)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Plan {
        run_id,
        forced: verdict.refusal.is_some(),
        snapshot,
        verdict,
        target: target.clone(),
        aside,
        restore,
    })
}

impl Plan {
    /// The record's evidence of this restore.
    pub fn evidence(&self, request: &Request) -> RecoveryEvidence {
        let (user, host) = who();
        RecoveryEvidence {
            reason: request.reason.trim().to_string(),
            user,
            host,
            target: self.target.to_string(),
            moved_aside: self.aside.as_ref().map(Location::to_string),
            forced: self.forced,
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
            if self.forced { "FORCED: " } else { "" },
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
        let _ = writeln!(out, "target     {}", self.target);
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
