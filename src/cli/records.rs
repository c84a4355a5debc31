//! `history`, `report` and `runbook`: the recorded drills, audit reports of a period, and a
//! job's runbook written from its drills.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;

use super::{CommandError, Exit, ReportFormat, RunbookFormat, load};
use crate::history::History;
use crate::primitives::duration::seconds;

/// `history`: recent drills, newest first, as a table or JSON lines.
pub(super) async fn history(
    config: &Path,
    job: Option<String>,
    since: Option<NaiveDate>,
    limit: usize,
    json: bool,
) -> Exit {
    let config = load(config)?;
    if let Some(job) = &job {
        config.job(job).map_err(CommandError::error)?;
    }
    let since = since.map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
    let history = History::new(&config.history);
    let recent = history.recent(job.as_deref(), since, limit).await?;
    if json {
        for entry in &recent.entries {
            let mut line = entry.report.clone();
            if let (Some(problem), Some(fields)) = (&entry.problem, line.as_object_mut()) {
                fields.insert("history_problem".into(), problem.clone().into());
            }
            println!("{}", serde_json::to_string(&line)?);
        }
        return Ok(0);
    }
    let restores = recent.restores().len();
    let selftests = recent.selftests().len();
    let drills = recent.entries.len() - restores - selftests;
    let mut counted = vec![format!(
        "{drills} drill{}",
        if drills == 1 { "" } else { "s" }
    )];
    for (n, what) in [(restores, "restore"), (selftests, "self-test")] {
        if n > 0 {
            counted.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
        }
    }
    let last = counted.pop().unwrap_or_default();
    let counted = match counted.is_empty() {
        true => last,
        false => format!("{} and {last}", counted.join(", ")),
    };
    eprintln!("{counted} from {}", recent.source);
    println!(
        "{:<20} {:<24} {:<8} {:>10} {:>10} {:>8}  RUN",
        "STARTED (UTC)", "JOB", "OUTCOME", "RPO", "RTO", "FINDINGS"
    );
    let seconds = |v: Option<f64>| v.map_or("-".to_string(), |s| seconds(s.max(0.0)));
    for entry in &recent.entries {
        if let Some(s) = &entry.selftest {
            let missed: Vec<&str> = s
                .damages
                .iter()
                .filter(|d| d.outcome == "missed")
                .map(|d| d.damage.as_str())
                .collect();
            println!(
                "{:<20} {:<24} {:<8} {:>10} {:>10} {:>8}  {}",
                s.started_at.format("%Y-%m-%d %H:%M:%S"),
                s.job,
                s.outcome(),
                "-",
                "-",
                missed.len(),
                s.run_id,
            );
            println!(
                "  self-test: caught {} of {} damages{}",
                s.caught,
                s.applicable,
                if missed.is_empty() {
                    String::new()
                } else {
                    format!("; missed {}", missed.join(", "))
                }
            );
            if let Some(problem) = &entry.problem {
                println!("  ! {problem}");
            }
            continue;
        }
        match &entry.drill {
            Some(r) => println!(
                "{:<20} {:<24} {:<8} {:>10} {:>10} {:>8}  {}",
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                r.job,
                r.outcome.as_str(),
                seconds(r.rpo_seconds),
                seconds(r.rto_seconds),
                r.findings.len(),
                r.run_id,
            ),
            None => println!(
                "{:<20} {:<24} {:<8} {:>10} {:>10} {:>8}  {}",
                "-",
                entry.report["job"].as_str().unwrap_or("-"),
                "-",
                "-",
                "-",
                "-",
                entry.report["run_id"].as_str().unwrap_or("-"),
            ),
        }
        if let Some(recovery) = entry.drill.as_ref().and_then(|d| d.recovery.as_ref()) {
            println!(
                "  restore into {} by {}@{}{}: {}",
                recovery.target,
                recovery.user,
                recovery.host,
                if recovery.forced { " (forced)" } else { "" },
                recovery.reason
            );
        }
        if let Some(problem) = &entry.problem {
            println!("  ! {problem}");
        }
    }
    let unverified: usize = recent.chains.iter().map(|c| c.problems.len()).sum();
    if unverified > 0 {
        eprintln!(
            "warning: the history does not verify in {unverified} place{}; `restore-drill report` lists each",
            if unverified == 1 { "" } else { "s" }
        );
    }
    Ok(0)
}

/// `report`: the audit report of the days `from` to `to`.
pub(super) async fn report(
    config: &Path,
    from: NaiveDate,
    to: NaiveDate,
    job: Option<String>,
    format: ReportFormat,
    output: Option<PathBuf>,
) -> Exit {
    let config = load(config)?;
    if let Some(job) = &job {
        config.job(job).map_err(CommandError::error)?;
    }
    if to < from {
        return Err(CommandError::error(format!(
            "--to {to} is before --from {from}"
        )));
    }
    let history = History::new(&config.history);
    let recent = history.recent(job.as_deref(), None, usize::MAX).await?;
    let unreadable = recent
        .entries
        .iter()
        .filter(|e| e.drill.is_none() && e.selftest.is_none())
        .count();
    if unreadable > 0 {
        eprintln!(
            "warning: {unreadable} record{} of the history could not be read as drill reports and are not counted; `restore-drill history` lists them",
            if unreadable == 1 { "" } else { "s" }
        );
    }
    let reports: Vec<_> = recent
        .entries
        .iter()
        .filter_map(|e| e.drill.clone())
        .collect();
    let report = crate::report::build(
        &config,
        job.as_deref(),
        from,
        to,
        crate::report::Evidence {
            reports: &reports,
            selftests: &recent.selftests(),
            chains: &recent.chains,
            source: recent.source,
        },
        chrono::Utc::now(),
    );
    let text = match format {
        ReportFormat::Md => crate::report::markdown(&report),
        ReportFormat::Html => crate::report::html(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Junit => crate::report::junit(&report),
    };
    match output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("writing the report to {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(0)
}

/// `runbook`: the job's runbook from its configuration and its recorded drills.
pub(super) async fn runbook(
    config_path: &Path,
    job: &str,
    format: RunbookFormat,
    output: Option<PathBuf>,
) -> Exit {
    let config = load(config_path)?;
    let job = config.job(job).map_err(CommandError::error)?;
    let history = History::new(&config.history);
    let recent = history.recent(Some(&job.name), None, usize::MAX).await?;
    let drills = recent.drills();
    // The commands name the configuration by its full path, to run from any folder.
    let named = std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let runbook = crate::runbook::build(&named, job, &drills, chrono::Utc::now());
    let text = match format {
        RunbookFormat::Md => crate::runbook::markdown(&runbook),
        RunbookFormat::Html => crate::runbook::html(&runbook),
        RunbookFormat::Json => serde_json::to_string_pretty(&runbook)? + "\n",
    };
    match output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("writing the runbook to {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(0)
}
