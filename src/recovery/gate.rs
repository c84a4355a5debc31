//! The parity gate: a snapshot is restored for real only when a drill passed it with the same
//! configuration and suite, recently enough — the restore then repeats a procedure that was
//! proven, and the drill's restored fingerprint is what the target must equal.

use chrono::{DateTime, Utc};

use crate::config::Job;
use crate::drill::{DrillSummary, Outcome};
use crate::history::HistoryError;
use crate::history::journal::Journal;
use crate::primitives::duration::format_duration;

/// A drill that passed the snapshot.
#[derive(Debug, Clone)]
pub struct PassedDrill {
    pub run_id: String,
    pub finished_at: DateTime<Utc>,
    /// The restored fingerprints it recorded: each `fingerprint` check's id (`fingerprint`, or
    /// `fingerprint <schema.table>` of a database) and observed value.
    pub fingerprints: Vec<(String, serde_json::Value)>,
}

/// What the gate says of a snapshot.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `None`: the restore may go ahead. Otherwise why it is refused.
    pub refusal: Option<String>,
    /// The newest drill that passed the snapshot with the same configuration and suite, else
    /// the newest that passed it at all (whose fingerprint a forced restore still compares).
    pub drill: Option<PassedDrill>,
    /// The gate's finding in words, for the record.
    pub said: String,
}

/// Reads the job's journal, newest first, for drills of `snapshot`.
/// `config` names the configuration file in the commands a refusal suggests.
pub fn check(
    journal: &Journal,
    config: &std::path::Path,
    job: &Job,
    snapshot: &str,
    now: DateTime<Utc>,
) -> Result<Verdict, HistoryError> {
    let drill_it = format!(
        "restore-drill run --config {} {} --snapshot {snapshot}",
        config.display(),
        job.name
    );
    let within = chrono::Duration::from_std(job.restore_requires_drill_within)
        .unwrap_or(chrono::Duration::MAX);
    let mut same: Option<PassedDrill> = None;
    let mut other: Option<(PassedDrill, &'static str)> = None;
    let mut drilled_not_passed: Option<(String, Outcome)> = None;
    journal.newest_first(&job.name, |stored| {
        let Ok(drill) = DrillSummary::from_record(stored.record.report.clone()) else {
            return true;
        };
        if drill.is_restore() || drill.snapshot.as_ref().is_none_or(|s| s.id != snapshot) {
            return true;
        }
        if drill.outcome != Outcome::Passed {
            drilled_not_passed.get_or_insert((drill.run_id.clone(), drill.outcome));
            return true;
        }
        let passed = PassedDrill {
            run_id: drill.run_id.clone(),
            finished_at: drill.finished_at,
            fingerprints: drill
                .checks
                .iter()
                .filter(|c| c.kind == "fingerprint" && !c.observed.is_null())
                .map(|c| (c.id.clone(), c.observed.clone()))
                .collect(),
        };
        let record = &stored.record;
        if record.config_sha256 == job.config_sha256 && record.suite_sha256 == job.suite_sha256 {
            same = Some(passed);
            return false;
        }
        if other.is_none() {
            let which = if record.suite_sha256 != job.suite_sha256 {
                "another suite"
            } else {
                "another configuration"
            };
            other = Some((passed, which));
        }
        true
    })?;
    let at = |d: &PassedDrill| d.finished_at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let verdict = match (same, other) {
        (Some(drill), _) => {
            let age = now - drill.finished_at;
            let said = format!(
                "drill {} passed snapshot {snapshot} at {} with the same configuration and suite",
                drill.run_id,
                at(&drill)
            );
            let refusal = (age > within).then(|| {
                format!(
                    "{said}, but that is more than {} ago (`restore_requires_drill_within`); drill it again: {drill_it}",
                    format_duration(job.restore_requires_drill_within),
                )
            });
            Verdict {
                said: refusal.clone().unwrap_or(said),
                refusal,
                drill: Some(drill),
            }
        }
        (None, Some((drill, which))) => {
            let refusal = format!(
                "snapshot {snapshot} passed drill {} at {} with {which} than the current one; what is restored now was never drilled: {drill_it}",
                drill.run_id,
                at(&drill),
            );
            Verdict {
                said: refusal.clone(),
                refusal: Some(refusal),
                drill: Some(drill),
            }
        }
        (None, None) => {
            let refusal = match drilled_not_passed {
                Some((run, outcome)) => format!(
                    "snapshot {snapshot} never passed a drill (its newest, {run}, ended {}); restore another snapshot or find out why",
                    outcome.as_str()
                ),
                None => format!(
                    "snapshot {snapshot} was never drilled (the journal {} has no drill of it); drill it first: {drill_it}",
                    journal.dir().display(),
                ),
            };
            Verdict {
                said: refusal.clone(),
                refusal: Some(refusal),
                drill: None,
            }
        }
    };
    Ok(verdict)
}

/// The snapshot of the newest drill that passed with the current configuration and suite: the
/// last verified snapshot, which a restore takes when none is named.
pub fn newest_verified(journal: &Journal, job: &Job) -> Result<Option<String>, HistoryError> {
    let mut found = None;
    journal.newest_first(&job.name, |stored| {
        let record = &stored.record;
        if record.config_sha256 != job.config_sha256 || record.suite_sha256 != job.suite_sha256 {
            return true;
        }
        match DrillSummary::from_record(record.report.clone()) {
            Ok(drill) if drill.outcome == Outcome::Passed && !drill.is_restore() => {
                found = drill.snapshot.map(|s| s.id);
                found.is_none()
            }
            _ => true,
        }
    })?;
    Ok(found)
}
