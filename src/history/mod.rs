//! Evidence that lasts: every drill's record goes to the journal (always, fsync'd before the
//! drill counts as recorded), and from there to PostgreSQL when one is configured — in order,
//! exactly once, also after PostgreSQL was unreachable for a while.

pub mod journal;
pub mod postgres;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::clock::Clock;
use crate::config::{HistorySettings, Job};
use crate::drill::DrillReport;
use journal::{ChainCheck, Journal, Record, Stored};
use postgres::PostgresStore;

/// Why history could not be written or read. Messages never contain the PostgreSQL URL.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("PostgreSQL at {place}: {reason}")]
    Postgres { place: String, reason: String },
}

/// How long a connection attempt to PostgreSQL may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The history of one configuration: its journal, and PostgreSQL if configured.
#[derive(Debug)]
pub struct History {
    journal: Journal,
    postgres: Option<String>,
    postgres_ca_file: Option<PathBuf>,
    keep: Option<Duration>,
    /// Woken after each record, so a sync loop can send it on.
    pub recorded: tokio::sync::Notify,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Records newly stored in PostgreSQL.
    pub sent: usize,
}

impl History {
    pub fn new(settings: &HistorySettings) -> Self {
        Self {
            journal: Journal::new(&settings.journal),
            postgres: settings.postgres.clone(),
            postgres_ca_file: settings.postgres_ca_file.clone(),
            keep: settings.keep,
            recorded: tokio::sync::Notify::new(),
        }
    }

    /// Where PostgreSQL is (`host:port/db`), if configured.
    pub fn postgres_place(&self) -> Option<String> {
        self.postgres.as_deref().map(postgres::place_of)
    }

