//! The commands: `demo`, `run`, `serve`, `validate`, `history`, `report`, `runbook`,
//! `restore`, `selftest`, `snapshots`, `healthcheck`, `trigger`, `reload` — one function each, returning the exit code or a
//! [`CommandError`] that carries it.
//!
//! Exit codes: 0 passed (or valid), 1 a drill failed (the backup is not trustworthy), 2 an error
//! (bad configuration, no snapshot, storage unreachable, bad arguments), 130 interrupted.

mod drill;
mod progress;
mod records;
mod restore;
mod selftest;
mod service;
mod validate;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use progress::TerminalProgress;

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
    /// A job's recovery runbook, written from its configuration and its drills: what a loss
    /// means and whom to tell, the RTO and RPO measured, access and tools, the last verified
    /// snapshots, and the recovery procedure with the exact commands for the job.
    Runbook {
        #[arg(long)]
        config: PathBuf,
        /// The job's name.
        job: String,
        #[arg(long, value_enum, default_value_t = RunbookFormat::Md)]
        format: RunbookFormat,
        /// Write the runbook to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Restore a snapshot for real into TARGET (a folder or s3:// prefix) with the drilled
    /// procedure, then verify it with the job's suite and the fingerprint its drill recorded.
    /// Refused unless the snapshot passed a drill with the same configuration and suite within
    /// `restore_requires_drill_within` (default 7 days), and when TARGET holds data unless
    /// `--replace`, which moves it aside first. Recorded in the journal. Exit codes as for `run`.
    Restore {
        #[arg(long)]
        config: PathBuf,
        /// The job's name.
        job: String,
        #[command(flatten)]
        arguments: restore::Arguments,
    },
    /// Self-test a job's checks: drill it, then damage copies of what it restored in known
    /// ways (a file missing, truncated or flipped, a commit missing, rows lost or duplicated
    /// with a consistent log, values nulled, drifted or changed, a column dropped, an old
    /// snapshot) and drill each, to show which the job's drills catch and by which checks.
    /// Exit 0 when every damage that applies is caught, 1 when one is missed or the drill
    /// failed, 2 when the job cannot be judged.
    Selftest {
        #[arg(long)]
        config: PathBuf,
        /// The job's name.
        job: String,
        /// The seed of the damages' random choices (printed; the same seed inflicts the same
        /// damages on the same table).
        #[arg(long)]
        seed: Option<u64>,
        /// Print the JSON report instead of the matrix.
        #[arg(long)]
        json: bool,
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

/// The formats of `runbook`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunbookFormat {
    /// Markdown.
    Md,
    /// One self-contained HTML page.
    Html,
    /// JSON, for other tools.
    Json,
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

/// What a command ends with: its exit code, or why it did not succeed.
pub(crate) type Exit = Result<u8, CommandError>;

/// A command that did not succeed: the exit code it ends with and what it says on stderr.
#[derive(Debug)]
pub struct CommandError {
    pub code: u8,
    message: String,
    /// Said as it is (a list of problems, each naming its file, line or job), not after
    /// `error: `.
    as_is: bool,
}

impl CommandError {
    /// An error: exit code 2, said as `error: <message>`.
    pub fn error(message: impl fmt::Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
            as_is: false,
        }
    }

    /// Problems the user must fix, said as they are: exit code 2.
    pub fn problems(text: impl fmt::Display) -> Self {
        Self {
            code: 2,
            message: text.to_string(),
            as_is: true,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.as_is {
            f.write_str(&self.message)
        } else {
            write!(f, "error: {}", self.message)
        }
    }
}

impl From<anyhow::Error> for CommandError {
    fn from(e: anyhow::Error) -> Self {
        CommandError::error(format!("{e:#}"))
    }
}

impl From<std::io::Error> for CommandError {
    fn from(e: std::io::Error) -> Self {
        CommandError::error(e)
    }
}

impl From<serde_json::Error> for CommandError {
    fn from(e: serde_json::Error) -> Self {
        CommandError::error(e)
    }
}

impl From<crate::history::HistoryError> for CommandError {
    fn from(e: crate::history::HistoryError) -> Self {
        CommandError::error(e)
    }
}

impl From<crate::kinds::SnapshotError> for CommandError {
    fn from(e: crate::kinds::SnapshotError) -> Self {
        CommandError::error(e)
    }
}

/// The exit code of a command interrupted by Ctrl-C or SIGTERM (128 + SIGINT).
pub(crate) const INTERRUPTED: u8 = 130;

/// Runs a command.
pub async fn run(cli: Cli) -> Exit {
    match cli.command {
        Command::Demo { dir, rows } => demo(dir, rows).await,
        Command::Serve { config } => serve(&config).await,
        Command::Healthcheck { address } => service::healthcheck(address).await,
        Command::Trigger { job, address } => service::trigger(&job, address).await,
        Command::Reload { address } => service::reload(address).await,
        Command::Validate { config, offline } => validate::validate(&config, offline).await,
        Command::History {
            config,
            job,
            since,
            limit,
            json,
        } => records::history(&config, job, since, limit, json).await,
        Command::Report {
            config,
            from,
            to,
            job,
            format,
            output,
        } => records::report(&config, from, to, job, format, output).await,
        Command::Runbook {
            config,
            job,
            format,
            output,
        } => records::runbook(&config, &job, format, output).await,
        Command::Restore {
            config,
            job,
            arguments,
        } => restore::restore(&config, &job, arguments).await,
        Command::Selftest {
            config,
            job,
            seed,
            json,
        } => selftest::selftest(&config, &job, seed, json).await,
        Command::Snapshots { config, job } => drill::snapshots(&config, &job).await,
        Command::Run {
            config,
            job,
            snapshot,
            json,
            dry_run,
        } => drill::run(&config, &job, snapshot, json, dry_run).await,
    }
}

/// `demo`: writes a demo table, snapshots and configuration into `dir` (a new temporary folder
/// when `None`, kept) and drills them.
async fn demo(dir: Option<PathBuf>, rows: usize) -> Exit {
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

/// `serve`: runs the service until SIGTERM or SIGINT; 0 after a clean shutdown, 2 when it
/// cannot start (its configuration or web config has problems, the address is taken).
async fn serve(config_file: &Path) -> Exit {
    let config = load(config_file)?;
    let web = crate::serve::load_web_config(&config).map_err(CommandError::problems)?;
    crate::serve::serve(config_file, config, web).await?;
    Ok(0)
}

/// The configuration file, or its problems (exit code 2).
fn load(path: &Path) -> Result<Config, CommandError> {
    config::load(path).map_err(CommandError::problems)
}
