//! `run --dry-run`: what a drill would do — which snapshot, how many files and bytes, from where
//! to where, which checks — found by reading only; nothing is written.

use serde::Serialize;

use super::{DrillError, DrillOptions, SnapshotEvidence};
use crate::config::Job;
use crate::kinds;
use crate::primitives::bytes::human_bytes;
use crate::primitives::duration::seconds;

/// The plan of one drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillPlan {
    pub job: String,
    pub snapshot: SnapshotEvidence,
    /// Where the restore copies from.
    pub from: String,
    /// Where it would copy to: `<sandbox>/<job>/<run-id>/`.
    pub to: String,
    /// How the snapshot is restored.
    pub method: String,
    /// What the restore reads: files copied, or the data files of the version rewritten.
    pub files: usize,
    pub bytes: u64,
    pub copy_concurrency: usize,
    /// The suite's checks in order: id, kind, severity.
    pub checks: Vec<PlannedCheck>,
    /// The source the restored data is compared with, at the snapshot's version.
    pub source: String,
    /// The keyed sample's key columns, when the job compares samples.
    pub compare_key: Option<Vec<String>>,
    /// The smoke tests run after the checks pass: name and command.
    pub smoke: Vec<(String, String)>,
    pub objectives: super::ObjectivesEvidence,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedCheck {
    pub id: String,
    pub kind: String,
    pub severity: String,
}

/// Finds the snapshot a drill would restore and lists what it would copy.
pub async fn plan(job: &Job, options: &DrillOptions) -> Result<DrillPlan, DrillError> {
    let kind = kinds::of(&job.snapshots);
    let snapshot = kind
        .choose(options.snapshot.as_deref(), chrono::Utc::now())
        .await?;
    let restore = kind.plan_restore(&snapshot).await?;
    Ok(DrillPlan {
        job: job.name.clone(),
        snapshot: SnapshotEvidence::from(&snapshot),
        from: snapshot.location.to_string(),
        to: format!(
            "{}/{}/<run-id>/",
            job.sandbox.to_string().trim_end_matches('/'),
            job.name
        ),
        method: restore.method,
        files: restore.files,
        bytes: restore.bytes,
        copy_concurrency: job.copy_concurrency,
        checks: job
            .suite
            .checks
            .iter()
            .map(|c| PlannedCheck {
                id: c.id.clone(),
                kind: c.kind.name().to_string(),
                severity: c.severity.as_str().to_string(),
            })
            .collect(),
        source: job.source.to_string(),
        compare_key: job.compare.as_ref().map(|c| c.key.clone()),
        smoke: job
            .smoke
            .iter()
            .map(|t| (t.name.clone(), t.display()))
            .collect(),
        objectives: super::ObjectivesEvidence {
            rpo_seconds: job.objectives.rpo.as_secs_f64(),
            rto_seconds: job.objectives.rto.as_secs_f64(),
        },
    })
}

/// The plan for people.
pub fn render(plan: &DrillPlan) -> String {
    let mut out = format!("Dry run of job {} — nothing was written.\n\n", plan.job);
    let s = &plan.snapshot;
    out.push_str(&format!(
        "  snapshot   {} (version {}, newest commit {})\n",
        s.id,
        s.version.map_or("?".into(), |v| v.to_string()),
        s.commit_timestamp.map_or("?".into(), |t| t
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string())
    ));
    let vectors = match (s.deletion_vectors, s.deleted_rows) {
        (Some(n), Some(rows)) if n > 0 => {
            format!(", of which {n} deletion vector(s) removing {rows} rows")
        }
        _ => String::new(),
    };
    out.push_str(&format!(
        "  restore    {}: {} files{vectors}, {} ({} at a time)\n             from {}\n             to   {}\n",
        plan.method,
        plan.files,
        human_bytes(plan.bytes),
        plan.copy_concurrency,
        plan.from,
        plan.to
    ));
    out.push_str("  verify     structure (log replay, every file's size, every deletion vector), then in one scan:\n");
    for c in &plan.checks {
        out.push_str(&format!(
            "             {:<28} {:<22} {}\n",
            c.id, c.kind, c.severity
        ));
    }
    out.push_str(&format!(
        "             fingerprint of every value{}\n",
        plan.compare_key.as_ref().map_or(String::new(), |k| format!(
            ", keyed sample on {}",
            k.join(", ")
        ))
    ));
    out.push_str(&format!(
        "  compare    with the source {} at the snapshot's version\n",
        plan.source
    ));
    for (i, (name, command)) in plan.smoke.iter().enumerate() {
        let head = if i == 0 { "  smoke    " } else { "           " };
        out.push_str(&format!("{head}  {name}: {command}\n"));
    }
    out.push_str(&format!(
        "  objectives RPO {}, RTO {}\n",
        seconds(plan.objectives.rpo_seconds),
        seconds(plan.objectives.rto_seconds)
    ));
    out
}
