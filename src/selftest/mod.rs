//! `selftest`: who checks the checks. A drill of the job; if it passes, copies of what it
//! restored are damaged one way each, inside the sandbox, and each damaged copy is drilled as
//! a backup would be — restored, structure, suite, fingerprint, comparison with the source,
//! RPO — to learn which damages the job's drills catch, by which checks, and which they miss.
//!
//! A damaged copy is presented to the drill as a backup of its own (a `delta_copy` snapshot
//! under the self-test's run folder, discovered and described as any backup), so the drill that
//! judges it is the job's own, unchanged. A time-travel job's backup is the source's own
//! history, which the self-test never touches: there the damaged copy stands in for the
//! restore of the same snapshot (`DrillOptions::restore_from`). An undamaged copy goes first:
//! it must pass, or the self-test cannot judge the job.

pub mod damage;
mod postgres;

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::Job;
use crate::drill::{self, DrillOptions, DrillReport, NoProgress, Outcome};
use crate::kinds::pattern::SnapshotPattern;
use crate::kinds::{SnapshotSource, delta::table};
use crate::primitives::run_id::RunId;
use crate::storage::{Location, ReadOnlyDir, RunSandbox, SandboxRoot};
use crate::verify::CheckOutcome;
use crate::verify::suite::Severity;
pub use damage::Damage;
use damage::{Applied, Copy};

/// The self-test of one job.
#[derive(Debug, Clone, Serialize)]
pub struct SelfTestReport {
    /// Always `selftest`: what tells this record from a drill's in the journal.
    pub record: &'static str,
    pub job: String,
    /// The self-test's own id (its run folder's name), under which it is recorded.
    pub run_id: String,
    pub tool_version: &'static str,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The seed every random choice of the damages came from: the same seed on the same
    /// restored table inflicts the same damages (`--seed`).
    pub seed: u64,
    /// The drill the damaged copies come from.
    pub drill_run_id: String,
    pub drill_outcome: Outcome,
    /// `judged`; `drill_not_passed` (nothing was damaged); `cannot_judge` (`reason` says why).
    pub status: Status,
    pub reason: Option<String>,
    pub damages: Vec<DamageResult>,
    /// Damages caught, and damages that applied to the table.
    pub caught: usize,
    pub applicable: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Judged,
    DrillNotPassed,
    CannotJudge,
}

/// What one damage did and whether the drill noticed.
#[derive(Debug, Clone, Serialize)]
pub struct DamageResult {
    pub damage: Damage,
    pub description: &'static str,
    /// `caught`, `missed` or `n/a`.
    pub outcome: &'static str,
    /// What was damaged (file, column, rows), or why the damage cannot apply.
    pub detail: String,
    /// The checks that failed (and the error, when the drill could not be carried out).
    pub caught_by: Vec<String>,
    /// For a miss: the check that would catch it.
    pub suggestion: Option<&'static str>,
}

impl SelfTestReport {
    /// Sets the job's self-test metrics to what this self-test found, as `serve` sets them from
    /// its record.
    pub fn show(&self, metrics: &crate::metrics::DrillMetrics) {
        let recorded = serde_json::to_value(self).unwrap_or_default();
        if let Some(Ok(summary)) = crate::history::SelfTestSummary::from_record(&recorded) {
            summary.show(metrics);
        }
    }

    /// The share of applicable damages caught, 0 to 1; `None` when none applied.
    pub fn ratio(&self) -> Option<f64> {
        (self.applicable > 0).then(|| self.caught as f64 / self.applicable as f64)
    }
}

