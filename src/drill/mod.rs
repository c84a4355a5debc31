//! One drill, phase by phase: discover → restore → verify the structure → verify the data →
//! compare with the source → measure RPO and RTO → record the outcome and clean up.
//! [`run_drill`] carries it out and always returns a report; [`Drill`] holds what the phases
//! share, one method per phase (the source side in `source.rs`, the measures in `measure.rs`).

mod compare;
mod measure;
pub mod plan;
mod report;
mod restored;
pub mod runtime;
mod smoke;
pub mod summary;

pub use report::{
    DrillReport, DrillSummary, Finding, ObjectivesEvidence, Outcome, Query, RecoveryEvidence,
    RestoreEvidence, SnapshotEvidence, VerifyEvidence,
};

use std::time::Instant;

use chrono::{DateTime, Utc};
use deltalake::datafusion::prelude::SessionContext;

use crate::clock::{Clock, elapsed_seconds};
use crate::config::Job;
use crate::kinds::{
    self, CopyProgress, Kind, PhaseTime, RestoreError, RestoreMethod, RestoreOutcome, Snapshot,
    SnapshotError, StructureReport, TableInfo,
};
use crate::primitives::duration::format_duration;
use crate::primitives::duration::seconds_to_time;
use crate::primitives::run_id::RunId;
use crate::storage::{RunSandbox, SandboxRoot, StorageError};
use crate::verify::plan::{ScanValues, newest_seconds, row_count};
use crate::verify::suite::Severity;
use crate::verify::{self, CheckOutcome, CheckResult};

/// Why a drill could not be carried out (its outcome is then `error`).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("job `{job}`: the suite does not fit the table:\n{problems}")]
    SuiteDoesNotFit { job: String, problems: String },
    #[error("job `{job}`: cannot read the restored table: {message}")]
    Restored { job: String, message: String },
    #[error("job `{job}`: the restore failed: {message}")]
    Restore { job: String, message: String },
    #[error(
        "job `{job}`: the table declares the Delta reader feature(s) {features}, which this version of restore-drill cannot verify; the backup is neither passed nor failed (the README lists the supported features)"
    )]
    UnsupportedFeatures { job: String, features: String },
    #[error(
        "job `{job}`: the source {location} cannot be read: {reason}; check `source`, its storage profile and that the table exists — without it the restored data cannot be compared"
    )]
    Source {
        job: String,
        location: String,
        reason: String,
    },
}

/// Choices for one drill.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// Drill this snapshot instead of the newest.
    pub snapshot: Option<String>,
    /// The run id (it names the sandbox folder); a new one when `None`.
    pub run_id: Option<String>,
    /// A restore for real (`restore`): the phases write into this target instead of a run of
    /// the sandbox, keep it, and check it against the drill instead of the source.
    pub into: Option<RestoreInto>,
    /// Keep the run's folder (without its lock) whatever the outcome: a self-test damages
    /// copies of what a passed drill restored, then removes it.
    pub keep_sandbox: bool,
    /// Restore by copying this folder instead of by the snapshot's own method: a self-test's
    /// damaged copy of a restored table, judged as the snapshot's restore.
    pub restore_from: Option<crate::storage::Location>,
}

/// Where a restore for real writes, and what it must match.
#[derive(Debug, Clone)]
pub struct RestoreInto {
    pub target: Target,
    /// The drill that passed the snapshot: its run id and the restored fingerprints it
    /// recorded (each `fingerprint…` check's id and observed value). `None` for a forced
    /// restore of a snapshot no drill passed.
    pub drilled: Option<(String, Vec<(String, serde_json::Value)>)>,
}

/// What a restore for real writes into.
#[derive(Debug, Clone)]
pub enum Target {
    /// A folder or prefix: the restore's run folder is the target itself.
    Folder(RunSandbox),
    /// A database the restore creates (a `pg_dump` job); the run folder in the sandbox holds
    /// the fetched dump, as in a drill.
    Database(kinds::postgres::settings::PgUrl),
    /// A `delta_time_travel` job's table itself, restored to the snapshot's version as a new
    /// commit (Delta's restore); nothing leaves its history.
    NewVersion(RunSandbox),
}

impl RestoreInto {
    /// The fingerprint the drill recorded in its check `check`, with the drill's run id.
    pub(crate) fn drilled(&self, check: &str) -> Option<(&str, &serde_json::Value)> {
        let (run, fingerprints) = self.drilled.as_ref()?;
        let (_, value) = fingerprints.iter().find(|(id, _)| id == check)?;
        Some((run.as_str(), value))
    }
}

