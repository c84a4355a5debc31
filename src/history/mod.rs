//! Evidence that lasts: every drill's record goes to the journal (always, fsync'd before the
//! drill counts as recorded), and from there to PostgreSQL when one is configured — in order,
//! exactly once, also after PostgreSQL was unreachable for a while.

pub mod journal;
pub mod postgres;
pub(crate) mod reconcile;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::clock::Clock;
use crate::config::{HistorySettings, Job};
use crate::drill::{DrillReport, DrillSummary, Outcome};
use crate::metrics::DrillMetrics;
use journal::{ChainCheck, Journal, Record, Stored};
use postgres::PostgresStore;
use reconcile::Divergence;

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
    #[error("the journal could not be read or written: {0}")]
    Task(String),
}

/// Runs blocking journal work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HistoryError> + Send + 'static,
) -> Result<T, HistoryError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HistoryError::Task(e.to_string()))?
}

/// How long a connection attempt to PostgreSQL may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The journal files whose restores and self-tests were read, by job: each file's size and
/// modification time when it was.
pub(crate) type JournalStamps = HashMap<String, (u64, std::time::SystemTime)>;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// Records newly stored in PostgreSQL.
    pub sent: usize,
    /// Per job of the journal, where the journal and PostgreSQL disagree (empty when they agree).
    pub divergences: Vec<(String, Divergence)>,
}

/// One drill as history holds it: its report as recorded, the report read into its typed
/// summary, and what is wrong with its record, if anything (altered, out of chain, different
/// from or missing in the journal, not a report this version can read).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub report: Value,
    /// `None` when the record is not a drill report this version can read (`problem` says why),
    /// or is a self-test's.
    pub drill: Option<DrillSummary>,
    /// The record of a self-test (`restore-drill selftest`).
    pub selftest: Option<SelfTestSummary>,
    pub problem: Option<String>,
}

/// A self-test as its record holds it: when, what it judged, and per damage whether the job's
/// drill caught it (`caught`, `missed`, `n/a`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SelfTestSummary {
    pub job: String,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seed: u64,
    pub drill_run_id: String,
    /// `judged`, `drill_not_passed` or `cannot_judge`.
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub caught: usize,
    pub applicable: usize,
    #[serde(default)]
    pub damages: Vec<DamageSummary>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct DamageSummary {
    pub damage: String,
    pub outcome: String,
    #[serde(default)]
    pub caught_by: Vec<String>,
    #[serde(default)]
    pub suggestion: Option<String>,
}

/// The value of a self-test record's `record` field.
pub const SELFTEST_RECORD: &str = "selftest";

impl SelfTestSummary {
    /// The summary of a recorded report, when it is a self-test's.
    pub(crate) fn from_record(report: &Value) -> Option<Result<Self, serde_json::Error>> {
        (report["record"] == SELFTEST_RECORD).then(|| serde_json::from_value(report.clone()))
    }

    /// Sets the self-test metrics of its job to what this self-test found.
    pub(crate) fn show(&self, metrics: &DrillMetrics) {
        let damages: Vec<(String, bool)> = self
            .damages
            .iter()
            .filter(|d| d.outcome != "n/a")
            .map(|d| (d.damage.clone(), d.outcome == "caught"))
            .collect();
        let ratio = (self.status == "judged" && self.applicable > 0)
            .then(|| self.caught as f64 / self.applicable as f64);
        metrics.selftest_recorded(&self.job, &damages, ratio);
    }

    /// The outcome a self-test's record stores: `passed` when every damage that applies was
    /// caught, `failed` when one was missed (or the drill failed), `error` otherwise.
    pub fn outcome(&self) -> &'static str {
        match self.status.as_str() {
            "judged" if self.caught == self.applicable => "passed",
            "judged" => "failed",
            "drill_not_passed" => "failed",
            _ => "error",
        }
    }
}

impl Entry {
    fn new(report: Value, problem: Option<String>) -> Self {
        if let Some(read) = SelfTestSummary::from_record(&report) {
            let (selftest, unreadable) = match read {
                Ok(s) => (Some(s), None),
                Err(e) => (
                    None,
                    Some(format!("not a self-test record this version reads: {e}")),
                ),
            };
            return Entry {
                report,
                drill: None,
                selftest,
                problem: problem.or(unreadable),
            };
        }
        match DrillSummary::from_record(report.clone()) {
            Ok(drill) => Entry {
                report,
                drill: Some(drill),
                selftest: None,
                problem,
            },
            Err(e) => Entry {
                report,
                drill: None,
                selftest: None,
                problem: Some(
                    problem
                        .unwrap_or_else(|| format!("not a drill report this version reads: {e}")),
                ),
            },
        }
    }

