//! The commands: `demo`, `run`, `serve`, `history`, `report`, `validate`, `snapshots`.
//!
//! Exit codes: 0 passed (or valid), 1 a drill failed (the backup is not trustworthy), 2 an error
//! (bad configuration, no snapshot, storage unreachable, bad arguments).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::clock::{Clock, SystemClock};
use crate::config;
use crate::drill::{self, DrillOptions, DrillReport, NoProgress, Outcome, Progress};
use crate::history::History;
use crate::kinds::delta::snapshot::RestoreMethod;
use crate::kinds::{self, CopyProgress};
use crate::primitives::bytes::human_bytes;
use crate::primitives::duration::seconds;
use crate::primitives::run_id::RunId;

/// Proves that backups can be restored.
#[derive(Debug, Parser)]
#[command(
    name = "restore-drill",
    version,
    after_help = "Exit codes: 0 passed / valid, 1 a drill failed (a `fail` finding), 2 error (bad configuration or arguments, no snapshot, storage unreachable), 130 interrupted (Ctrl-C or SIGTERM; the drill's sandbox is removed and it is recorded as aborted)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a demo table, snapshots and config into a new folder and drill them (no services needed).
    Demo {
        /// The folder to write into (default: a new temporary folder, kept afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rows in the demo table.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
    },
    /// Drill one job now: restore its newest snapshot, verify it, measure RPO and RTO.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// The job's name.
        job: String,
        /// Drill this snapshot (its name, as `snapshots` lists it) instead of the newest.
        #[arg(long)]
        snapshot: Option<String>,
        /// Print the JSON report instead of the summary.
        #[arg(long)]
        json: bool,
        /// Print what the drill would do (snapshot, files and bytes, from where to where,
        /// checks) and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Ask a running `serve` whether it is alive (GET /healthz over plain HTTP): exit 0 if it
    /// answers 200 within 5 seconds, else 1. For container health checks, without curl.
    Healthcheck {
        /// The address `serve` listens on.
        #[arg(long, default_value = "127.0.0.1:9841")]
        address: std::net::SocketAddr,
    },
    /// Ask a running `serve` to drill JOB now (POST /jobs/JOB/run over plain HTTP), as its
    /// schedule would: the drill counts in its metrics. Run it where `serve` runs (inside its
    /// pod or container), where the listener is loopback; exit 0 if the drill started.
    Trigger {
        /// The job's name.
        job: String,
        /// The address `serve` listens on.
        #[arg(long, default_value = "127.0.0.1:9841")]
        address: std::net::SocketAddr,
    },
    /// Ask a running `serve` to reload its configuration (POST /-/reload over plain HTTP);
    /// exit 0 if it was applied, 2 with the problems if it was refused.
    Reload {
        /// The address `serve` listens on.
        #[arg(long, default_value = "127.0.0.1:9841")]
        address: std::net::SocketAddr,
    },
    /// Run every job on its schedule and serve /metrics, /healthz, /readyz and /jobs over HTTP.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a configuration file and its suites; report every problem at once. Each job's
    /// source is opened (its log, no data) and the suite checked against its schema.
    Validate {
        #[arg(long)]
        config: PathBuf,
        /// Check the files only, without opening the sources (e.g. in a CI pipeline that cannot
        /// reach the data).
        #[arg(long)]
        offline: bool,
    },
    /// Recent drills, newest first: from PostgreSQL when configured, else from the journal.
    History {
        #[arg(long)]
        config: PathBuf,
        /// Only this job's drills.
        #[arg(long)]
        job: Option<String>,
        /// Only drills started at or after this date (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// At most this many drills.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print the reports as JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// An audit report of a period: drills per job, days with and without a verified restore,
    /// failures, RPO and RTO against objectives, the newest verified snapshot, chain integrity.
    Report {
        #[arg(long)]
        config: PathBuf,
        /// First day of the period (YYYY-MM-DD, UTC).
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day of the period, included (YYYY-MM-DD, UTC).
        #[arg(long)]
        to: chrono::NaiveDate,
        /// Only this job.
        #[arg(long)]
        job: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
        /// Write the report to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// List a job's snapshots, newest first.
    Snapshots {
        #[arg(long)]
        config: PathBuf,
        job: String,
    },
}

/// The formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown.
    Md,
    /// One self-contained HTML page that prints well.
    Html,
    /// JSON, for other tools.
    Json,
    /// JUnit XML, so CI systems show drills as test results.
    Junit,
}

impl Cli {
    /// The log filter when `RUST_LOG` is not set: warnings and errors, without the Delta
    /// kernel's own error lines (drills report those as findings in words of their own); for
    /// `serve` also restore-drill's own lines (service start, each drill's start and end).
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Serve { .. } => "warn,restore_drill=info,buoyant_kernel=off",
            _ => "warn,buoyant_kernel=off",
        }
    }
}