/// What a drill reports while it works, for progress bars.
pub trait Progress: CopyProgress {
    fn scan_started(&self, what: &str);
    fn scan_finished(&self);
}

/// Progress that nobody watches.
pub struct NoProgress;

impl CopyProgress for NoProgress {
    fn start(&self, _: usize, _: u64) {}
    fn copied(&self, _: u64) {}
    fn finish(&self) {}
}

impl Progress for NoProgress {
    fn scan_started(&self, _: &str) {}
    fn scan_finished(&self) {}
}

/// Runs one drill of `job`. Always returns a report; an `error` outcome carries the reason.
pub async fn run_drill(
    job: &Job,
    options: &DrillOptions,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> DrillReport {
    let started_at = clock.now();
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| RunId::new(started_at).into_string());
    let kind = match options.into.as_ref().map(|into| &into.target) {
        Some(Target::Database(target)) => kinds::restoring_into(&job.snapshots, target),
        _ => None,
    };
    let mut drill = Drill {
        job,
        kind: kind.unwrap_or_else(|| kinds::of(&job.snapshots)),
        options,
        clock,
        progress,
        report: DrillReport::new(job, run_id, started_at),
        sandbox: None,
        queries: Vec::new(),
        smoke_seconds: 0.0,
    };
    let result = drill.phases().await;
    drill.record(result).await
}

/// One drill under way: the job, the report it fills and the sandbox it created.
struct Drill<'a> {
    job: &'a Job,
    /// The job's kind of data: how its snapshots are found, restored and read.
    kind: Box<dyn Kind>,
    options: &'a DrillOptions,
    clock: &'a dyn Clock,
    progress: &'a dyn Progress,
    report: DrillReport,
    /// The run's sandbox once created: removed when the drill ends, or kept after a failure.
    sandbox: Option<RunSandbox>,
    /// Every statement the verification ran, in order, for the report.
    queries: Vec<Query>,
    /// Seconds the smoke tests took (part of the RTO when the job says so).
    smoke_seconds: f64,
}

/// The restored table as its one scan read it, and the session it is registered in (for the
/// queries that follow the scan).
struct Scanned {
    ctx: SessionContext,
    values: ScanValues,
}

impl<'a> Drill<'a> {
    /// The phases in order. A phase that ends the drill with a finding (a snapshot outside the
    /// time-travel window) returns `None`; one that cannot be carried out returns an error.
    async fn phases(&mut self) -> Result<(), DrillError> {
        let Some(mut snapshot) = self.discover().await? else {
            return Ok(());
        };
        if let (Some(Target::NewVersion(_)), RestoreMethod::Rewrite { version }) = (
            self.options.into.as_ref().map(|into| &into.target),
            &snapshot.method,
        ) {
            snapshot.method = RestoreMethod::NewVersion { version: *version };
        }
        let Some(restored) = self.restore(&snapshot).await? else {
            return Ok(());
        };
        self.report.phases.extend(restored.phases.iter().cloned());
        let verify_started = Instant::now();
        let structure = self.verify_structure(&mut snapshot).await?;
        if structure.database.is_some() {
            self.verify_tables(&snapshot, &structure).await?;
            let verify_seconds = elapsed_seconds(verify_started);
            let compare_seconds = if self.options.into.is_none() {
                let compare_started = Instant::now();
                self.compare_structure(&snapshot).await?;
                self.compare_rows(&snapshot).await?;
                Some(elapsed_seconds(compare_started))
            } else {
                None
            };
            self.timed_phases(verify_seconds, compare_seconds);
            self.report.verify = Some(VerifyEvidence {
                seconds: verify_seconds,
                rows: None,
                structure: without_table(structure),
                queries: std::mem::take(&mut self.queries),
                compare_seconds,
            });
            let restored_newest = match &self.job.rpo_column {
                Some(column) => self.kind.restored_newest_value(column).await.ok().flatten(),
                None => None,
            };
            self.smoke_seconds = self.smoke(&snapshot).await;
            self.measure(&snapshot, restored.seconds, verify_seconds, restored_newest)
                .await;
            return Ok(());
        }
        let mut context = self.context(&snapshot, &structure);
        let scanned = self.verify_data(&structure, &context).await?;
        let verify_seconds = elapsed_seconds(verify_started);
        let compare_started = Instant::now();
        let source_read = self
            .compare(&snapshot, &structure, scanned.as_ref(), &mut context)
            .await?;
        let compare_seconds = source_read.then(|| elapsed_seconds(compare_started));
        self.timed_phases(verify_seconds, compare_seconds);
        self.report.verify = Some(VerifyEvidence {
            seconds: verify_seconds,
            rows: scanned.as_ref().and_then(|s| scanned_rows(&s.values)),
            structure: without_table(structure),
            queries: std::mem::take(&mut self.queries),
            compare_seconds,
        });
        let restored_newest = self.job.rpo_column.as_ref().and_then(|column| {
            let values = &scanned.as_ref()?.values;
            let seconds = crate::verify::values::as_f64(values.get(&newest_seconds(column))?)?;
            seconds_to_time(seconds)
        });
        self.smoke_seconds = self.smoke(&snapshot).await;
        self.measure(&snapshot, restored.seconds, verify_seconds, restored_newest)
            .await;
        Ok(())
    }

