//! The human-readable summary of a drill, as `restore-drill run` prints it.

use std::fmt::Write;
use std::time::Duration;

use super::{DrillReport, Outcome};
use crate::primitives::bytes::human_bytes;
use crate::primitives::duration::{format_duration, seconds};
use crate::verify::CheckOutcome;

/// A value on one line: an object's scalar fields as `key=value` (nested ones left out).
fn compact(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::Object(fields) => fields
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array() && !v.is_null())
            .map(|(k, v)| match v {
                // A long or many-line text (a command's output) shows its first line, cut.
                serde_json::Value::String(s) if s.contains('\n') || s.chars().count() > 60 => {
                    let first: String = s
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(60)
                        .collect();
                    format!("{k}={first}…")
                }
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// What a restore for real left at its target, after the outcome.
fn target_state(outcome: Outcome, recovery: &super::RecoveryEvidence) -> String {
    let mut said = match outcome {
        Outcome::Passed => format!(
            " — {} is restored and verified; it may be used",
            recovery.target
        ),
        Outcome::Failed => format!(
            " — {} failed its verification and may NOT be used",
            recovery.target
        ),
        Outcome::Error | Outcome::Aborted => format!(
            " — {} may NOT be used: the restore did not complete",
            recovery.target
        ),
    };
    if let Some(aside) = &recovery.moved_aside {
        said.push_str(&format!(
            "\nmoved      its previous contents are at {aside}"
        ));
    }
    said
}

/// Renders the report as a few aligned lines.
pub fn render(report: &DrillReport) -> String {
    let mut out = String::new();
    let what = if report.recovery.is_some() {
        "restore"
    } else {
        "drill"
    };
    let _ = writeln!(out, "{what:<10} {}  {}", report.job, report.run_id);
    if let Some(s) = &report.snapshot {
        let described = match &s.dump_format {
            Some(format) => {
                let database = s
                    .dump_database
                    .as_ref()
                    .map_or(String::new(), |d| format!(" of database {d}"));
                let made = s.commit_timestamp.map_or(String::new(), |t| {
                    format!(", made {}", t.format("%Y-%m-%d %H:%M:%S UTC"))
                });
                format!("{format} dump{database}{made}")
            }
            None => {
                let version = s
                    .version
                    .map_or("unreadable log".to_string(), |v| format!("version {v}"));
                let committed = s.commit_timestamp.map_or(String::new(), |t| {
                    format!(", newest commit {}", t.format("%Y-%m-%d %H:%M:%S UTC"))
                });
                format!("{version}{committed}")
            }
        };
        let _ = writeln!(out, "snapshot   {} ({described})", s.id);
        let _ = writeln!(out, "           {}", s.location);
    }
    if let Some(r) = &report.restore {
        let _ = writeln!(
            out,
            "restore    {} files, {} in {}",
            r.files,
            human_bytes(r.bytes),
            seconds(r.seconds)
        );
        let _ = writeln!(out, "           into {}", r.sandbox);
    }
    if let Some(v) = &report.verify {
        let rows = v
            .rows
            .map_or(String::new(), |r| format!(", {r} rows scanned"));
        let checked = match &v.structure.database {
            Some(d) => format!(
                "a restored database of {} table(s) checked by {} and pg_amcheck",
                d.restore.dump_tables.len(),
                d.restore.tool
            ),
            None => format!(
                "{} file(s) checked against the log",
                v.structure.files_checked
            ),
        };
        let _ = writeln!(
            out,
            "verify     {checked}{rows} in {} ({} quer{})",
            seconds(v.seconds),
            v.queries.len(),
            if v.queries.len() == 1 { "y" } else { "ies" }
        );
    }
    if !report.checks.is_empty() {
        let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let kind_width = report
            .checks
            .iter()
            .map(|c| c.kind.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "checks");
        for c in &report.checks {
            let mark = match (c.outcome, c.severity.as_str()) {
                (CheckOutcome::Passed, _) => "ok  ",
                (CheckOutcome::Failed, "warn") => "WARN",
                (CheckOutcome::Failed, _) => "FAIL",
                (CheckOutcome::Skipped, _) => "skip",
            };
            let observed = compact(&c.observed);
            let _ = writeln!(
                out,
                "  {mark} {:<width$}  {:<kind_width$}  {observed}",
                c.id, c.kind
            );
        }
    }
    for (i, group) in report.source_equality.iter().enumerate() {
        let label = if i == 0 { "source" } else { "" };
        let _ = writeln!(out, "{label:<10} {}", group.describe());
    }
    let objectives = report.objectives;
    if let Some(rpo) = report.rpo_seconds {
        let basis = match report.rpo_basis.as_deref() {
            Some("now") => " (measured from now)",
            _ => "",
        };
        let _ = writeln!(
            out,
            "rpo        {}{basis}, objective {}",
            seconds(rpo),
            format_duration(Duration::from_secs_f64(objectives.rpo_seconds))
        );
    }
    if let Some(rto) = report.rto_seconds {
        let _ = writeln!(
            out,
            "rto        {}, objective {}",
            seconds(rto),
            format_duration(Duration::from_secs_f64(objectives.rto_seconds))
        );
    }
    if !report.findings.is_empty() {
        let _ = writeln!(out, "findings");
        for f in &report.findings {
            let _ = writeln!(out, "  {} {}: {}", f.severity.as_str(), f.check, f.message);
        }
    }
    let sandbox = match (&report.restore, report.outcome) {
        (Some(r), _) if r.kept => format!(" — sandbox kept for inspection: {}", r.sandbox),
        (Some(_), _) => " — sandbox removed".to_string(),
        (None, _) => String::new(),
    };
    let outcome = match report.outcome {
        Outcome::Passed => "PASSED",
        Outcome::Failed => "FAILED",
        Outcome::Error => "ERROR",
        Outcome::Aborted => "ABORTED",
    };
    let sandbox = match &report.recovery {
        Some(recovery) => target_state(report.outcome, recovery),
        None => sandbox,
    };
    let _ = writeln!(out, "outcome    {outcome}{sandbox}");
    if let Some(e) = &report.error {
        let _ = writeln!(out, "error      {e}");
    }
    out
}