    /// The job the record belongs to; for a record that is not a readable report, the job it
    /// names, so that a job's history still shows it.
    fn job(&self) -> Option<&str> {
        match (&self.drill, &self.selftest) {
            (Some(d), _) => Some(d.job.as_str()),
            (_, Some(s)) => Some(s.job.as_str()),
            _ => self.report["job"].as_str(),
        }
    }

    fn started_at(&self) -> Option<DateTime<Utc>> {
        match (&self.drill, &self.selftest) {
            (Some(d), _) => Some(d.started_at),
            (_, Some(s)) => Some(s.started_at),
            _ => None,
        }
    }
}

/// One job's journal as read for a sync or a report.
struct JobJournal {
    job: String,
    records: Vec<Stored>,
    chain: ChainCheck,
    anchor: Option<journal::Anchor>,
}

/// What a job's recorded history says of it now: its last drill, when its last passed drill
/// finished, and how many drills in a row up to the last ended in `error` (aborted drills,
/// cut short by a shutdown, neither count nor break the run).
#[derive(Debug, Clone)]
pub(crate) struct JobState {
    pub last: DrillSummary,
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_errors: u64,
}

/// Folds recorded reports, newest first, into a job's state; stops (returns false) once it
/// knows everything.
#[derive(Default)]
struct StateFold {
    last: Option<DrillSummary>,
    last_success: Option<DateTime<Utc>>,
    consecutive_errors: u64,
    errors_counted: bool,
}

impl StateFold {
    /// Restores for real are not drills: they leave the state as it is.
    fn add(&mut self, report: DrillSummary) -> bool {
        if report.is_restore() {
            return true;
        }
        let outcome = report.outcome;
        let finished = report.finished_at;
        if self.last.is_none() {
            self.last = Some(report);
        }
        match outcome {
            Outcome::Error if !self.errors_counted => self.consecutive_errors += 1,
            Outcome::Aborted | Outcome::Error => {}
            Outcome::Passed | Outcome::Failed => self.errors_counted = true,
        }
        if outcome == Outcome::Passed {
            self.last_success = Some(finished);
            return false;
        }
        true
    }

    fn finish(self) -> Option<JobState> {
        Some(JobState {
            last: self.last?,
            last_success: self.last_success,
            consecutive_errors: self.consecutive_errors,
        })
    }
}

/// A job's state from the records PostgreSQL holds (every replica's drills).
pub(crate) async fn stored_state(
    store: &PostgresStore,
    job: &str,
) -> Result<Option<JobState>, HistoryError> {
    let mut fold = StateFold::default();
    for report in store.recent(Some(job), None, 200).await? {
        if let Ok(summary) = DrillSummary::from_record(report)
            && !fold.add(summary)
        {
            break;
        }
    }
    if fold.last.is_some() && fold.last_success.is_none() {
        fold.last_success = store.last_passed(job).await?;
    }
    Ok(fold.finish())
}

/// Recent drills, the chain check of every job in the journal (with the differences from
/// PostgreSQL when it was read), and where the drills were read from.
#[derive(Debug, Clone)]
pub(crate) struct Recent {
    pub source: String,
    pub entries: Vec<Entry>,
    pub chains: Vec<ChainCheck>,
}

impl Recent {
    /// The drills whose records read as drill reports (restores for real left out).
    pub fn drills(&self) -> Vec<DrillSummary> {
        self.entries
            .iter()
            .filter_map(|e| e.drill.clone())
            .filter(|d| !d.is_restore())
            .collect()
    }

    /// The self-tests, newest first.
    pub fn selftests(&self) -> Vec<SelfTestSummary> {
        self.entries
            .iter()
            .filter_map(|e| e.selftest.clone())
            .collect()
    }

    /// The restores for real, newest first.
    pub fn restores(&self) -> Vec<DrillSummary> {
        self.entries
            .iter()
            .filter_map(|e| e.drill.clone())
            .filter(DrillSummary::is_restore)
            .collect()
    }
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
    pub(crate) fn postgres_place(&self) -> Option<String> {
        self.postgres.as_deref().map(postgres::place_of)
    }

    /// Appends the drill's record to the journal; returns once it is on disk.
    pub async fn record(
        self: &Arc<Self>,
        job: &Job,
        report: &DrillReport,
        clock: &dyn Clock,
    ) -> Result<Stored, HistoryError> {
        let value = serde_json::to_value(report).expect("reports serialize");
        self.record_report(job, &report.run_id, value, clock).await
    }

