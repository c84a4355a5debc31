//! What `/jobs` says about each job: its schedule, the drill running now, the last drill and
//! the objectives.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Trigger;
use crate::config::Job;
use crate::drill::{self, Outcome};

/// What `/jobs` says about one job.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// The cron expression, or `None` for a job drilled only on request.
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub running: Option<RunningDrill>,
    pub last: Option<LastDrill>,
    pub last_success: Option<DateTime<Utc>>,
    pub objectives: Objectives,
    pub timeout_seconds: u64,
    /// Drills finished since the service started.
    pub runs: u64,
    /// Scheduled drills skipped because the previous one was still running.
    pub skipped_runs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunningDrill {
    pub run_id: String,
    pub trigger: Trigger,
    pub queued_at: DateTime<Utc>,
    /// When it got its turn (`None` while it waits for a free drill slot).
    pub started_at: Option<DateTime<Utc>>,
    /// The replica that runs it (`[server] replicas = "postgres"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastDrill {
    pub run_id: String,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub findings: usize,
    pub error: Option<String>,
    pub rpo_seconds: Option<f64>,
    pub rto_seconds: Option<f64>,
    /// The replica that ran it, where replicas claim drills and the claim is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

impl From<&drill::DrillSummary> for LastDrill {
    fn from(last: &drill::DrillSummary) -> Self {
        Self {
            run_id: last.run_id.clone(),
            outcome: last.outcome,
            started_at: last.started_at,
            finished_at: last.finished_at,
            findings: last.findings.len(),
            error: last.error.clone(),
            rpo_seconds: last.rpo_seconds,
            rto_seconds: last.rto_seconds,
            replica: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Objectives {
    pub rpo_seconds: f64,
    pub rto_seconds: f64,
}

pub(super) fn status_of(job: &Job) -> JobStatus {
    JobStatus {
        name: job.name.clone(),
        description: job.description.clone(),
        owner: job.owner.clone(),
        schedule: job.schedule.as_ref().map(|s| s.expression().to_string()),
        timezone: job.schedule.as_ref().map(|s| s.timezone().to_string()),
        next_run: None,
        running: None,
        last: None,
        last_success: None,
        objectives: Objectives {
            rpo_seconds: job.objectives.rpo.as_secs_f64(),
            rto_seconds: job.objectives.rto.as_secs_f64(),
        },
        timeout_seconds: job.timeout.as_secs(),
        runs: 0,
        skipped_runs: 0,
    }
}