    /// Appends the drill's record to the journal; returns once it is on disk.
    pub async fn record(
        self: &Arc<Self>,
        job: &Job,
        report: &DrillReport,
        clock: &dyn Clock,
    ) -> Result<Stored, HistoryError> {
        let record = Record {
            seq: 0,
            prev: None,
            job: job.name.clone(),
            run_id: report.run_id.clone(),
            recorded_at: clock.now(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            config_sha256: job.config_sha256.clone(),
            suite_sha256: job.suite_sha256.clone(),
            report: serde_json::to_value(report).expect("reports serialize"),
        };
        let journal = self.journal.clone();
        let stored = tokio::task::spawn_blocking(move || journal.append(record))
            .await
            .expect("the journal append does not panic")?;
        self.recorded.notify_one();
        Ok(stored)
    }

    /// Until `stop`: sends records to PostgreSQL after each record and every minute, logging when
    /// PostgreSQL becomes unreachable and when it is back (records wait in the journal); and
    /// drops history older than `keep` once a day.
    pub async fn sync_loop(
        self: Arc<Self>,
        clock: Arc<dyn Clock>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let place = self.postgres_place().unwrap_or_default();
        let mut reachable = true;
        let mut pruned_at: Option<DateTime<Utc>> = None;
        loop {
            let now = clock.now();
            if self.keep.is_some() && pruned_at.is_none_or(|p| now - p >= chrono::Duration::days(1))
            {
                match self.prune(now).await {
                    Ok((journal, rows)) => {
                        pruned_at = Some(now);
                        if journal > 0 || rows > 0 {
                            tracing::info!(
                                journal_records = journal,
                                postgres_rows = rows,
                                "history older than `keep` dropped"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not drop old history; trying again later")
                    }
                }
            }
            if self.postgres.is_none() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => continue,
                    _ = stop.cancelled() => return,
                }
            }
            match self.sync().await {
                Ok(synced) => {
                    if !reachable {
                        tracing::info!(postgres = %place, "PostgreSQL is reachable again");
                    }
                    reachable = true;
                    if synced.sent > 0 {
                        tracing::debug!(records = synced.sent, "records sent to PostgreSQL");
                    }
                }
                Err(e) => {
                    if reachable {
                        tracing::error!(error = %e, "records wait in the journal until PostgreSQL is reachable");
                    }
                    reachable = false;
                }
            }
            tokio::select! {
                _ = self.recorded.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Sends the journal's records that PostgreSQL lacks, job by job in journal order. Without
    /// PostgreSQL configured it does nothing.
    pub async fn sync(&self) -> Result<Synced, HistoryError> {
        let Some(url) = &self.postgres else {
            return Ok(Synced::default());
        };
        let mut store =
            PostgresStore::connect(url, self.postgres_ca_file.as_deref(), CONNECT_TIMEOUT).await?;
        let journal = self.journal.clone();
        let journal_id = tokio::task::spawn_blocking({
            let journal = journal.clone();
            move || journal.id()
        })
        .await
        .expect("reading the journal id does not panic")?;
        let mut synced = Synced::default();
        for job in journal.jobs()? {
            let stored_up_to = store.stored_up_to(&journal_id, &job).await?;
            let (records, _) = {
                let journal = journal.clone();
                let job = job.clone();
                tokio::task::spawn_blocking(move || journal.read(&job))
                    .await
                    .expect("reading the journal does not panic")?
            };
            for stored in records.iter().filter(|s| s.record.seq > stored_up_to) {
                if store.insert(&journal_id, stored).await? {
                    synced.sent += 1;
                }
            }
        }
        Ok(synced)
    }

    /// Recent drills' reports, newest first: from PostgreSQL when configured and reachable,
    /// else from the journal. Also says where they came from.
    pub async fn recent(
        &self,
        job: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<(String, Vec<Value>), HistoryError> {
        if let Some(url) = &self.postgres {
            match PostgresStore::connect(url, self.postgres_ca_file.as_deref(), CONNECT_TIMEOUT)
                .await
            {
                Ok(store) => {
                    let reports = store.recent(job, since, limit).await?;
                    return Ok((format!("PostgreSQL at {}", store.place), reports));
                }
                Err(e) => tracing::warn!(error = %e, "history read from the journal instead"),
            }
        }
        let mut reports = Vec::new();
        for name in self.journal.jobs()? {
            if job.is_some_and(|j| j != name) {
                continue;
            }
            let (records, _) = self.journal.read(&name)?;
            reports.extend(records.into_iter().map(|s| s.record.report));
        }
        let started = |r: &Value| {
            r["started_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        reports.retain(|r| since.is_none_or(|s| started(r).is_some_and(|t| t >= s)));
        reports.sort_by_key(|r| std::cmp::Reverse(started(r)));
        reports.truncate(limit);
        Ok((
            format!("the journal {}", self.journal.dir().display()),
            reports,
        ))
    }

    /// Drops the records older than `[history] keep` from the journal (leaving an anchor per
    /// job) and from PostgreSQL. Returns (journal records, PostgreSQL rows) dropped.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<(usize, u64), HistoryError> {
        let Some(keep) = self.keep else {
            return Ok((0, 0));
        };
        let before = now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let journal = self.journal.clone();
        let dropped = tokio::task::spawn_blocking(move || -> Result<usize, HistoryError> {
            let mut dropped = 0;
            for job in journal.jobs()? {
                dropped += journal.compact(&job, before, now)?;
            }
            Ok(dropped)
        })
        .await
        .expect("compaction does not panic")?;
        let rows = match &self.postgres {
            Some(url) => {
                PostgresStore::connect(url, self.postgres_ca_file.as_deref(), CONNECT_TIMEOUT)
                    .await?
                    .prune(before)
                    .await?
            }
            None => 0,
        };
        Ok((dropped, rows))
    }

    /// The chain check of every job in the journal.
    pub fn check_chains(&self) -> Result<Vec<ChainCheck>, HistoryError> {
        self.journal
            .jobs()?
            .iter()
            .map(|job| self.journal.read(job).map(|(_, check)| check))
            .collect()
    }
}
