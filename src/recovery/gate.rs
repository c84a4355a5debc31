//! The parity gate: a snapshot is restored for real only when a drill passed it with the same
//! configuration and suite, recently enough — the restore then repeats a procedure that was
//! proven, and the drill's restored fingerprint is what the target must equal.

use chrono::{DateTime, Utc};

use crate::config::{HistorySettings, Job};
use crate::drill::{DrillSummary, Outcome};
use crate::history::journal::Journal;
use crate::history::postgres::PostgresStore;
use crate::primitives::duration::format_duration;

/// One recorded report with the hashes of the configuration and suite it was recorded with.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub report: serde_json::Value,
    pub config_sha256: String,
    pub suite_sha256: String,
}

/// The job's records, newest first, and where they were read: its journal, or — on a machine
/// whose journal holds none of them (a restore run elsewhere than `serve`) — PostgreSQL.
pub async fn records(
    history: &HistorySettings,
    job: &Job,
) -> Result<(Vec<Recorded>, String), String> {
    let journal = Journal::new(&history.journal);
    let mut records = Vec::new();
    journal
        .newest_first(&job.name, |stored| {
            records.push(Recorded {
                report: stored.record.report.clone(),
                config_sha256: stored.record.config_sha256.clone(),
                suite_sha256: stored.record.suite_sha256.clone(),
            });
            true
        })
        .map_err(|e| e.to_string())?;
    let place = format!("the journal {}", journal.dir().display());
    let Some(url) = history.postgres.as_deref().filter(|_| records.is_empty()) else {
        return Ok((records, place));
    };
    let store = PostgresStore::connect(
        url,
        history.postgres_ca_file.as_deref(),
        crate::history::CONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| format!("{place} holds no record of job `{}`, and {e}", job.name))?;
    let records = store
        .records_of(&job.name)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(report, config_sha256, suite_sha256)| Recorded {
            report,
            config_sha256,
            suite_sha256,
        })
        .collect();
    Ok((records, format!("PostgreSQL at {}", store.place)))
}

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

/// Reads the job's records (newest first, read from `place`) for drills of `snapshot`.
/// `config` names the configuration file in the commands a refusal suggests.
pub fn check(
    (records, place): (&[Recorded], &str),
    config: &std::path::Path,
    job: &Job,
    snapshot: &str,
    now: DateTime<Utc>,
) -> Verdict {
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
    for record in records {
        let Ok(drill) = DrillSummary::from_record(record.report.clone()) else {
            continue;
        };
        if drill.is_restore() || drill.snapshot.as_ref().is_none_or(|s| s.id != snapshot) {
            continue;
        }
        if drill.outcome != Outcome::Passed {
            drilled_not_passed.get_or_insert((drill.run_id.clone(), drill.outcome));
            continue;
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
        if record.config_sha256 == job.config_sha256 && record.suite_sha256 == job.suite_sha256 {
            same = Some(passed);
            break;
        }
        if other.is_none() {
            let which = if record.suite_sha256 != job.suite_sha256 {
                "another suite"
            } else {
                "another configuration"
            };
            other = Some((passed, which));
        }
    }
    let at = |d: &PassedDrill| d.finished_at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    match (same, other) {
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
                    "snapshot {snapshot} was never drilled ({place} has no drill of it); drill it first: {drill_it}"
                ),
            };
            Verdict {
                said: refusal.clone(),
                refusal: Some(refusal),
                drill: None,
            }
        }
    }
}

/// The snapshot of the newest drill that passed with the current configuration and suite: the
/// last verified snapshot, which a restore takes when none is named.
pub fn newest_verified(records: &[Recorded], job: &Job) -> Option<String> {
    records
        .iter()
        .filter(|r| r.config_sha256 == job.config_sha256 && r.suite_sha256 == job.suite_sha256)
        .filter_map(|r| DrillSummary::from_record(r.report.clone()).ok())
        .find(|d| d.outcome == Outcome::Passed && !d.is_restore())
        .and_then(|d| d.snapshot.map(|s| s.id))
}
