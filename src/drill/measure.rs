//! The measures of a drill: RPO and RTO against the job's objectives.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Drill, Finding};
use crate::kinds::Snapshot;
use crate::primitives::duration::format_duration;
use crate::verify::suite::Severity;
use crate::verify::{CheckOutcome, CheckResult};

impl Drill<'_> {
    /// Measure: the RPO (the source's newest commit minus the snapshot's newest commit) and the
    /// RTO (restore plus verification of the restored data), each a check against its objective.
    pub(super) async fn measure(
        &mut self,
        snapshot: &Snapshot,
        restore_seconds: f64,
        verify_seconds: f64,
    ) {
        let job = self.job;
        let clock = self.clock;
        let source_newest = self.kind.source_newest_change().await;
        let report = &mut self.report;
        let rto_seconds = ((restore_seconds + verify_seconds) * 1000.0).round() / 1000.0;
        let objectives = job.objectives;
        // RPO: the source's newest commit minus the snapshot's newest commit.
        let snapshot_time = snapshot.commit_timestamp();
        let (reference, basis): (DateTime<Utc>, &str) = match &source_newest {
            Ok(Some(t)) => (*t, "source_newest_commit"),
            _ => (clock.now(), "now"),
        };
        let mut rpo = CheckResult::new("rpo", "rpo", Severity::Fail);
        rpo.expected = json!({ "max_seconds": objectives.rpo.as_secs_f64() });
        match snapshot_time {
            Some(t) => {
                let seconds = ((reference - t).num_milliseconds().max(0)) as f64 / 1000.0;
                report.rpo_seconds = Some(seconds);
                report.rpo_basis = Some(basis.into());
                rpo.observed = json!({ "seconds": seconds, "basis": basis });
                if basis == "now" {
                    let reason = match &source_newest {
                        Err(e) => e.to_string(),
                        Ok(_) => "the source's newest commit has no timestamp".into(),
                    };
                    report.findings.push(Finding {
                        check: "rpo".into(),
                        severity: Severity::Warn,
                        message: format!(
                            "the source's newest commit could not be read ({reason}); RPO measured as now minus the snapshot's newest commit"
                        ),
                    });
                }
                if seconds > objectives.rpo.as_secs_f64() {
                    rpo.fail(format!(
                        "a restore of this snapshot would lose {} of data (newest commit {}), above the RPO objective of {}",
                        format_duration(Duration::from_secs_f64(seconds)),
                        t.format("%Y-%m-%d %H:%M:%S UTC"),
                        format_duration(objectives.rpo)
                    ));
                }
            }
            None => {
                rpo.outcome = CheckOutcome::Skipped;
                rpo.message = Some("the snapshot's newest commit time is unknown".into());
            }
        }
        report.checks.push(rpo);

        // RTO: restore plus verification of the restored data.
        let mut rto = CheckResult::new("rto", "rto", Severity::Fail);
        rto.expected = json!({ "max_seconds": objectives.rto.as_secs_f64() });
        rto.observed = json!({ "seconds": rto_seconds, "restore_seconds": restore_seconds, "verify_seconds": verify_seconds });
        report.rto_seconds = Some(rto_seconds);
        if rto_seconds > objectives.rto.as_secs_f64() {
            rto.fail(format!(
                "restore and verification took {}, above the RTO objective of {}",
                format_duration(Duration::from_secs_f64(rto_seconds)),
                format_duration(objectives.rto)
            ));
        }
        report.checks.push(rto);
    }
}
