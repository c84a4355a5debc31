//! A job's recovery runbook, written from its configuration and its drills: what a loss means
//! and whom to tell, the RTO and RPO the drills measured, the access and tools a restore needs,
//! the last verified snapshots, and the recovery procedure as the exact commands for the job's
//! snapshot kind. The same inputs give the same runbook. Rendered as Markdown or one HTML page.

mod procedure;
mod render;

pub use render::{html, markdown};

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::config::Job;
use crate::drill::{DrillSummary, Outcome};
use crate::primitives::duration::format_duration;
use crate::report::nearest_rank;

/// How many drills, newest first, the measured figures are taken from.
pub const RECENT_DRILLS: usize = 30;
/// How many verified snapshots the runbook lists.
const VERIFIED_LISTED: usize = 5;

/// A job's runbook.
#[derive(Debug, Clone, Serialize)]
pub struct Runbook {
    pub job: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub severity: Option<String>,
    pub affects: Vec<String>,
    pub dependents: Vec<String>,
    pub incident_channel: Option<String>,
    /// The snapshot kind and where the backups are.
    pub kind: String,
    pub backups: String,
    pub source: String,
    pub schedule: Option<String>,
    /// Problems to see first: the last drill failed, or no drill passed for too long.
    pub warnings: Vec<String>,
    pub rto: Measured,
    pub rpo: Measured,
    /// How many drills the figures are taken from.
    pub drills: usize,
    pub last_drill: Option<DrillLine>,
    pub last_passed: Option<DrillLine>,
    /// Snapshots that passed a drill, newest first, each with the newest drill that passed it.
    pub verified: Vec<Verified>,
    pub access: Vec<String>,
    pub tools: Vec<String>,
    pub steps: Vec<Step>,
    pub post_incident: Vec<String>,
}

/// A measured figure of the recent drills against its objective, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measured {
    pub objective: f64,
    pub median: Option<f64>,
    pub p95: Option<f64>,
    pub last: Option<f64>,
}

/// One drill as the runbook names it.
#[derive(Debug, Clone, Serialize)]
pub struct DrillLine {
    pub run_id: String,
    pub outcome: String,
    pub finished_at: String,
    pub snapshot: Option<String>,
}

/// A snapshot that passed a drill.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub snapshot: String,
    /// The version or the dump's time, when known.
    pub point: Option<String>,
    pub verified_at: String,
    pub run_id: String,
    pub rto_seconds: Option<f64>,
}

/// One step of the procedure: what to do, and the commands that do it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub title: String,
    pub text: Vec<String>,
    /// A list after the text (e.g. the checks).
    pub items: Vec<String>,
    pub commands: Vec<Command>,
}

/// A command to type, and whether it is restore-drill's own (which the project's tests run).
#[derive(Debug, Clone, Serialize)]
pub struct Command {
    pub line: String,
    pub restore_drill: bool,
}

impl Command {
    fn ours(line: String) -> Command {
        Command {
            line,
            restore_drill: true,
        }
    }

    fn theirs(line: String) -> Command {
        Command {
            line,
            restore_drill: false,
        }
    }
}

