//! `run` and `snapshots`: one drill now, and a job's snapshots.

use std::path::Path;

use super::progress::TerminalProgress;
use super::{CommandError, Exit, INTERRUPTED, load};
use crate::clock::{Clock, SystemClock};
use crate::drill::{self, DrillOptions, DrillReport, NoProgress, Outcome, Progress};
use crate::history::History;
use crate::kinds::delta::snapshot::RestoreMethod;
use crate::kinds::{self, SnapshotSource};
use crate::primitives::bytes::human_bytes;
use crate::primitives::run_id::RunId;

/// `run`: drills `job` now (or shows the plan), prints the summary or the JSON report, and
/// records it. The exit code is the drill's outcome.
pub(super) async fn run(
    config: &Path,
    job: &str,
    snapshot: Option<String>,
    json: bool,
    dry_run: bool,
) -> Exit {
    let config = load(config)?;
    let job = config.job(job).map_err(CommandError::error)?;
    let options = DrillOptions {
        snapshot,
        ..Default::default()
    };
    if dry_run {
        return match drill::plan::plan(job, &options).await {
            Ok(plan) if json => {
                println!("{}", serde_json::to_string_pretty(&plan)?);
                Ok(0)
            }
            Ok(plan) => {
                print!("{}", drill::plan::render(&plan));
                Ok(0)
            }
            Err(e) => Err(CommandError::error(e)),
        };
    }
    let progress: std::sync::Arc<dyn Progress> = if json {
        std::sync::Arc::new(NoProgress)
    } else {
        TerminalProgress::shared()
    };
    drill::sweep_sandboxes(std::slice::from_ref(job), SystemClock.now()).await;
    let started_at = SystemClock.now();
    let run_id = RunId::new(started_at).into_string();
    let options = DrillOptions {
        run_id: Some(run_id.clone()),
        ..options
    };
    let report = drive(job, options, progress, started_at, |stop| match stop {
        Stop::Timeout => drill::timeout_reason(job),
        Stop::Interrupted => {
            "interrupted before the drill finished; its sandbox was removed".into()
        }
    })
    .await;
    finish(&config, job, &report, json).await
}

/// Why a drill of the command line stopped before its end.
pub(super) enum Stop {
    /// It outlived the job's `timeout` (cancelled as `serve` cancels it).
    Timeout,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

/// Runs the drill (or restore) `options` describes on the drill runtime until it ends, outlives
/// the job's timeout, or Ctrl-C or SIGTERM comes. A stopped one ends where it is, the run's
/// folder in the sandbox goes, and its report says `reason(stop)` (`error` after a timeout,
/// `aborted` after a signal).
pub(super) async fn drive(
    job: &crate::config::Job,
    options: DrillOptions,
    progress: std::sync::Arc<dyn Progress>,
    started_at: chrono::DateTime<chrono::Utc>,
    reason: impl Fn(Stop) -> String,
) -> DrillReport {
    let run_id = options.run_id.clone().unwrap_or_default();
    let drilled = tokio::time::timeout(
        job.timeout,
        drill::runtime::isolated({
            let (job, progress) = (job.clone(), progress.clone());
            async move { drill::run_drill(&job, &options, &SystemClock, progress.as_ref()).await }
        }),
    );
    let stopped = tokio::select! {
        ended = drilled => match ended {
            Ok(report) => return report,
            Err(_) => (Outcome::Error, reason(Stop::Timeout)),
        },
        _ = interrupted() => (Outcome::Aborted, reason(Stop::Interrupted)),
    };
    progress.finish();
    if let Err(e) = crate::storage::SandboxRoot::new(&job.sandbox)
        .discard_run(&job.name, &run_id)
        .await
    {
        eprintln!("error: could not remove the stopped run's sandbox folder: {e}");
    }
    let (outcome, reason) = stopped;
    DrillReport::interrupted(job, run_id, started_at, SystemClock.now(), outcome, reason)
}

/// The end of a drill or restore of the command line: logged, printed (the summary, or the
/// JSON report), recorded; the exit code its outcome.
pub(super) async fn finish(
    config: &crate::config::Config,
    job: &crate::config::Job,
    report: &DrillReport,
    json: bool,
) -> Exit {
    drill::log_finished(report);
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", drill::summary::render(report));
    }
    let what = if report.recovery.is_some() {
        "restore"
    } else {
        "drill"
    };
    let value = serde_json::to_value(report)?;
    record(config, job, &report.run_id, value, what).await?;
    if report.outcome == Outcome::Aborted {
        return Ok(INTERRUPTED);
    }
    Ok(report.outcome.exit_code())
}

/// Records the report in the journal, then sends it on to PostgreSQL when configured (a
/// record that cannot be sent waits in the journal). Evidence: a drill that is not recorded
/// did not happen, as far as an audit knows.
pub(super) async fn record(
    config: &crate::config::Config,
    job: &crate::config::Job,
    run_id: &str,
    report: serde_json::Value,
    what: &str,
) -> Result<(), CommandError> {
    let history = std::sync::Arc::new(History::new(&config.history));
    if let Err(e) = history
        .record_report(job, run_id, report, &SystemClock)
        .await
    {
        return Err(CommandError::error(format!(
            "the {what} could not be recorded: {e}"
        )));
    }
    match history.sync().await {
        Ok(synced) => {
            for (_, divergence) in synced.divergences {
                for problem in divergence.problems {
                    eprintln!("warning: the journal and PostgreSQL disagree: {problem}");
                }
            }
        }
        Err(e) => eprintln!(
            "warning: {e}; the record waits in the journal and is sent by the next run or serve"
        ),
    }
    Ok(())
}

/// `snapshots`: a job's snapshots, newest first.
pub(super) async fn snapshots(config: &Path, job: &str) -> Exit {
    let config = load(config)?;
    let job = config.job(job).map_err(CommandError::error)?;
    let snapshots = kinds::of(&job.snapshots).list(chrono::Utc::now()).await?;
    let (version, time) = match job.snapshots {
        SnapshotSource::PgDump(_) => ("FORMAT", "CREATED"),
        _ => ("VERSION", "NEWEST COMMIT"),
    };
    println!(
        "{:<40} {version:>8}  {time:<24} {:>7}  {:>11}  {:>7}",
        "SNAPSHOT", "FILES", "BYTES", "DVS"
    );
    for s in snapshots {
        let row = |version: String, commit: String, files: usize, bytes: u64, dvs: String| {
            println!(
                "{:<40} {version:>8}  {commit:<24} {files:>7}  {:>11}  {dvs:>7}",
                s.id,
                human_bytes(bytes)
            )
        };
        match (&s.table, &s.method) {
            (_, RestoreMethod::PgRestore(dump)) => match &dump.header {
                Ok(header) => row(
                    header.format.as_str().into(),
                    dump.time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    dump.files.len(),
                    dump.bytes(),
                    "-".into(),
                ),
                Err(e) => println!("{:<40} unreadable dump: {e}", s.id),
            },
            (Ok(t), _) => row(
                t.version.to_string(),
                t.commit_timestamp.map_or("-".into(), |c| {
                    c.format("%Y-%m-%d %H:%M:%S UTC").to_string()
                }),
                t.files.len(),
                t.bytes(),
                t.deletion_vectors().count().to_string(),
            ),
            (Err(_), RestoreMethod::CopyVersions(files)) => row(
                "?".into(),
                "(read once restored)".into(),
                files.len(),
                files.iter().map(|f| f.size).sum(),
                "?".into(),
            ),
            (Err(e), _) => println!("{:<40} unreadable log: {e}", s.id),
        }
    }
    Ok(0)
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn interrupted() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
}
