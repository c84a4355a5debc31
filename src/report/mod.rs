//! Audit reports: for a period, per job, how many drills ran and how they ended, each day with
//! or without a verified restore, every failure with its findings, the RPO and RTO measured
//! against the objectives, the newest verified snapshot, and whether the journal's chain is
//! intact. Rendered as Markdown, one self-contained HTML page, JSON or JUnit XML.

pub(crate) mod render;

pub use render::{html, junit, markdown};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::drill::{DrillSummary, Outcome};
use crate::history::journal::ChainCheck;

/// The report of a period.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// First and last day of the period (UTC), both included.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub generated_at: DateTime<Utc>,
    pub tool_version: String,
    /// Where the drills were read from.
    pub source: String,
    pub jobs: Vec<JobReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub drills: usize,
    pub passed: usize,
    pub failed: usize,
    pub error: usize,
    pub aborted: usize,
    /// Every day of the period and whether a drill passed on it.
    pub days: Vec<Day>,
    pub days_without_verified_restore: Vec<NaiveDate>,
    /// Every drill of the period, oldest first.
    pub runs: Vec<Run>,
    /// Drills that failed or erred, oldest first.
    pub failures: Vec<Failure>,
    pub rpo: Measure,
    pub rto: Measure,
    /// The snapshot of the newest passed drill up to the end of the period.
    pub newest_verified_snapshot: Option<VerifiedSnapshot>,
    pub chain: ChainCheck,
    /// Restores for real of the period (`restore`), oldest first.
    pub restores: Vec<RestoreLine>,
    /// How strong the job's drills are: its newest self-test up to the end of the period.
    pub drill_strength: Option<Strength>,
}

/// A self-test's verdict on a job's drills.
#[derive(Debug, Clone, Serialize)]
pub struct Strength {
    pub run_id: String,
    pub at: DateTime<Utc>,
    /// `judged`, `drill_not_passed` or `cannot_judge`.
    pub status: String,
    pub caught: usize,
    pub applicable: usize,
    /// The damages the drills missed, each with the check that would catch it.
    pub missed: Vec<(String, String)>,
    pub reason: Option<String>,
}

impl Strength {
    /// The verdict in one sentence.
    pub fn sentence(&self) -> String {
        let head = match self.status.as_str() {
            "judged" => format!("{} of {} damages caught", self.caught, self.applicable),
            _ => format!(
                "not judged: {}",
                self.reason.as_deref().unwrap_or(&self.status)
            ),
        };
        let missed: Vec<String> = self
            .missed
            .iter()
            .map(|(damage, suggestion)| format!("{damage} missed ({suggestion})"))
            .collect();
        format!(
            "{head} by self-test {} on {}{}",
            self.run_id,
            self.at.format("%Y-%m-%d %H:%M UTC"),
            if missed.is_empty() {
                String::new()
            } else {
                format!("; {}", missed.join("; "))
            }
        )
    }
}

/// One restore for real: who ran it and why, what it restored where, and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreLine {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub outcome: String,
    pub snapshot: Option<String>,
    pub target: String,
    pub moved_aside: Option<String>,
    pub reason: String,
    pub by: String,
    pub forced: bool,
    pub gate: String,
    pub seconds: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub drills: usize,
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub run_id: String,
    pub started_at: Option<DateTime<Utc>>,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub run_id: String,
    pub started_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub error: Option<String>,
    pub findings: Vec<FindingLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingLine {
    pub check: String,
    pub severity: String,
    pub message: String,
}

/// Measured values of the period against the objective, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    pub objective: Option<f64>,
    pub max: Option<f64>,
    pub p95: Option<f64>,
    pub last: Option<f64>,
    /// Drills whose value was above the objective.
    pub breaches: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifiedSnapshot {
    pub id: String,
    pub version: Option<u64>,
    pub commit_timestamp: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    pub run_id: String,
}

/// What a report is made of: drill reports (any order, any jobs), the journal's chain checks,
/// and where the reports were read from.
pub struct Evidence<'a> {
    /// Drills and restores for real alike; each is counted as what it is.
    pub reports: &'a [DrillSummary],
    /// Self-tests (any order, any jobs).
    pub selftests: &'a [crate::history::SelfTestSummary],
    pub chains: &'a [ChainCheck],
    pub source: String,
}