/// Runs the self-test of `job`. The random choices come from `seed`.
pub async fn run(job: &Job, seed: u64, clock: &dyn Clock) -> SelfTestReport {
    let started_at = clock.now();
    let mut report = SelfTestReport {
        record: crate::history::SELFTEST_RECORD,
        job: job.name.clone(),
        run_id: RunId::new(started_at).into_string(),
        tool_version: env!("CARGO_PKG_VERSION"),
        started_at,
        finished_at: started_at,
        seed,
        drill_run_id: String::new(),
        drill_outcome: Outcome::Error,
        status: Status::CannotJudge,
        reason: None,
        damages: Vec::new(),
        caught: 0,
        applicable: 0,
    };
    if let Err(reason) = supported(job) {
        report.reason = Some(reason);
        report.finished_at = clock.now();
        return report;
    }
    let options = DrillOptions {
        keep_sandbox: true,
        ..Default::default()
    };
    let drilled = drill::run_drill(job, &options, clock, &NoProgress).await;
    report.drill_run_id = drilled.run_id.clone();
    report.drill_outcome = drilled.outcome;
    let sandbox = SandboxRoot::new(&job.sandbox);
    if drilled.outcome != Outcome::Passed {
        report.status = Status::DrillNotPassed;
        report.reason = Some(format!(
            "the drill {} ended {}; nothing was damaged (a self-test judges the checks of a job whose backups pass)",
            drilled.run_id,
            drilled.outcome.as_str()
        ));
        // The drill's sandbox stays as a drill leaves it: kept after a failure.
        if drilled.outcome != Outcome::Failed {
            discard(&sandbox, job, &drilled.run_id).await;
        }
        report.finished_at = clock.now();
        return report;
    }
    let judged = match &job.snapshots {
        SnapshotSource::PgDump(settings) => {
            postgres::judge(job, settings, &drilled, seed, clock, &mut report).await
        }
        _ => judge(job, &drilled, seed, clock, &mut report).await,
    };
    match judged {
        Ok(()) => report.status = Status::Judged,
        Err(reason) => {
            report.reason = Some(reason);
            report.damages.clear();
        }
    }
    discard(&sandbox, job, &drilled.run_id).await;
    report.caught = report
        .damages
        .iter()
        .filter(|d| d.outcome == "caught")
        .count();
    report.applicable = report.damages.iter().filter(|d| d.outcome != "n/a").count();
    report.finished_at = clock.now();
    report
}

/// Why the self-test cannot judge this job in this version, if it cannot.
fn supported(job: &Job) -> Result<(), String> {
    match &job.snapshots {
        SnapshotSource::DeltaCopy { .. }
        | SnapshotSource::S3Versions { .. }
        | SnapshotSource::DeltaTimeTravel { .. } => {}
        SnapshotSource::PgDump(_) if job.sandbox.local_path().is_none() => {
            return Err("a pg_dump job's sandbox is on local disk".into());
        }
        SnapshotSource::PgDump(_) => {}
    }
    Ok(())
}

/// The damaged copies and their drills, in a run folder of the job's sandbox.
async fn judge(
    job: &Job,
    drilled: &DrillReport,
    seed: u64,
    clock: &dyn Clock,
    report: &mut SelfTestReport,
) -> Result<(), String> {
    let sandbox_text = drilled
        .restore
        .as_ref()
        .map(|r| r.sandbox.clone())
        .ok_or("the drill restored nothing")?;
    let base = Location::parse(&sandbox_text, Path::new("/"))?.with_profile_of(&job.sandbox);
    // Damages are inflicted on local files: a restore on S3 is fetched into a local stage first,
    // and each damaged copy goes back into the self-test's run folder on S3.
    let stage = tempfile::tempdir().map_err(|e| format!("a local folder for the copies: {e}"))?;
    let restored = match base.local_path() {
        Some(path) => path.to_path_buf(),
        None => {
            let local = stage.path().join("restored");
            fetch(&base, &local).await?;
            local
        }
    };
    let info = table::describe(
        &table::open_dir(&ReadOnlyDir::new(&base), None)
            .await
            .map_err(|e| format!("the restored table cannot be read: {e}"))?,
    )
    .await
    .map_err(|e| format!("the restored table cannot be read: {e}"))?;
    let sandbox = SandboxRoot::new(&job.sandbox);
    let lab = sandbox
        .create_run(&job.name, &report.run_id)
        .await
        .map_err(|e| e.to_string())?;
    let (lab_dir, publish) = match lab.local_path() {
        Some(path) => (path.to_path_buf(), None),
        None => (stage.path().join("copies"), Some(lab.location().clone())),
    };
    let judged = async {
        let snapshot = drilled
            .snapshot
            .as_ref()
            .map(|s| s.id.clone())
            .ok_or("the drill names no snapshot")?;
        let copies = TableCopies {
            job,
            restored: &restored,
            lab: &lab_dir,
            publish: publish.as_ref(),
            snapshot: &snapshot,
            seed,
            info: &info,
        };
        matrix(&copies, clock).await
    }
    .await;
    if let Err(e) = lab.remove().await {
        tracing::warn!(job = %job.name, error = %e, "could not remove the self-test's folder");
    }
    report.damages = judged?;
    Ok(())
}

/// How the damaged copies of one kind of job are made and drilled.
trait Copies {
    /// What a copy is, in words, for the control's failure.
    const WHAT: &'static str;

