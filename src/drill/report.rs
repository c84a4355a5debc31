//! The report of one drill: the JSON contract other tools read (field names are stable).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::kinds::{PhaseTime, Snapshot, StructureReport};
use crate::verify::CheckResult;
use crate::verify::sample::SampleDiff;
use crate::verify::suite::Severity;

/// How a drill ended. The CLI exits 0, 1 and 2 for these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The snapshot restored and verified; warnings allowed.
    Passed,
    /// A `fail` finding: the backup is not trustworthy.
    Failed,
    /// The drill could not be carried out.
    Error,
    /// The drill was cancelled because the service shut down.
    Aborted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Aborted => "aborted",
        }
    }

    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::Error | Outcome::Aborted => 2,
        }
    }
}

/// A check that did not hold: data, not an error.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Finding {
    pub check: String,
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotEvidence {
    pub id: String,
    pub location: String,
    pub version: Option<u64>,
    pub commit_timestamp: Option<DateTime<Utc>>,
    pub table_id: Option<String>,
    pub files: Option<usize>,
    pub bytes: Option<u64>,
    /// Deletion vectors the log references, and the rows they remove.
    pub deletion_vectors: Option<usize>,
    pub deleted_rows: Option<u64>,
    /// A dump's format and the database it is of, from its archive header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_database: Option<String>,
}