/// Logs go to stderr: human-readable on a terminal, JSON lines otherwise. `RUST_LOG` filters.
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// Runs a command and returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Demo { dir, rows } => {
            let root = match dir {
                Some(d) => {
                    std::fs::create_dir_all(&d).with_context(|| d.display().to_string())?;
                    std::path::absolute(&d)?
                }
                None => tempfile::Builder::new()
                    .prefix("restore-drill-demo-")
                    .tempdir()
                    .context("creating the demo folder")?
                    .keep(),
            };
            let progress = TerminalProgress::shared();
            crate::demo::run(&root, rows, progress.as_ref()).await?;
            Ok(0)
        }
        Command::Serve { config } => crate::serve::serve(&config).await,
        Command::Healthcheck { address } => {
            Ok(match local_request(address, "GET", "/healthz").await {
                Ok((200, _)) => 0,
                Ok((status, _)) => {
                    eprintln!("unhealthy: {address}/healthz answered {status}");
                    1
                }
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    1
                }
            })
        }
        Command::Trigger { job, address } => {
            let (status, body) = local_request(address, "POST", &format!("/jobs/{job}/run"))
                .await
                .map_err(anyhow::Error::msg)?;
            if status != 202 {
                anyhow::bail!("{address} answered {status}: {}", body.trim());
            }
            println!("{}", body.trim());
            Ok(0)
        }
        Command::Reload { address } => {
            let (status, body) = local_request(address, "POST", "/-/reload")
                .await
                .map_err(anyhow::Error::msg)?;
            if status != 200 {
                anyhow::bail!("{address} answered {status}: {}", body.trim());
            }
            println!("{}", body.trim());
            Ok(0)
        }
        Command::Validate { config, offline } => match config::load(&config) {
            Ok(c) => {
                let mut problems = Vec::new();
                if let Some(file) = &c.server.web_config
                    && let Err(e) = crate::server::WebConfig::load(file)
                {
                    problems.push(e.to_string());
                }
                // The suites against the sources' schemas: the logs are read, no data.
                for job in c.jobs.iter().filter(|_| !offline) {
                    let described = kinds::of(&job.snapshots, &job.source)
                        .describe_source()
                        .await;
                    match described {
                        Ok(info) => problems.extend(
                            job.suite
                                .mismatches(&job.suite_path, &info.typed_columns())
                                .iter()
                                .map(|p| p.to_string()),
                        ),
                        Err(reason) => problems.push(format!(
                            "job `{}`: the source {} cannot be opened: {reason}; check `source` and its storage profile (or validate with --offline where the data cannot be reached)",
                            job.name, job.source
                        )),
                    }
                }
                if !problems.is_empty() {
                    eprintln!(
                        "{} problem{} in the suites, the sources and the web config:\n{}",
                        problems.len(),
                        if problems.len() == 1 { "" } else { "s" },
                        problems.join("\n")
                    );
                    return Ok(2);
                }
                let checks: usize = c.jobs.iter().map(|j| j.suite.checks.len()).sum();
                println!(
                    "{}: valid ({} job{}, {checks} checks)",
                    config.display(),
                    c.jobs.len(),
                    if c.jobs.len() == 1 { "" } else { "s" }
                );
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(2)
            }
        },
        Command::History {
            config,
            job,
            since,
            limit,
            json,
        } => {
            let config = load_or_report(&config)?;
            let Some(config) = config else { return Ok(2) };
            if let Some(job) = &job {
                config.job(job).map_err(anyhow::Error::msg)?;
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
            eprintln!(
                "{} drill{} from {}",
                recent.entries.len(),
                if recent.entries.len() == 1 { "" } else { "s" },
                recent.source
            );
            println!(
                "{:<20} {:<24} {:<8} {:>10} {:>10} {:>8}  RUN",
                "STARTED (UTC)", "JOB", "OUTCOME", "RPO", "RTO", "FINDINGS"
            );
            let seconds = |v: Option<f64>| v.map_or("-".to_string(), |s| seconds(s.max(0.0)));
            for entry in &recent.entries {
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
        Command::Report {
            config,
            from,
            to,
            job,
            format,
            output,
        } => {
            let config = load_or_report(&config)?;
            let Some(config) = config else { return Ok(2) };
            if let Some(job) = &job {
                config.job(job).map_err(anyhow::Error::msg)?;
            }
            if to < from {
                anyhow::bail!("--to {to} is before --from {from}");
            }
            let history = History::new(&config.history);
            let recent = history.recent(job.as_deref(), None, usize::MAX).await?;
            let unreadable = recent.entries.iter().filter(|e| e.drill.is_none()).count();
            if unreadable > 0 {
                eprintln!(
                    "warning: {unreadable} record{} of the history could not be read as drill reports and are not counted; `restore-drill history` lists them",
                    if unreadable == 1 { "" } else { "s" }
                );
            }
            let reports: Vec<drill::DrillSummary> =
                recent.entries.into_iter().filter_map(|e| e.drill).collect();
            let report = crate::report::build(
                &config,
                job.as_deref(),
                from,
                to,
                crate::report::Evidence {
                    reports: &reports,
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
        Command::Snapshots { config, job } => {
            let config = load_or_report(&config)?;
            let Some(config) = config else { return Ok(2) };
            let job = config.job(&job).map_err(anyhow::Error::msg)?;
            let snapshots = kinds::of(&job.snapshots, &job.source)
                .list(chrono::Utc::now())
                .await?;
            println!(
                "{:<40} {:>8}  {:<24} {:>7}  {:>11}  {:>7}",
                "SNAPSHOT", "VERSION", "NEWEST COMMIT", "FILES", "BYTES", "DVS"
            );
            for s in snapshots {
                let row =
                    |version: String, commit: String, files: usize, bytes: u64, dvs: String| {
                        println!(
                            "{:<40} {version:>8}  {commit:<24} {files:>7}  {:>11}  {dvs:>7}",
                            s.id,
                            human_bytes(bytes)
                        )
                    };
                match (&s.table, &s.method) {
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
        Command::Run {
            config,
            job,
            snapshot,
            json,
            dry_run,
        } => {
            let config = load_or_report(&config)?;
            let Some(config) = config else { return Ok(2) };
            let job = config.job(&job).map_err(anyhow::Error::msg)?;
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
                    Err(e) => {
                        eprintln!("error: {e}");
                        Ok(2)
                    }
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
            // Ctrl-C or SIGTERM: the drill stops where it is, its sandbox goes, and it is
            // recorded as aborted.
            // A drill that outlives the job's `timeout` is cancelled as `serve` cancels it.
            let drilled = tokio::time::timeout(
                job.timeout,
                drill::runtime::isolated({
                    let (job, progress) = (job.clone(), progress.clone());
                    async move {
                        drill::run_drill(&job, &options, &SystemClock, progress.as_ref()).await
                    }
                }),
            );
            let stopped = tokio::select! {
                ended = drilled => match ended {
                    Ok(report) => Ok(report),
                    Err(_) => Err((Outcome::Error, drill::timeout_reason(job))),
                },
                _ = interrupted() => Err((
                    Outcome::Aborted,
                    "interrupted before the drill finished; its sandbox was removed".into(),
                )),
            };
            let report = match stopped {
                Ok(report) => report,
                Err((outcome, reason)) => {
                    progress.finish();
                    if let Err(e) = crate::storage::SandboxRoot::new(&job.sandbox)
                        .discard_run(&job.name, &run_id)
                        .await
                    {
                        eprintln!("error: could not remove the stopped drill's sandbox: {e}");
                    }
                    DrillReport::interrupted(
                        job,
                        run_id,
                        started_at,
                        SystemClock.now(),
                        outcome,
                        reason,
                    )
                }
            };
            drill::log_finished(&report);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", drill::summary::render(&report));
            }
            // Evidence: a drill that is not recorded did not happen, as far as an audit knows.
            let history = std::sync::Arc::new(History::new(&config.history));
            if let Err(e) = history.record(job, &report, &SystemClock).await {
                eprintln!("error: the drill could not be recorded: {e}");
                return Ok(2);
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
            if report.outcome == Outcome::Aborted {
                return Ok(INTERRUPTED);
            }
            Ok(report.outcome.exit_code())
        }
    }
}

/// One plain-HTTP request to a `serve` on `address`, answered within 5 seconds: the status and
/// the body, or why there was no answer.
async fn local_request(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let asked = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(
                format!("{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = match tokio::time::timeout(std::time::Duration::from_secs(5), asked).await {
        Ok(Ok(answer)) => String::from_utf8_lossy(&answer).into_owned(),
        Ok(Err(e)) => return Err(format!("cannot ask {address}{path}: {e}")),
        Err(_) => return Err(format!("{address}{path} did not answer within 5 seconds")),
    };
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{address}{path} did not answer in HTTP"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The exit code of a command interrupted by Ctrl-C or SIGTERM (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

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

fn load_or_report(path: &std::path::Path) -> anyhow::Result<Option<config::Config>> {
    match config::load(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            eprintln!("{e}");
            Ok(None)
        }
    }
}

/// Progress bars on stderr when it is a terminal; nothing otherwise.
struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    fn shared() -> std::sync::Arc<dyn Progress> {
        if std::io::stderr().is_terminal() {
            std::sync::Arc::new(TerminalProgress {
                bar: ProgressBar::hidden(),
            })
        } else {
            std::sync::Arc::new(NoProgress)
        }
    }
}

impl CopyProgress for TerminalProgress {
    fn start(&self, files: usize, bytes: u64) {
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.bar.set_length(bytes);
        self.bar.set_position(0);
        self.bar.set_style(
            ProgressStyle::with_template(
                "restoring {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_message(format!("{files} files"));
    }
    fn copied(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for TerminalProgress {
    fn scan_started(&self, what: &str) {
        self.bar.reset();
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
        );
        self.bar.set_message(what.to_string());
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }
    fn scan_finished(&self) {
        self.bar.finish_and_clear();
    }
}
