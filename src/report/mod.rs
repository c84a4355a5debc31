//! Audit reports: for a period, per job, how many drills ran and how they ended, each day with
//! or without a verified restore, every failure with its findings, the RPO and RTO measured
//! against the objectives, the newest verified snapshot, and whether the journal's chain is
//! intact. Rendered as Markdown, one self-contained HTML page, JSON or JUnit XML.

mod render;

pub use render::{html, junit, markdown};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
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

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// What a report is made of: drill reports (any order, any jobs), the journal's chain checks,
/// and where the reports were read from.
pub struct Evidence<'a> {
    pub reports: &'a [Value],
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
        chains,
        source,
    } = evidence;
    let mut jobs = Vec::new();
    for job in config
        .jobs
        .iter()
        .filter(|j| job_filter.is_none_or(|f| f == j.name))
    {
        let mut all: Vec<&Value> = reports
            .iter()
            .filter(|r| r["job"] == job.name.as_str())
            .collect();
        all.sort_by_key(|r| time(&r["started_at"]));
        let in_period: Vec<&Value> = all
            .iter()
            .copied()
            .filter(|r| {
                time(&r["started_at"]).is_some_and(|t| {
                    let day = t.date_naive();
                    day >= from && day <= to
                })
            })
            .collect();
        let count = |outcome: &str| in_period.iter().filter(|r| r["outcome"] == outcome).count();
        let days: Vec<Day> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(|date| {
                let on_day: Vec<&&Value> = in_period
                    .iter()
                    .filter(|r| time(&r["started_at"]).is_some_and(|t| t.date_naive() == date))
                    .collect();
                Day {
                    date,
                    drills: on_day.len(),
                    verified: on_day.iter().any(|r| r["outcome"] == "passed"),
                }
            })
            .collect();
        let failures = in_period
            .iter()
            .filter(|r| r["outcome"] == "failed" || r["outcome"] == "error")
            .map(|r| Failure {
                run_id: r["run_id"].as_str().unwrap_or_default().to_string(),
                started_at: time(&r["started_at"]),
                outcome: r["outcome"].as_str().unwrap_or_default().to_string(),
                error: r["error"].as_str().map(String::from),
                findings: r["findings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| FindingLine {
                        check: f["check"].as_str().unwrap_or_default().to_string(),
                        severity: f["severity"].as_str().unwrap_or_default().to_string(),
                        message: f["message"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect(),
            })
            .collect();
        let newest_verified_snapshot = all
            .iter()
            .rev()
            .filter(|r| time(&r["started_at"]).is_some_and(|t| t.date_naive() <= to))
            .find(|r| r["outcome"] == "passed")
            .map(|r| VerifiedSnapshot {
                id: r["snapshot"]["id"].as_str().unwrap_or_default().to_string(),
                version: r["snapshot"]["version"].as_u64(),
                commit_timestamp: r["snapshot"]["commit_timestamp"].as_str().map(String::from),
                verified_at: time(&r["finished_at"]),
                run_id: r["run_id"].as_str().unwrap_or_default().to_string(),
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
            passed: count("passed"),
            failed: count("failed"),
            error: count("error"),
            aborted: count("aborted"),
            days_without_verified_restore: days
                .iter()
                .filter(|d| !d.verified)
                .map(|d| d.date)
                .collect(),
            days,
            runs: in_period
                .iter()
                .map(|r| Run {
                    run_id: r["run_id"].as_str().unwrap_or_default().to_string(),
                    started_at: time(&r["started_at"]),
                    outcome: r["outcome"].as_str().unwrap_or_default().to_string(),
                })
                .collect(),
            failures,
            rpo: measure(
                &in_period,
                "rpo_seconds",
                Some(job.objectives.rpo.as_secs_f64()),
            ),
            rto: measure(
                &in_period,
                "rto_seconds",
                Some(job.objectives.rto.as_secs_f64()),
            ),
            newest_verified_snapshot,
            chain,
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

fn measure(reports: &[&Value], field: &str, objective: Option<f64>) -> Measure {
    let values: Vec<f64> = reports.iter().filter_map(|r| r[field].as_f64()).collect();
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    // Nearest rank.
    let p95 = (!sorted.is_empty()).then(|| {
        let rank = ((0.95 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    });
    Measure {
        objective,
        max: sorted.last().copied(),
        p95,
        last: values.last().copied(),
        breaches: objective.map_or(0, |o| values.iter().filter(|v| **v > o).count()),
    }
}
