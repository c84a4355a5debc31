//! restore-drill proves that backups can be restored: for each job it restores the newest
//! snapshot into a sandbox of its own, verifies the restored data (structure, a suite of checks
//! in one scan, comparison with the source at the same version), measures RPO and RTO, reports
//! and cleans up.
//!
//! A map of the modules, in the order a drill uses them:
//!
//! - [`primitives`]: durations, byte sizes, hashes, run ids and the TOML field reader; they
//!   import nothing else of restore-drill.
//! - [`schedule`]: a job's cron expression in its time zone.
//! - [`config`]: the configuration file: read, `${VAR}` substitution, validation that reports
//!   every problem with file, line and column.
//! - [`storage`]: locations, read-only handles (source, backups) and the sandbox handle that can
//!   only write below its run folder.
//! - [`kinds`]: the kinds of data behind one trait, [`kinds::Kind`], one folder per family;
//!   [`kinds::delta`] (copies, time travel, versioned buckets) and [`kinds::postgres`]
//!   (`pg_dump` dumps): snapshot discovery, the restore, structure verification, and reading
//!   the restored data and the source.
//! - [`verify`]: suites, the one-scan compiler, evaluation against thresholds and the source.
//! - [`smoke`]: the team's own programs run against the restored data (`[[job.smoke]]`).
//! - [`drill`]: one run, phase by phase through the job's kind, and its report.
//! - [`history`]: the journal of every drill, and PostgreSQL fed from it.
//! - [`report`]: audit reports of a period, in Markdown, HTML, JSON and JUnit XML.
//! - [`runbook`]: a job's recovery runbook, written from its configuration and its drills.
//! - [`recovery`]: `restore`, a snapshot restored for real by the drilled procedure, gated by
//!   its drills and checked against them.
//! - [`metrics`]: the Prometheus metric set.
//! - [`scheduler`]: `serve`'s schedules, overlap guard, concurrency bound, timeouts.
//! - [`server`]: `serve`'s HTTP endpoints, with optional TLS and basic auth.
//! - [`serve`]: the service's life: start, reload on SIGHUP, shut down on SIGTERM.
//! - [`clock`]: the injected clock.
//! - [`demo`]: the self-contained demo.
//! - [`cli`]: the commands.

pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod drill;
pub mod history;
pub mod kinds;
pub mod metrics;
pub mod primitives;
pub mod recovery;
pub mod report;
pub mod runbook;
pub mod schedule;
pub mod scheduler;
pub mod selftest;
pub mod serve;
pub mod server;
pub mod smoke;
pub mod storage;
pub mod verify;
