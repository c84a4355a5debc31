//! `restore`: a snapshot restored for real (see [`crate::recovery`]), printed and recorded.

use std::path::Path;

use super::drill::{Stop, drive, finish};
use super::progress::TerminalProgress;
use super::{CommandError, Exit, load};
use crate::clock::{Clock, SystemClock};
use crate::drill::{
    self, DrillOptions, NoProgress, Progress, RestoreInto, SnapshotEvidence, Target,
};
use crate::primitives::run_id::RunId;
use crate::recovery::{self, Place, Request};
use crate::storage::RunSandbox;

/// What `restore` is given besides the configuration and the job.
#[derive(Debug, clap::Args)]
pub struct Arguments {
    /// Where to restore: a folder, or an s3://bucket/prefix/ written with the job's sandbox
    /// storage profile; for a pg_dump job, postgres://USER@HOST:PORT/NAME, a new database.
    #[arg(long)]
    pub to: String,
    /// The environment variable holding the password of a postgres:// target.
    #[arg(long)]
    pub password_env: Option<String>,
    /// Why this restore is done, for the record (e.g. an incident number).
    #[arg(long)]
    pub reason: String,
    /// The snapshot to restore (default: the newest that passed a drill with the current
    /// configuration and suite).
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Move TARGET's present contents aside (the output says where) before restoring.
    #[arg(long)]
    pub replace: bool,
    /// Restore even though no drill with the current configuration and suite passed the
    /// snapshot recently; the override is recorded.
    #[arg(long)]
    pub force: bool,
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the JSON report instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// `restore`: checks, prints the plan, moves the target's contents aside when asked, restores
/// and verifies, prints the summary and records the restore. The exit code is its outcome.
pub(super) async fn restore(config_path: &Path, job: &str, arguments: Arguments) -> Exit {
    let config = load(config_path)?;
    let job = config.job(job).map_err(CommandError::error)?;
    let here = std::env::current_dir().map_err(CommandError::error)?;
    let target = Place::parse(&arguments.to, arguments.password_env, &here, &job.sandbox)
        .map_err(|e| CommandError::error(format!("--to: {e}")))?;
    let request = Request {
        config: std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf()),
        target,
        reason: arguments.reason,
        snapshot: arguments.snapshot,
        replace: arguments.replace,
        force: arguments.force,
    };
    let started_at = SystemClock.now();
    let run_id = RunId::new(started_at).into_string();
    let plan = recovery::prepare(job, &config.history, &request, run_id.clone(), started_at)
        .await
        .map_err(CommandError::error)?;
    if arguments.dry_run {
        if arguments.json {
            let described = serde_json::json!({
                "job": job.name,
                "snapshot": SnapshotEvidence::from(&plan.snapshot),
                "gate": plan.verdict.said,
                "forced": plan.forced(),
                "drill_run_id": plan.verdict.drill.as_ref().map(|d| &d.run_id),
                "target": plan.target.to_string(),
                "moved_aside_to": plan.aside.as_ref().map(Place::to_string),
                "method": plan.restore.method,
                "files": plan.restore.files,
                "bytes": plan.restore.bytes,
            });
            println!("{}", serde_json::to_string_pretty(&described)?);
        } else {
            print!("{}", plan.render(job));
            println!("dry run    nothing was written");
        }
        return Ok(0);
    }
    let say = |line: String| {
        if arguments.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(plan.render(job).trim_end().to_string());
    let evidence = plan.evidence(&request);
    if let Some(aside) = &plan.aside {
        recovery::move_aside(&plan.target, aside)
            .await
            .map_err(|e| {
                CommandError::error(format!(
                    "could not move the present contents of {} aside to {aside}: {e}; nothing was restored",
                    plan.target
                ))
            })?;
        say(format!(
            "moved      the previous contents of {} are now at {aside}",
            plan.target
        ));
    }
    if let Place::Storage(location) = &plan.target
        && let Some(path) = location.local_path()
    {
        std::fs::create_dir_all(path)
            .map_err(|e| CommandError::error(format!("cannot create {}: {e}", path.display())))?;
    }
    let progress: std::sync::Arc<dyn Progress> = if arguments.json {
        std::sync::Arc::new(NoProgress)
    } else {
        TerminalProgress::shared()
    };
    let options = DrillOptions {
        snapshot: Some(plan.snapshot.id.clone()),
        run_id: Some(run_id.clone()),
        into: Some(RestoreInto {
            target: match &plan.target {
                Place::Storage(location) if plan.new_version => {
                    Target::NewVersion(RunSandbox::target(location))
                }
                Place::Storage(location) => Target::Folder(RunSandbox::target(location)),
                Place::Database(url) => Target::Database(url.clone()),
            },
            drilled: plan
                .verdict
                .drill
                .as_ref()
                .filter(|d| !d.fingerprints.is_empty())
                .map(|d| (d.run_id.clone(), d.fingerprints.clone())),
        }),
        ..Default::default()
    };
    let unusable = |why: &str| {
        let aside = plan.aside.as_ref().map_or(String::new(), |a| {
            format!("; its previous contents are intact at {a}")
        });
        format!(
            "{why}: the target {} holds an incomplete restore and must not be used{aside}",
            plan.target
        )
    };
    let mut report = drive(job, options, progress, started_at, |stop| match stop {
        Stop::Timeout => unusable(&drill::timeout_reason(job)),
        Stop::Interrupted => unusable("interrupted before the restore finished"),
    })
    .await;
    report.recovery = Some(evidence);
    finish(&config, job, &report, arguments.json).await
}