    /// Makes the copy `name` with `damage` (none for the control) and drills it as the job's
    /// backup: the drill's report and what the damage did (a placeholder report when the
    /// damage does not apply).
    async fn drill(
        &self,
        name: &str,
        damage: Option<Damage>,
        clock: &dyn Clock,
    ) -> Result<(DrillReport, Applied), String>;
}

/// The control, which must pass, then every damage: the matrix's lines.
async fn matrix<C: Copies>(copies: &C, clock: &dyn Clock) -> Result<Vec<DamageResult>, String> {
    let (control, _) = copies.drill("control", None, clock).await?;
    if control.outcome != Outcome::Passed {
        return Err(format!(
            "an undamaged {} does not pass the job's drill ({}: {}), so the drill's verdicts on damaged ones would mean nothing",
            C::WHAT,
            control.outcome.as_str(),
            caught_by(&control).join("; ")
        ));
    }
    let mut lines = Vec::new();
    for damage in Damage::ALL {
        let (drill, applied) = copies.drill(damage.as_str(), Some(damage), clock).await?;
        lines.push(result(damage, &drill, applied));
    }
    Ok(lines)
}

/// Drills `copy_job` — the job with a damaged copy as its backup — keeping its folder, which
/// goes at once after.
async fn drill_as_backup(
    job: &Job,
    copy_job: &Job,
    options: DrillOptions,
    clock: &dyn Clock,
) -> DrillReport {
    let options = DrillOptions {
        keep_sandbox: true,
        ..options
    };
    let drill = drill::run_drill(copy_job, &options, clock, &NoProgress).await;
    discard(&SandboxRoot::new(&job.sandbox), job, &drill.run_id).await;
    drill
}

/// The damaged copies of a restored Delta table.
struct TableCopies<'a> {
    job: &'a Job,
    /// The table the passed drill restored.
    restored: &'a Path,
    /// Where the copies are made: the self-test's run folder, or a local stage for one on S3.
    lab: &'a Path,
    /// The self-test's run folder on S3, where each copy goes once damaged.
    publish: Option<&'a Location>,
    /// The snapshot the passed drill restored.
    snapshot: &'a str,
    seed: u64,
    info: &'a crate::kinds::TableInfo,
}

impl Copies for TableCopies<'_> {
    const WHAT: &'static str = "copy of the restored table";

    /// Copies the restored table into `<lab>/<name>/`, inflicts the damage, and drills the copy
    /// as the job's backup.
    async fn drill(
        &self,
        name: &str,
        damage: Option<Damage>,
        clock: &dyn Clock,
    ) -> Result<(DrillReport, Applied), String> {
        let job = self.job;
        let backups = self.lab.join(name);
        let at = clock.now();
        let folder = backups.join(format!("selftest_{}", at.format("%Y-%m-%dT%H%M%SZ")));
        copy_dir(self.restored, &folder).map_err(|e| format!("copying the restored table: {e}"))?;
        let applied = match damage {
            Some(damage) => {
                let applied = match not_applicable(&job.snapshots, damage) {
                    Some(reason) => Applied::NotApplicable(reason.into()),
                    None => Copy {
                        dir: &folder,
                        info: self.info,
                        rpo: job.objectives.rpo,
                    }
                    .apply(damage, self.seed)
                    .unwrap_or_else(|e| {
                        Applied::NotApplicable(format!("could not be inflicted on this table: {e}"))
                    }),
                };
                if let Applied::NotApplicable(_) = applied {
                    return Ok((DrillReport::new(job, String::new(), at), applied));
                }
                applied
            }
            None => Applied::Done("none".into()),
        };
        let (backups, folder) = match self.publish {
            None => (Location::from_path(&backups), Location::from_path(&folder)),
            Some(remote) => {
                let folder_name = folder
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let remote_backups = remote.child(name);
                let remote_folder = remote_backups.child(&folder_name);
                publish(&folder, &remote_folder).await?;
                (remote_backups, remote_folder)
            }
        };
        let mut options = DrillOptions::default();
        let mut copy_job = job.clone();
        match &job.snapshots {
            SnapshotSource::DeltaCopy { source, .. }
            | SnapshotSource::S3Versions { source, .. } => {
                copy_job.snapshots = SnapshotSource::DeltaCopy {
                    location: backups,
                    pattern: SnapshotPattern::parse("selftest_{datetime}")?,
                    source: source.clone(),
                };
            }
            _ => {
                options.snapshot = Some(self.snapshot.to_string());
                options.restore_from = Some(folder);
            }
        }
        let drill = drill_as_backup(job, &copy_job, options, clock).await;
        Ok((drill, applied))
    }
}