    /// Discover: the snapshot to restore (the newest, the job's point in time, or the pinned
    /// one), refused before anything is written when its table cannot be verified.
    async fn discover(&mut self) -> Result<Option<Snapshot>, DrillError> {
        let job = self.job;
        let chosen = self
            .kind
            .choose(self.options.snapshot.as_deref(), self.clock.now())
            .await;
        let snapshot = match chosen {
            Ok(s) => s,
            Err(SnapshotError::OutsideWindow(message)) => {
                self.window_finding(message);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        self.report.snapshot = Some(SnapshotEvidence::from(&snapshot));
        if let Ok(info) = &snapshot.table {
            check_features(job, info)?;
            check_columns(job, &info.typed_columns())?;
        }
        Ok(Some(snapshot))
    }

    /// Restore: a run folder of the job's sandbox, and the snapshot materialised in it.
    async fn restore(&mut self, snapshot: &Snapshot) -> Result<Option<RestoreOutcome>, DrillError> {
        let job = self.job;
        let into = self.options.into.as_ref().map(|into| &into.target);
        let run = match into {
            Some(Target::Folder(target) | Target::NewVersion(target)) => target.clone(),
            _ => {
                SandboxRoot::new(&job.sandbox)
                    .create_run(&job.name, &self.report.run_id)
                    .await?
            }
        };
        self.sandbox = Some(run.clone());
        let copied;
        let restoring = match &self.options.restore_from {
            Some(from) => {
                copied = Snapshot {
                    location: from.clone(),
                    method: RestoreMethod::CopyAll,
                    ..snapshot.clone()
                };
                &copied
            }
            None => snapshot,
        };
        let restored = match self
            .kind
            .restore(restoring, &run, job.copy_concurrency, self.progress)
            .await
        {
            Ok(r) => r,
            Err(RestoreError::Unreadable(message)) => {
                self.window_finding(message);
                return Ok(None);
            }
            Err(RestoreError::Storage(e)) => return Err(e.into()),
            Err(RestoreError::Write(message)) => {
                return Err(DrillError::Restore {
                    job: job.name.clone(),
                    message,
                });
            }
        };
        self.report.restore = Some(RestoreEvidence {
            sandbox: run.location().to_string(),
            files: restored.files,
            bytes: restored.bytes,
            seconds: restored.seconds,
            kept: false,
        });
        Ok(Some(restored))
    }

    /// The run's sandbox; it exists from the restore phase on.
    fn run(&self) -> &RunSandbox {
        self.sandbox
            .as_ref()
            .expect("the restore phase created the run's sandbox")
    }

    /// Record: the outcome from the findings (every check that did not hold is one), the
    /// sandbox removed — or kept after a failure — and the end time.
    async fn record(mut self, result: Result<(), DrillError>) -> DrillReport {
        let failed_checks: Vec<Finding> = self
            .report
            .checks
            .iter()
            .filter(|c| c.outcome == CheckOutcome::Failed)
            .map(|c| Finding {
                check: c.id.clone(),
                severity: c.severity,
                message: c.message.clone().unwrap_or_default(),
            })
            .collect();
        let report = &mut self.report;
        report.outcome = match &result {
            Err(e) => {
                report.error = Some(e.to_string());
                Outcome::Error
            }
            Ok(()) => {
                report.findings.splice(0..0, failed_checks);
                if report.findings.iter().any(|f| f.severity == Severity::Fail) {
                    Outcome::Failed
                } else {
                    Outcome::Passed
                }
            }
        };
        if let Some(run) = self.sandbox.take() {
            self.kind.release().await;
            let keep = report.outcome == Outcome::Failed || self.options.keep_sandbox;
            let cleaned = if keep {
                run.keep().await
            } else {
                run.remove().await
            };
            if let Err(e) = cleaned {
                tracing::warn!(job = %self.job.name, error = %e, "could not clean up the sandbox");
            }
            if let Some(r) = report.restore.as_mut() {
                r.kept = keep;
            }
        }
        report.finished_at = self.clock.now();
        self.report
    }

    /// The snapshot asked for lies outside what the table's or bucket's history still holds: a
    /// failed check (and so a finding), since a restore to that point is no longer possible.
    fn window_finding(&mut self, message: String) {
        let mut check =
            CheckResult::new("time_travel_window", "time_travel_window", Severity::Fail);
        check.fail(message);
        self.report.checks.push(check);
    }

    /// Notes the verify phase's seconds, and the compare phase's when the source was read.
    fn timed_phases(&mut self, verify_seconds: f64, compare_seconds: Option<f64>) {
        self.report
            .phases
            .push(PhaseTime::new("verify", verify_seconds));
        if let Some(seconds) = compare_seconds {
            self.report.phases.push(PhaseTime::new("compare", seconds));
        }
    }

    /// Notes a statement the verification ran on `target`.
    fn query(&mut self, target: &str, sql: String) {
        self.queries.push(Query {
            target: target.into(),
            sql,
        });
    }
}

/// The rows the scan counted.
fn scanned_rows(values: &ScanValues) -> Option<u64> {
    values
        .get(&row_count())
        .and_then(verify::values::as_f64)
        .map(|n| n as u64)
}

/// Refuses a table whose protocol declares a reader feature this version cannot verify: the
/// drill ends as `error`, never `passed` or `failed`.
fn check_features(job: &Job, info: &TableInfo) -> Result<(), DrillError> {
    refuse_features(job, info.unsupported_features())
}

/// An error naming the reader features this version cannot verify, if there are any.
fn refuse_features(job: &Job, unsupported: Vec<String>) -> Result<(), DrillError> {
    if unsupported.is_empty() {
        return Ok(());
    }
    Err(DrillError::UnsupportedFeatures {
        job: job.name.clone(),
        features: unsupported.join(", "),
    })
}

/// Refuses a suite that reads a column the table does not have, before anything is written.
fn check_columns(job: &Job, columns: &[(String, String)]) -> Result<(), DrillError> {
    let problems = job.misfits(columns);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DrillError::SuiteDoesNotFit {
            job: job.name.clone(),
            problems: problems.join("\n"),
        })
    }
}

