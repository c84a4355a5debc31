//! The measures of a drill: RPO and RTO against the job's objectives.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Drill, Finding};
use crate::kinds::Snapshot;
use crate::primitives::duration::format_duration;
use crate::verify::suite::Severity;
use crate::verify::{CheckOutcome, CheckResult};

/// The two times an RPO is the distance between: the source's newest and the snapshot's.
struct RpoSpan {
    source: DateTime<Utc>,
    snapshot: DateTime<Utc>,
    /// `rpo_column`, `source_newest_commit` or `now`.
    basis: &'static str,
    /// What the times are, for the failure message.
    what: String,
}

impl Drill<'_> {
    /// Measure: the RPO and the RTO (restore plus verification of the restored data), each a
    /// check against its objective. The RPO is the source's newest value of the job's
    /// `rpo_column` minus the restored data's (`restored_newest`) — what a restore would lose —
    /// or, without it, the source's newest commit minus the snapshot's newest commit.
    pub(super) async fn measure(
        &mut self,
        snapshot: &Snapshot,
        restore_seconds: f64,
        verify_seconds: f64,
        restored_newest: Option<DateTime<Utc>>,
    ) {
        let job = self.job;
        let objectives = job.objectives;
        let span = match self.data_span(restored_newest).await {
            Some(span) => Some(span),
            None => self.commit_span(snapshot).await,
        };
        let smoke_seconds = if job.rto_includes_smoke {
            self.smoke_seconds
        } else {
            0.0
        };
        let report = &mut self.report;
        let rto_seconds =
            ((restore_seconds + verify_seconds + smoke_seconds) * 1000.0).round() / 1000.0;
        let mut rpo = CheckResult::new("rpo", "rpo", Severity::Fail);
        rpo.expected = json!({ "max_seconds": objectives.rpo.as_secs_f64() });
        match span {
            Some(span) => {
                let seconds =
                    ((span.source - span.snapshot).num_milliseconds().max(0)) as f64 / 1000.0;
                report.rpo_seconds = Some(seconds);
                report.rpo_basis = Some(span.basis.into());
                rpo.observed = json!({
                    "seconds": seconds,
                    "basis": span.basis,
                    "source_newest": span.source,
                    "snapshot_newest": span.snapshot,
                });
                if let Some(column) = job
                    .rpo_column
                    .as_ref()
                    .filter(|_| span.basis == "rpo_column")
                {
                    rpo.observed["column"] = json!(column);
                }
                if seconds > objectives.rpo.as_secs_f64() {
                    rpo.fail(format!(
                        "a restore of this snapshot would lose {} of data ({}), above the RPO objective of {}",
                        format_duration(Duration::from_secs_f64(seconds)),
                        span.what,
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
        if job.rto_includes_smoke && !job.smoke.is_empty() {
            rto.observed["smoke_seconds"] = json!(smoke_seconds);
        }
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

impl Drill<'_> {
    /// The RPO measured on the data: the source's newest `rpo_column` value against the
    /// restored data's. `None` (with a warning saying why) when the job has no `rpo_column` or a
    /// side has no value to read.
    async fn data_span(&mut self, restored_newest: Option<DateTime<Utc>>) -> Option<RpoSpan> {
        let column = self.job.rpo_column.as_ref()?;
        let source_newest = self.kind.source_newest_value(column).await;
        let reason = match (&source_newest, restored_newest) {
            (Ok(Some(source)), Some(snapshot)) => {
                return Some(RpoSpan {
                    source: *source,
                    snapshot,
                    basis: "rpo_column",
                    what: format!(
                        "the restored data's newest `{column}` is {}, the source's {}",
                        shown(snapshot),
                        shown(*source)
                    ),
                });
            }
            (Err(e), _) => format!("the source's newest `{column}` could not be read: {e}"),
            (Ok(None), _) => format!("the source's `{column}` holds no value"),
            (_, None) => format!("the restored data's `{column}` holds no value, or was not read"),
        };
        self.report.findings.push(Finding {
            check: "rpo".into(),
            severity: Severity::Warn,
            message: format!("{reason}; RPO measured from commit times instead"),
        });
        None
    }

    /// The RPO measured on commit times: the source's newest commit (now, with a warning, when
    /// it cannot be read) against the snapshot's newest commit. `None` when the snapshot's
    /// commit time is unknown.
    async fn commit_span(&mut self, snapshot: &Snapshot) -> Option<RpoSpan> {
        let snapshot_time = snapshot.commit_timestamp()?;
        let source_newest = self.kind.source_newest_change().await;
        let (source, basis) = match &source_newest {
            Ok(Some(t)) => (*t, self.kind.change_basis()),
            Ok(None) | Err(_) => {
                let reason = match &source_newest {
                    Err(e) => e.clone(),
                    Ok(_) => "the source's newest commit has no timestamp".into(),
                };
                self.report.findings.push(Finding {
                    check: "rpo".into(),
                    severity: Severity::Warn,
                    message: format!(
                        "the source's newest commit could not be read ({reason}); RPO measured as now minus the snapshot's newest commit"
                    ),
                });
                (self.clock.now(), "now")
            }
        };
        Some(RpoSpan {
            source,
            snapshot: snapshot_time,
            basis,
            what: format!("newest commit {}", shown(snapshot_time)),
        })
    }
}

/// A time as findings show it.
fn shown(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