/// Why `damage` means nothing for a job of this kind, if it does not.
fn not_applicable(snapshots: &SnapshotSource, damage: Damage) -> Option<&'static str> {
    match (snapshots, damage) {
        (SnapshotSource::DeltaTimeTravel { .. }, Damage::OldSnapshot) => Some(
            "a time-travel snapshot's time comes from the source's own history, which the self-test never changes",
        ),
        _ => None,
    }
}

/// The matrix's line of one damage.
fn result(damage: Damage, drill: &DrillReport, applied: Applied) -> DamageResult {
    let (outcome, detail, caught_by) = match applied {
        Applied::NotApplicable(reason) => ("n/a", reason, Vec::new()),
        Applied::Done(what) => {
            if drill.outcome == Outcome::Passed {
                ("missed", what, Vec::new())
            } else {
                ("caught", what, caught_by(drill))
            }
        }
    };
    DamageResult {
        damage,
        description: damage.describe(),
        outcome,
        detail,
        caught_by,
        suggestion: (outcome == "missed").then(|| damage.suggestion()),
    }
}

/// The checks of a drill that did not hold (with severity `fail`), and its error.
fn caught_by(drill: &DrillReport) -> Vec<String> {
    let mut out: Vec<String> = drill
        .checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Failed && c.severity == Severity::Fail)
        .map(|c| c.id.clone())
        .collect();
    for finding in &drill.findings {
        if finding.severity == Severity::Fail && !out.contains(&finding.check) {
            out.push(finding.check.clone());
        }
    }
    if let Some(error) = &drill.error {
        let first = error.lines().next().unwrap_or_default();
        let short: String = first.chars().take(160).collect();
        out.push(format!("error: {short}"));
    }
    out
}

/// Removes a run folder the self-test kept.
async fn discard(sandbox: &SandboxRoot, job: &Job, run_id: &str) {
    if let Err(e) = sandbox.discard_run(&job.name, run_id).await {
        tracing::warn!(job = %job.name, run_id, error = %e, "could not remove the drill's folder");
    }
}

/// Fetches every file of the folder `from` (on S3) into the local folder `to`.
async fn fetch(from: &Location, to: &Path) -> Result<(), String> {
    let dir = ReadOnlyDir::new(from);
    for file in dir.list_files().await.map_err(|e| e.to_string())? {
        let target = to.join(&file.relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        dir.copy_file_to(&file, &target)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Uploads every file of the local folder `from` into the folder `to` (on S3).
async fn publish(from: &Path, to: &Location) -> Result<(), String> {
    let local = ReadOnlyDir::new(&Location::from_path(from));
    let files = local.list_files().await.map_err(|e| e.to_string())?;
    RunSandbox::target(to)
        .copy_in(&local, &files, 8, &|_| {})
        .await
        .map_err(|e| format!("uploading a damaged copy to {to}: {e}"))
}

/// Copies a folder recursively.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The matrix in words, as `selftest` prints it.
pub fn render(report: &SelfTestReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "self-test  {}  drill {} ({}), seed {}",
        report.job,
        report.drill_run_id,
        report.drill_outcome.as_str(),
        report.seed
    );
    if let Some(reason) = &report.reason {
        let _ = writeln!(out, "           {reason}");
    }
    if report.damages.is_empty() {
        return out;
    }
    let width = report
        .damages
        .iter()
        .map(|d| d.description.len())
        .max()
        .unwrap_or(0);
    for d in &report.damages {
        let by = match d.outcome {
            "caught" => format!("by {}", d.caught_by.join(", ")),
            "missed" => format!("— {}", d.suggestion.unwrap_or_default()),
            _ => format!("({})", d.detail),
        };
        let mark = match d.outcome {
            "caught" => "caught",
            "missed" => "MISSED",
            _ => "n/a   ",
        };
        let _ = writeln!(out, "  {mark}  {:<width$}  {by}", d.description);
    }
    let _ = writeln!(
        out,
        "caught     {} of {} damages that apply{}",
        report.caught,
        report.applicable,
        report
            .ratio()
            .map_or(String::new(), |r| format!(" ({:.0}%)", r * 100.0))
    );
    out
}