/// Builds the report of the days `from` to `to` (both included, UTC).
pub fn build(
    config: &Config,
    job_filter: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
    evidence: Evidence,
    now: DateTime<Utc>,
) -> AuditReport {
    let Evidence {
        reports,
        selftests,
        chains,
        source,
    } = evidence;
    let mut jobs = Vec::new();
    for job in config
        .jobs
        .iter()
        .filter(|j| job_filter.is_none_or(|f| f == j.name))
    {
        let mut all: Vec<&DrillSummary> = reports.iter().filter(|r| r.job == job.name).collect();
        all.sort_by_key(|r| r.started_at);
        let in_days = |r: &&DrillSummary| {
            let day = r.started_at.date_naive();
            day >= from && day <= to
        };
        let restores = all
            .iter()
            .filter(|r| in_days(r))
            .filter_map(|r| Some(restore_line(r, r.recovery.as_ref()?)))
            .collect();
        all.retain(|r| !r.is_restore());
        let in_period: Vec<&DrillSummary> = all.iter().copied().filter(in_days).collect();
        let count = |outcome: Outcome| in_period.iter().filter(|r| r.outcome == outcome).count();
        let days: Vec<Day> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(|date| {
                let on_day: Vec<&&DrillSummary> = in_period
                    .iter()
                    .filter(|r| r.started_at.date_naive() == date)
                    .collect();
                Day {
                    date,
                    drills: on_day.len(),
                    verified: on_day.iter().any(|r| r.outcome == Outcome::Passed),
                }
            })
            .collect();
        let failures = in_period
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Error))
            .map(|r| Failure {
                run_id: r.run_id.clone(),
                started_at: Some(r.started_at),
                outcome: r.outcome.as_str().to_string(),
                error: r.error.clone(),
                findings: r
                    .findings
                    .iter()
                    .map(|f| FindingLine {
                        check: f.check.clone(),
                        severity: f.severity.as_str().to_string(),
                        message: f.message.clone(),
                    })
                    .collect(),
            })
            .collect();
        let newest_verified_snapshot = all
            .iter()
            .rev()
            .filter(|r| r.started_at.date_naive() <= to)
            .find(|r| r.outcome == Outcome::Passed)
            .map(|r| VerifiedSnapshot {
                id: r
                    .snapshot
                    .as_ref()
                    .map(|s| s.id.clone())
                    .unwrap_or_default(),
                version: r.snapshot.as_ref().and_then(|s| s.version),
                commit_timestamp: r
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.commit_timestamp)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                verified_at: Some(r.finished_at),
                run_id: r.run_id.clone(),
            });
        let chain = chains
            .iter()
            .find(|c| c.job == job.name)
            .cloned()
            .unwrap_or(ChainCheck {
                job: job.name.clone(),
                ..Default::default()
            });
        jobs.push(JobReport {
            job: job.name.clone(),
            description: job.description.clone(),
            owner: job.owner.clone(),
            drills: in_period.len(),
            passed: count(Outcome::Passed),
            failed: count(Outcome::Failed),
            error: count(Outcome::Error),
            aborted: count(Outcome::Aborted),
            days_without_verified_restore: days
                .iter()
                .filter(|d| !d.verified)
                .map(|d| d.date)
                .collect(),
            days,
            runs: in_period
                .iter()
                .map(|r| Run {
                    run_id: r.run_id.clone(),
                    started_at: Some(r.started_at),
                    outcome: r.outcome.as_str().to_string(),
                })
                .collect(),
            failures,
            rpo: measure(
                in_period.iter().filter_map(|r| r.rpo_seconds),
                Some(job.objectives.rpo.as_secs_f64()),
            ),
            rto: measure(
                in_period.iter().filter_map(|r| r.rto_seconds),
                Some(job.objectives.rto.as_secs_f64()),
            ),
            newest_verified_snapshot,
            chain,
            restores,
            drill_strength: selftests
                .iter()
                .filter(|s| s.job == job.name && s.started_at.date_naive() <= to)
                .max_by_key(|s| s.started_at)
                .map(|s| Strength {
                    run_id: s.run_id.clone(),
                    at: s.started_at,
                    status: s.status.clone(),
                    caught: s.caught,
                    applicable: s.applicable,
                    missed: s
                        .damages
                        .iter()
                        .filter(|d| d.outcome == "missed")
                        .map(|d| (d.damage.clone(), d.suggestion.clone().unwrap_or_default()))
                        .collect(),
                    reason: s.reason.clone(),
                }),
        });
    }
    AuditReport {
        from,
        to,
        generated_at: now,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        source,
        jobs,
    }
}

fn restore_line(r: &DrillSummary, recovery: &crate::drill::RecoveryEvidence) -> RestoreLine {
    RestoreLine {
        run_id: r.run_id.clone(),
        started_at: r.started_at,
        outcome: r.outcome.as_str().to_string(),
        snapshot: r.snapshot.as_ref().map(|s| s.id.clone()),
        target: recovery.target.clone(),
        moved_aside: recovery.moved_aside.clone(),
        reason: recovery.reason.clone(),
        by: format!("{}@{}", recovery.user, recovery.host),
        forced: recovery.forced,
        gate: recovery.gate.clone(),
        seconds: r.rto_seconds,
        error: r.error.clone(),
    }
}

impl RestoreLine {
    /// The restore in one sentence, for the Markdown and HTML reports.
    pub fn sentence(&self) -> String {
        format!(
            "{} {} {}: snapshot {} into {}{} by {}{} — {}{}",
            self.started_at.format("%Y-%m-%d %H:%M UTC"),
            self.run_id,
            self.outcome,
            self.snapshot.as_deref().unwrap_or("–"),
            self.target,
            self.moved_aside
                .as_deref()
                .map_or(String::new(), |a| format!(
                    " (previous contents moved to {a})"
                )),
            self.by,
            if self.forced {
                " (gate overridden with --force)"
            } else {
                ""
            },
            self.reason,
            self.error
                .as_deref()
                .map_or(String::new(), |e| format!("; {e}"))
        )
    }
}

fn measure(values: impl Iterator<Item = f64>, objective: Option<f64>) -> Measure {
    let values: Vec<f64> = values.collect();
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let p95 = nearest_rank(&sorted, 0.95);
    Measure {
        objective,
        max: sorted.last().copied(),
        p95,
        last: values.last().copied(),
        breaches: objective.map_or(0, |o| values.iter().filter(|v| **v > o).count()),
    }
}

/// The `q` quantile (0 to 1) of sorted values by nearest rank; `None` without values.
pub(crate) fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    })
}