impl From<&Snapshot> for SnapshotEvidence {
    fn from(s: &Snapshot) -> Self {
        let table = s.table.as_ref().ok();
        let dump = match &s.method {
            crate::kinds::delta::snapshot::RestoreMethod::PgRestore(dump) => {
                dump.header.as_ref().ok()
            }
            _ => None,
        };
        Self {
            id: s.id.clone(),
            location: s.location.to_string(),
            version: table.map(|t| t.version),
            commit_timestamp: s.commit_timestamp(),
            table_id: table.map(|t| t.table_id.clone()),
            files: table.map(|t| t.files.len()),
            bytes: table.map(|t| t.bytes()),
            deletion_vectors: table.map(|t| t.deletion_vectors().count()),
            deleted_rows: table.map(|t| t.deleted_rows()),
            dump_format: dump.map(|h| h.format.as_str().to_string()),
            dump_database: dump.and_then(|h| h.database.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreEvidence {
    pub sandbox: String,
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// Whether the sandbox was kept after the run (failed runs keep it for forensics).
    pub kept: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyEvidence {
    pub seconds: f64,
    pub structure: StructureReport,
    /// Rows read by the scan of the restored table.
    pub rows: Option<u64>,
    /// Every query that ran, in order: one aggregate over the restored table, one over the
    /// source when checks compare with it.
    pub queries: Vec<Query>,
    /// Seconds spent reading the source for comparison (not part of the RTO).
    pub compare_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Query {
    /// `restored` or `source`.
    pub target: String,
    pub sql: String,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct ObjectivesEvidence {
    pub rpo_seconds: f64,
    pub rto_seconds: f64,
}

/// What makes a record a restore for real (`restore-drill restore`) rather than a drill: who
/// asked, why, where it went and what it was allowed on.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RecoveryEvidence {
    /// Why, in the words of whoever ran it (`--reason`).
    pub reason: String,
    /// The OS user and host that ran it.
    pub user: String,
    pub host: String,
    /// Where the snapshot was restored.
    pub target: String,
    /// Where the target's previous contents were moved (`--replace`); nothing is deleted.
    #[serde(default)]
    pub moved_aside: Option<String>,
    /// Whether the parity gate was overridden (`--force`).
    #[serde(default)]
    pub forced: bool,
    /// What the parity gate said, in words.
    pub gate: String,
    /// The drill that passed the snapshot, whose restored fingerprint the target must equal.
    #[serde(default)]
    pub drill_run_id: Option<String>,
}

/// The report of one drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub job: String,
    pub run_id: String,
    pub tool_version: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub snapshot: Option<SnapshotEvidence>,
    pub restore: Option<RestoreEvidence>,
    pub verify: Option<VerifyEvidence>,
    pub checks: Vec<CheckResult>,
    pub rpo_seconds: Option<f64>,
    /// What the RPO was measured against: `source_newest_commit`, or `now` when the source's
    /// newest commit could not be read.
    pub rpo_basis: Option<String>,
    pub rto_seconds: Option<f64>,
    /// The drill's phases in order with their seconds: the restore's (`fetch`, `restore`),
    /// `verify`, and `compare` (reading the source; not part of the RTO).
    pub phases: Vec<PhaseTime>,
    pub objectives: ObjectivesEvidence,
    pub findings: Vec<Finding>,
    /// The keyed sample diff with the source, when the job configures `compare`.
    pub compare: Option<SampleDiff>,
    /// For a copy compared with the source: how each group of its data files was shown equal
    /// to the source's — identical bytes, equal ETags, or decoded (and why).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_equality: Vec<crate::kinds::equality::EqualityGroup>,
    /// Present when this is the record of a restore for real, not of a drill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryEvidence>,
}

impl DrillReport {
    /// The report of a drill of `job` that starts now: no evidence yet.
    pub fn new(job: &crate::config::Job, run_id: String, started_at: DateTime<Utc>) -> Self {
        Self {
            job: job.name.clone(),
            run_id,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            finished_at: started_at,
            outcome: Outcome::Passed,
            error: None,
            snapshot: None,
            restore: None,
            verify: None,
            checks: Vec::new(),
            rpo_seconds: None,
            rpo_basis: None,
            rto_seconds: None,
            phases: Vec::new(),
            objectives: ObjectivesEvidence {
                rpo_seconds: job.objectives.rpo.as_secs_f64(),
                rto_seconds: job.objectives.rto.as_secs_f64(),
            },
            findings: Vec::new(),
            compare: None,
            source_equality: Vec::new(),
            recovery: None,
        }
    }

    /// The report of a drill that was cancelled before it ended (timed out, or the service
    /// shut down): what it was doing is lost with it, the reason is kept.
    pub fn interrupted(
        job: &crate::config::Job,
        run_id: String,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        outcome: Outcome,
        reason: String,
    ) -> Self {
        let mut report = Self::new(job, run_id, started_at);
        report.finished_at = finished_at;
        report.outcome = outcome;
        report.error = Some(reason);
        report
    }
}

/// What the metrics say of a drill, read from its report or from a recorded report (the
/// journal's, PostgreSQL's): the fields every version of the report has, typed. Reading a
/// record written by an older version gives what it holds; fields it lacks are absent.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DrillSummary {
    pub job: String,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub rpo_seconds: Option<f64>,
    #[serde(default)]
    pub rto_seconds: Option<f64>,
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
    pub objectives: ObjectivesEvidence,
    #[serde(default)]
    pub snapshot: Option<SnapshotSummary>,
    #[serde(default)]
    pub restore: Option<RestoreSummary>,
    #[serde(default)]
    pub verify: Option<VerifySummary>,
    #[serde(default)]
    pub compare: Option<CompareSummary>,
    #[serde(default)]
    pub checks: Vec<CheckSummary>,
    /// Present for a restore for real (see [`RecoveryEvidence`]).
    #[serde(default)]
    pub recovery: Option<RecoveryEvidence>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct SnapshotSummary {
    pub id: String,
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub commit_timestamp: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct RestoreSummary {
    pub seconds: f64,
    pub bytes: u64,
    #[serde(default)]
    pub files: Option<u64>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct VerifySummary {
    pub seconds: f64,
    #[serde(default)]
    pub rows: Option<u64>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct CompareSummary {
    pub mode: crate::verify::sample::DiffMode,
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
}

impl CompareSummary {
    /// Rows that count as mismatches in the diff's mode.
    pub fn mismatched(&self) -> u64 {
        self.mode.mismatched(self.missing, self.extra, self.changed)
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct CheckSummary {
    pub id: String,
    pub outcome: crate::verify::CheckOutcome,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub observed: serde_json::Value,
    #[serde(default)]
    pub expected: serde_json::Value,
}

impl DrillSummary {
    /// Whether the record is of a restore for real rather than a drill.
    pub fn is_restore(&self) -> bool {
        self.recovery.is_some()
    }

    /// The summary of a report as it is recorded.
    pub fn of(report: &DrillReport) -> Result<Self, serde_json::Error> {
        Self::from_record(serde_json::to_value(report)?)
    }

    /// The summary of a recorded report.
    pub(crate) fn from_record(report: serde_json::Value) -> Result<Self, serde_json::Error> {
        // Records of another kind (a self-test's) say so.
        if let Some(kind) = report.get("record").and_then(|k| k.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "a `{kind}` record, not a drill's"
            )));
        }
        serde_json::from_value(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::CheckOutcome;
    use chrono::TimeZone;

    /// A report with every piece of evidence, as a drill that failed after a full run writes it.
    fn full_report() -> DrillReport {
        let at = |h| Utc.with_ymd_and_hms(2026, 11, 29, h, 30, 0).unwrap();
        let mut check = CheckResult::new("amount_range", "in_range", Severity::Fail);
        check.fail("3 values above 1000".into());
        check.observed = serde_json::json!({ "unexpected": 3 });
        DrillReport {
            job: "orders".into(),
            run_id: "run-20261129T023000Z-4f3a9c".into(),
            tool_version: "0.0.0".into(),
            started_at: at(2),
            finished_at: at(3),
            outcome: Outcome::Failed,
            error: None,
            snapshot: Some(SnapshotEvidence {
                id: "orders_2026-11-28".into(),
                location: "/backups/orders_2026-11-28".into(),
                version: Some(42),
                commit_timestamp: Some(at(1)),
                table_id: Some("t".into()),
                files: Some(3),
                bytes: Some(3000),
                deletion_vectors: Some(0),
                deleted_rows: Some(0),
                dump_format: None,
                dump_database: None,
            }),
            restore: Some(RestoreEvidence {
                sandbox: "/sandbox/orders/run".into(),
                files: 7,
                bytes: 3500,
                seconds: 1.5,
                kept: true,
            }),
            verify: Some(VerifyEvidence {
                seconds: 2.5,
                structure: StructureReport::default(),
                rows: Some(1000),
                queries: Vec::new(),
                compare_seconds: None,
            }),
            checks: vec![check],
            rpo_seconds: Some(3600.0),
            rpo_basis: Some("source_newest_commit".into()),
            rto_seconds: Some(4.0),
            phases: vec![
                PhaseTime::new("restore", 1.5),
                PhaseTime::new("verify", 2.5),
            ],
            objectives: ObjectivesEvidence {
                rpo_seconds: 93600.0,
                rto_seconds: 7200.0,
            },
            findings: vec![Finding {
                check: "amount_range".into(),
                severity: Severity::Fail,
                message: "3 values above 1000".into(),
            }],
            compare: None,
            source_equality: Vec::new(),
            recovery: None,
        }
    }

    /// History, metrics, PostgreSQL and the audit reports read recorded reports through the
    /// summary: a field renamed on one side must not silently read as absent.
    #[test]
    fn a_recorded_report_reads_back_with_every_field_the_readers_use() {
        let summary = DrillSummary::of(&full_report()).unwrap();
        assert_eq!(summary.job, "orders");
        assert_eq!(summary.run_id, "run-20261129T023000Z-4f3a9c");
        assert_eq!(summary.outcome, Outcome::Failed);
        assert_eq!(
            (summary.rpo_seconds, summary.rto_seconds),
            (Some(3600.0), Some(4.0))
        );
        assert_eq!(summary.objectives.rpo_seconds, 93600.0);
        let snapshot = summary.snapshot.unwrap();
        assert_eq!(
            (snapshot.id.as_str(), snapshot.version),
            ("orders_2026-11-28", Some(42))
        );
        assert!(snapshot.commit_timestamp.is_some());
        let restore = summary.restore.unwrap();
        assert_eq!((restore.files, restore.bytes), (Some(7), 3500));
        assert_eq!(summary.verify.unwrap().rows, Some(1000));
        assert_eq!(summary.findings.len(), 1);
        assert_eq!(summary.findings[0].severity, Severity::Fail);
        let check = &summary.checks[0];
        assert_eq!(
            (check.kind.as_str(), check.severity, check.outcome),
            ("in_range", Some(Severity::Fail), CheckOutcome::Failed)
        );
        assert_eq!(check.message.as_deref(), Some("3 values above 1000"));
        assert_eq!(check.observed["unexpected"], 3);
    }

    #[test]
    fn outcomes_are_recorded_in_the_words_their_names_give() {
        for outcome in [
            CheckOutcome::Passed,
            CheckOutcome::Failed,
            CheckOutcome::Skipped,
        ] {
            assert_eq!(serde_json::json!(outcome), outcome.as_str());
        }
        for outcome in [
            Outcome::Passed,
            Outcome::Failed,
            Outcome::Error,
            Outcome::Aborted,
        ] {
            assert_eq!(serde_json::json!(outcome), outcome.as_str());
        }
    }
}