/// The structure report as the drill report keeps it: without the table description.
fn without_table(mut s: StructureReport) -> StructureReport {
    s.table = None;
    s
}

/// Removes the sandboxes no drill needs any more (see [`SandboxRoot::sweep`]): those of drills
/// whose process died, and failed drills' sandboxes older than `keep_failed_sandbox`. Each is
/// logged; problems are logged and do not stop the caller.
pub(crate) async fn sweep_sandboxes(jobs: &[Job], now: DateTime<Utc>) {
    for job in jobs {
        match SandboxRoot::new(&job.sandbox)
            .sweep(&job.name, now, job.keep_failed_sandbox)
            .await
        {
            Ok(removed) => {
                for swept in removed {
                    tracing::info!(job = %job.name, sandbox = %swept.location, reason = swept.reason.as_str(), "removed a sandbox");
                }
            }
            Err(e) => {
                tracing::warn!(job = %job.name, error = %e, "could not sweep the job's sandboxes")
            }
        }
    }
}

/// Logs the end of a drill: one line with its job, run id, outcome and durations.
pub(crate) fn log_finished(report: &DrillReport) {
    tracing::info!(
        job = %report.job,
        run_id = %report.run_id,
        outcome = report.outcome.as_str(),
        findings = report.findings.len(),
        restore_seconds = report.restore.as_ref().map(|r| r.seconds),
        verify_seconds = report.verify.as_ref().map(|v| v.seconds),
        rpo_seconds = report.rpo_seconds,
        rto_seconds = report.rto_seconds,
        seconds = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0,
        error = report.error.as_deref(),
        "drill finished"
    );
}

/// Why a drill that outlived its job's `timeout` ended as `error`.
pub(crate) fn timeout_reason(job: &Job) -> String {
    format!(
        "the drill did not finish within its timeout of {}; it was cancelled and its sandbox removed (raise the job's `timeout` if drills of this size need longer)",
        format_duration(job.timeout)
    )
}

/// The message a panic carried, for the record of the drill it ended.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