    /// Appends a record of `job` holding `report` (a drill's, a restore's or a self-test's),
    /// under `run_id`; returns once it is on disk.
    pub async fn record_report(
        self: &Arc<Self>,
        job: &Job,
        run_id: &str,
        report: Value,
        clock: &dyn Clock,
    ) -> Result<Stored, HistoryError> {
        let record = Record {
            seq: 0,
            prev: None,
            job: job.name.clone(),
            run_id: run_id.to_string(),
            recorded_at: clock.now(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            config_sha256: job.config_sha256.clone(),
            suite_sha256: job.suite_sha256.clone(),
            report,
        };
        let journal = self.journal.clone();
        let stored = blocking(move || journal.append(record)).await?;
        self.recorded.notify_one();
        Ok(stored)
    }

    /// Until `stop`: sends records to PostgreSQL after each record and every minute, logging when
    /// PostgreSQL becomes unreachable and when it is back (records wait in the journal); and
    /// drops history older than `keep` once a day.
    pub(crate) async fn sync_loop(
        self: Arc<Self>,
        clock: Arc<dyn Clock>,
        metrics: Arc<DrillMetrics>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let place = self.postgres_place().unwrap_or_default();
        let mut reachable = true;
        let mut reported: std::collections::HashMap<String, Divergence> = Default::default();
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
                    for (job, divergence) in synced.divergences {
                        metrics.set_history_divergence(&job, divergence.problems.len());
                        if reported.get(&job) != Some(&divergence) {
                            for problem in &divergence.problems {
                                tracing::error!(job = %job, problem = %problem, "the journal and PostgreSQL disagree");
                            }
                            reported.insert(job, divergence);
                        }
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
                _ = self.recorded.notified() => {
                    // The records of the next second go with it: a burst of drills (thousands
                    // of jobs due together) is sent in a few syncs rather than one each.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.cancelled() => {}
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Until `stop`: keeps the metrics of the records other commands write — restores for real
    /// and self-tests — equal to what the journal holds for each job `jobs()` names, reading a
    /// job's journal again when it changed, every 30 seconds. `seen` is what
    /// [`History::show_other_records`] already read.
    pub(crate) async fn show_other_records_loop(
        self: Arc<Self>,
        jobs: impl Fn() -> Vec<String> + Send + 'static,
        metrics: Arc<DrillMetrics>,
        mut seen: JournalStamps,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = stop.cancelled() => return,
            }
            self.show_other_records(&jobs(), &metrics, &mut seen).await;
        }
    }

    /// Reads the journal of each of `jobs` whose file changed since `seen` says: its restores
    /// for real into `restore_drill_restores_total`, its newest self-test into
    /// `restore_drill_selftest_caught` and `restore_drill_selftest_caught_ratio`.
    pub(crate) async fn show_other_records(
        &self,
        jobs: &[String],
        metrics: &DrillMetrics,
        seen: &mut JournalStamps,
    ) {
        for job in jobs {
            let Some(stamp) = self.journal.stamp(job) else {
                continue;
            };
            if seen.get(job) == Some(&stamp) {
                continue;
            }
            let journal = self.journal.clone();
            let name = job.clone();
            let counted = blocking(move || {
                let mut counts: HashMap<Outcome, u64> = HashMap::new();
                let mut selftest: Option<SelfTestSummary> = None;
                let needles = ["\"recovery\":{", "\"record\":\"selftest\""];
                journal.records_containing(&name, &needles, |stored| {
                    let report = &stored.record.report;
                    if report.get("recovery").is_some()
                        && let Ok(summary) = DrillSummary::from_record(report.clone())
                    {
                        *counts.entry(summary.outcome).or_default() += 1;
                    }
                    // Oldest first: the last one read is the newest.
                    if let Some(Ok(summary)) = SelfTestSummary::from_record(report) {
                        selftest = Some(summary);
                    }
                })?;
                Ok((counts, selftest))
            })
            .await;
            match counted {
                Ok((counts, selftest)) => {
                    for (outcome, total) in counts {
                        metrics.restores_recorded(job, outcome, total);
                    }
                    if let Some(s) = selftest {
                        s.show(metrics);
                    }
                    seen.insert(job.clone(), stamp);
                }
                Err(e) => {
                    tracing::warn!(job = %job, error = %e, "could not count the job's restores")
                }
            }
        }
    }

    /// Sends the journal's records that PostgreSQL lacks, job by job in journal order, and
    /// compares the two record by record. Without PostgreSQL configured it does nothing.
    pub async fn sync(&self) -> Result<Synced, HistoryError> {
        let Some(url) = &self.postgres else {
            return Ok(Synced::default());
        };
        let mut store =
            PostgresStore::connect(url, self.postgres_ca_file.as_deref(), CONNECT_TIMEOUT).await?;
        self.sync_to(&mut store).await
    }

    async fn sync_to(&self, store: &mut PostgresStore) -> Result<Synced, HistoryError> {
        let journals = self.read_journals().await?;
        let (sent, compared) = self.sync_journals(store, &journals).await?;
        Ok(Synced {
            sent,
            divergences: journals
                .into_iter()
                .zip(compared)
                .map(|(journal, (divergence, _))| (journal.job, divergence))
                .collect(),
        })
    }

    /// Sends each job's records PostgreSQL lacks and compares the two; returns how many were
    /// sent and, per job in order, the differences and the rows PostgreSQL now holds.
    async fn sync_journals(
        &self,
        store: &mut PostgresStore,
        journals: &[JobJournal],
    ) -> Result<(usize, Vec<(Divergence, Vec<reconcile::StoredRow>)>), HistoryError> {
        let journal = self.journal.clone();
        let journal_id = blocking(move || journal.id()).await?;
        let mut sent = 0;
        let mut compared = Vec::with_capacity(journals.len());
        for journal in journals {
            let mut rows = store.stored(&journal_id, &journal.job).await?;
            let stored: std::collections::HashSet<String> =
                rows.iter().map(|r| r.run_id.clone()).collect();
            // Records below the lowest one stored were dropped there by retention.
            let lowest = rows.iter().map(|r| r.seq).min();
            for record in journal.records.iter().filter(|s| {
                !stored.contains(&s.record.run_id) && lowest.is_none_or(|low| s.record.seq >= low)
            }) {
                if store.insert(&journal_id, record).await? {
                    sent += 1;
                }
                // Stored now, by this sync or a concurrent one.
                rows.push(reconcile::StoredRow {
                    seq: record.record.seq,
                    hash: record.hash.clone(),
                    run_id: record.record.run_id.clone(),
                });
            }
            let file = format!("{}.jsonl", journal.job);
            let divergence =
                reconcile::compare(&journal.records, journal.anchor.as_ref(), &rows, &file);
            compared.push((divergence, rows));
        }
        Ok((sent, compared))
    }

    /// Every job's journal: its records, their chain check and its anchor.
    async fn read_journals(&self) -> Result<Vec<JobJournal>, HistoryError> {
        let journal = self.journal.clone();
        blocking(move || {
            journal
                .jobs()?
                .into_iter()
                .map(|job| {
                    let (records, chain) = journal.read(&job)?;
                    let anchor = journal.anchor(&job)?;
                    Ok(JobJournal {
                        job,
                        records,
                        chain,
                        anchor,
                    })
                })
                .collect()
        })
        .await
    }

    /// Recent drills, newest first, and the chain check of every job in the journal. With
    /// PostgreSQL configured and reachable, the records waiting in the journal are sent first,
    /// the drills are read from PostgreSQL (with those of the journal it still lacks merged in),
    /// and the journal is compared with PostgreSQL record by record; otherwise everything comes
    /// from the journal. Each drill whose record does not verify says why.
    pub(crate) async fn recent(
        &self,
        job: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Recent, HistoryError> {
        let mut journals = self.read_journals().await?;
        let mut store = match &self.postgres {
            Some(url) => {
                match PostgresStore::connect(url, self.postgres_ca_file.as_deref(), CONNECT_TIMEOUT)
                    .await
                {
                    Ok(store) => Some(store),
                    Err(e) => {
                        tracing::warn!(error = %e, "history read from the journal instead");
                        None
                    }
                }
            }
            None => None,
        };
        let mut entries = Vec::new();
        let source = match store.as_mut() {
            Some(store) => {
                let compared = match self.sync_journals(store, &journals).await {
                    Ok((_, compared)) => Some(compared),
                    Err(e) => {
                        tracing::warn!(error = %e, "the journal's waiting records could not be sent; they are merged in from the journal");
                        None
                    }
                };
                for report in store.recent(job, since, limit).await? {
                    entries.push(Entry::new(report, None));
                }
                let journal = self.journal.clone();
                let journal_id = blocking(move || journal.id()).await?;
                for (i, journal) in journals.iter_mut().enumerate() {
                    let rows = match compared.as_ref().map(|c| &c[i]) {
                        Some((divergence, rows)) => {
                            journal
                                .chain
                                .problems
                                .extend(divergence.problems.iter().cloned());
                            journal
                                .chain
                                .unverified
                                .extend(divergence.runs.iter().cloned());
                            rows.clone()
                        }
                        None => store.stored(&journal_id, &journal.job).await?,
                    };
                    let stored: std::collections::HashSet<&str> =
                        rows.iter().map(|r| r.run_id.as_str()).collect();
                    // What PostgreSQL still lacks comes from the journal.
                    entries.extend(
                        journal
                            .records
                            .iter()
                            .filter(|s| !stored.contains(s.record.run_id.as_str()))
                            .map(|s| {
                                Entry::new(
                                    s.record.report.clone(),
                                    Some("not yet in PostgreSQL".into()),
                                )
                            }),
                    );
                }
                format!("PostgreSQL at {}", store.place)
            }
            None => {
                for journal in &journals {
                    entries.extend(
                        journal
                            .records
                            .iter()
                            .map(|s| Entry::new(s.record.report.clone(), None)),
                    );
                }
                format!("the journal {}", self.journal.dir().display())
            }
        };
        for entry in &mut entries {
            let Some(drill) = &entry.drill else {
                continue;
            };
            let (run, name) = (drill.run_id.as_str(), drill.job.as_str());
            if let Some(chain) = journals.iter().find(|j| j.job == name).map(|j| &j.chain)
                && chain.unverified.iter().any(|r| r == run)
            {
                entry.problem = Some(
                    chain
                        .problems
                        .iter()
                        .find(|p| p.contains(run))
                        .cloned()
                        .unwrap_or_else(|| "its record does not verify".into()),
                );
            }
        }
        entries.retain(|e| job.is_none_or(|j| e.job() == Some(j)));
        entries.retain(|e| since.is_none_or(|s| e.started_at().is_some_and(|t| t >= s)));
        entries.sort_by_key(|e| std::cmp::Reverse(e.started_at()));
        entries.truncate(limit);
        Ok(Recent {
            source,
            entries,
            chains: journals.into_iter().map(|j| j.chain).collect(),
        })
    }

    /// Each job's state from its newest records: the journal's, read from its end, or
    /// PostgreSQL's when the journal holds none (a new machine or volume); `None` for a job
    /// never drilled. PostgreSQL is connected to once; if it cannot be reached, the jobs the
    /// journal does not know stay `None` and the reason is returned with them.
    pub(crate) async fn job_states(
        &self,
        jobs: &[String],
    ) -> Result<(Vec<Option<JobState>>, Option<HistoryError>), HistoryError> {
        let mut states = Vec::with_capacity(jobs.len());
        for job in jobs {
            let journal = self.journal.clone();
            let name = job.clone();
            states.push(
                blocking(move || {
                    let mut fold = StateFold::default();
                    journal.newest_first(&name, |stored| {
                        match DrillSummary::from_record(stored.record.report.clone()) {
                            Ok(summary) => fold.add(summary),
                            Err(_) => true,
                        }
                    })?;
                    Ok(fold.finish())
                })
                .await?,
            );
        }
        let unknown: Vec<usize> = (0..jobs.len()).filter(|i| states[*i].is_none()).collect();
        let Some(url) = self.postgres.as_ref().filter(|_| !unknown.is_empty()) else {
            return Ok((states, None));
        };
        let store =
            match PostgresStore::connect(url, self.postgres_ca_file.as_deref(), CONNECT_TIMEOUT)
                .await
            {
                Ok(store) => store,
                Err(e) => return Ok((states, Some(e))),
            };
        for i in unknown {
            states[i] = stored_state(&store, &jobs[i]).await?;
        }
        Ok((states, None))
    }

    /// Drops the records older than `[history] keep` from the journal (leaving an anchor per
    /// job) and from PostgreSQL. Returns (journal records, PostgreSQL rows) dropped.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<(usize, u64), HistoryError> {
        let Some(keep) = self.keep else {
            return Ok((0, 0));
        };
        let Some(before) = chrono::Duration::from_std(keep)
            .ok()
            .and_then(|keep| now.checked_sub_signed(keep))
        else {
            return Ok((0, 0));
        };
        let journal = self.journal.clone();
        let dropped = blocking(move || -> Result<usize, HistoryError> {
            let mut dropped = 0;
            for job in journal.jobs()? {
                dropped += journal.compact(&job, before, now)?;
            }
            Ok(dropped)
        })
        .await?;
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
}