/// Writes the runbook of `job` of the configuration file `config_file` from its drills (any
/// order; other jobs' are ignored). `now` only decides whether the last passed drill is too old.
pub fn build(
    config_file: &Path,
    job: &Job,
    drills: &[DrillSummary],
    now: DateTime<Utc>,
) -> Runbook {
    let mut recent: Vec<&DrillSummary> = drills.iter().filter(|d| d.job == job.name).collect();
    recent.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then(b.run_id.cmp(&a.run_id))
    });
    let counted: Vec<&DrillSummary> = recent
        .iter()
        .copied()
        .filter(|d| d.outcome != Outcome::Aborted)
        .take(RECENT_DRILLS)
        .collect();
    let passed: Vec<&DrillSummary> = recent
        .iter()
        .copied()
        .filter(|d| d.outcome == Outcome::Passed)
        .collect();
    let last_drill = counted.first().map(|d| line(d));
    let last_passed = passed.first().map(|d| line(d));
    let mut verified: Vec<Verified> = Vec::new();
    for d in &passed {
        let Some(snapshot) = &d.snapshot else {
            continue;
        };
        if verified.iter().any(|v| v.snapshot == snapshot.id) {
            continue;
        }
        verified.push(Verified {
            snapshot: snapshot.id.clone(),
            point: snapshot
                .version
                .map(|v| format!("version {v}"))
                .or_else(|| {
                    snapshot
                        .commit_timestamp
                        .map(|t| format!("taken {}", time(t)))
                }),
            verified_at: time(d.finished_at),
            run_id: d.run_id.clone(),
            rto_seconds: d.rto_seconds,
        });
        if verified.len() == VERIFIED_LISTED {
            break;
        }
    }
    let rto = measured(
        counted.iter().filter_map(|d| d.rto_seconds),
        job.objectives.rto.as_secs_f64(),
    );
    let rpo = measured(
        counted.iter().filter_map(|d| d.rpo_seconds),
        job.objectives.rpo.as_secs_f64(),
    );
    let warnings = warnings(job, counted.first().copied(), passed.first().copied(), now);
    let config = config_file.display().to_string();
    let context = procedure::Context {
        config: &config,
        job,
        verified: verified.first(),
        rto: rto.median,
    };
    let steps = procedure::steps(&context);
    let post_incident = procedure::post_incident(&context);
    Runbook {
        job: job.name.clone(),
        description: job.description.clone(),
        owner: job.owner.clone(),
        severity: job.incident.severity.clone(),
        affects: job.incident.affects.clone(),
        dependents: job.incident.dependents.clone(),
        incident_channel: job.incident.incident_channel.clone(),
        kind: job.snapshots.kind().to_string(),
        backups: procedure::backups(job),
        source: job.source.to_string(),
        schedule: job
            .schedule
            .as_ref()
            .map(|s| format!("{} ({})", s.expression(), s.timezone())),
        warnings,
        rto,
        rpo,
        drills: counted.len(),
        last_drill,
        last_passed,
        verified,
        access: procedure::access(job),
        tools: procedure::tools(job),
        steps,
        post_incident,
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn line(d: &DrillSummary) -> DrillLine {
    DrillLine {
        run_id: d.run_id.clone(),
        outcome: d.outcome.as_str().to_string(),
        finished_at: time(d.finished_at),
        snapshot: d.snapshot.as_ref().map(|s| s.id.clone()),
    }
}

/// Median, p95 (nearest rank) and the newest of `values` (newest first).
fn measured(values: impl Iterator<Item = f64>, objective: f64) -> Measured {
    let values: Vec<f64> = values.collect();
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    Measured {
        objective,
        median: nearest_rank(&sorted, 0.5),
        p95: nearest_rank(&sorted, 0.95),
        last: values.first().copied(),
    }
}

/// What the reader must see before anything else.
fn warnings(
    job: &Job,
    last: Option<&DrillSummary>,
    last_passed: Option<&DrillSummary>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut out = Vec::new();
    match last {
        None => out.push(
            "No drill of this job is on record: nothing proves its backups can be restored. Drill it before relying on this runbook (step 3)."
                .to_string(),
        ),
        Some(d) if d.outcome != Outcome::Passed => out.push(format!(
            "The last drill ({}, {}{}) {}: that backup may not restore. Restore the newest verified snapshot below, and read the drill's findings with `restore-drill history`.",
            d.run_id,
            time(d.finished_at),
            d.snapshot
                .as_ref()
                .map_or(String::new(), |s| format!(", snapshot {}", s.id)),
            match d.outcome {
                Outcome::Failed => "failed",
                _ => "ended in error",
            }
        )),
        Some(_) => {}
    }
    let allowed = job.schedule.as_ref().and_then(|s| {
        let gap = s.longest_interval(now - chrono::Duration::days(1))?;
        chrono::Duration::from_std(gap + job.timeout + job.jitter).ok()
    });
    match (last_passed, allowed) {
        (Some(p), Some(allowed)) if now - p.finished_at > allowed => out.push(format!(
            "The last passed drill finished {}, longer ago than the schedule `{}` allows ({}): the verified snapshots below may be older than the backups now are.",
            time(p.finished_at),
            job.schedule
                .as_ref()
                .map(|s| s.expression().to_string())
                .unwrap_or_default(),
            allowed
                .to_std()
                .map(format_duration)
                .unwrap_or_default()
        )),
        (None, _) if last.is_some() => out.push(
            "No drill of this job ever passed: no snapshot is verified.".to_string(),
        ),
        _ => {}
    }
    out
}
