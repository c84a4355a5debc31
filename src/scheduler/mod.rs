//! `serve`'s scheduler: runs each job on its schedule, never two drills of one job at once, at
//! most `max_concurrent_drills` drills in all, each cancelled after its `timeout`; stops
//! starting drills on shutdown and cancels those that outlive the grace period.
//!
//! Every job with a schedule has one timer task that sleeps until the next occurrence (computed
//! in the job's time zone each time, so daylight-saving changes are followed) plus an optional
//! random jitter, then asks for a drill. Time is read from the injected [`Clock`] and waited for
//! with tokio's timers, so tests run days of schedules in paused time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) mod claims;
mod replicated;
mod status;
mod timer;

pub use status::{JobStatus, LastDrill, Objectives, RunningDrill};

use crate::clock::Clock;
use crate::config::{Config, Job};
use crate::drill::{self, DrillOptions, DrillReport, NoProgress, Outcome};
use crate::history::History;
use crate::metrics::DrillMetrics;
use crate::primitives::duration::format_duration;
use crate::primitives::run_id::RunId;
use crate::storage::SandboxRoot;
use claims::Claims;

/// Carries out drills for the scheduler.
pub trait DrillRunner: Send + Sync + 'static {
    /// Runs one drill of `job` under `run_id` to its end. Dropping the future cancels it.
    fn run(&self, job: Arc<Job>, run_id: String) -> BoxFuture<'static, DrillReport>;
    /// Removes what a cancelled drill left in its sandbox.
    fn discard(&self, job: Arc<Job>, run_id: String) -> BoxFuture<'static, ()>;
}

/// The real drills: restore, verify, measure, clean up.
pub struct Drills {
    clock: Arc<dyn Clock>,
}

impl Drills {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}

impl DrillRunner for Drills {
    fn run(&self, job: Arc<Job>, run_id: String) -> BoxFuture<'static, DrillReport> {
        let clock = self.clock.clone();
        Box::pin(async move {
            // Failed drills' sandboxes expire while the service runs, too.
            drill::sweep_sandboxes(std::slice::from_ref(job.as_ref()), clock.now()).await;
            let options = DrillOptions {
                run_id: Some(run_id),
                ..Default::default()
            };
            drill::runtime::isolated(async move {
                drill::run_drill(&job, &options, clock.as_ref(), &NoProgress).await
            })
            .await
        })
    }

    fn discard(&self, job: Arc<Job>, run_id: String) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Err(e) = SandboxRoot::new(&job.sandbox)
                .discard_run(&job.name, &run_id)
                .await
            {
                tracing::error!(job = %job.name, run_id = %run_id, error = %e, "could not remove the sandbox of a cancelled drill");
            }
        })
    }
}

/// Why a drill was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The job's schedule came due.
    Schedule,
    /// Someone asked for it (`POST /jobs/{name}/run`).
    Request,
    /// The job's `selftest_schedule` came due: a self-test, not a drill.
    Selftest,
}

impl Trigger {
    /// The trigger `as_str` names; an unknown name is a schedule's.
    pub(crate) fn from_kind(kind: &str) -> Self {
        match kind {
            "request" => Trigger::Request,
            "selftest" => Trigger::Selftest,
            _ => Trigger::Schedule,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Request => "request",
            Trigger::Selftest => "selftest",
        }
    }
}

/// Why a drill was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("no job named `{0}`")]
    UnknownJob(String),
    #[error(
        "job `{job}` is already being drilled (run {run_id}); a job never has two drills at once"
    )]
    AlreadyRunning { job: String, run_id: String },
    #[error("the service is shutting down and starts no more drills")]
    ShuttingDown,
    #[error("no drill starts without a claim, and none could be taken: {0}")]
    Coordination(String),
}

/// Runs jobs on their schedules. Cheap to clone; clones share one scheduler.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    runner: Arc<dyn DrillRunner>,
    metrics: Arc<DrillMetrics>,
    history: Option<Arc<History>>,
    /// Claims through PostgreSQL, when several replicas share the drills.
    claims: Option<Arc<Claims>>,
    /// Whether the last exchange with the claims' database succeeded (for the log's "lost" and
    /// "back" lines).
    coordinated: std::sync::atomic::AtomicBool,
    /// Occurrences this replica gave up claiming while PostgreSQL was unreachable.
    unclaimed: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
    /// Cancelled at shutdown: no drill starts after it.
    stopping: CancellationToken,
    /// Cancelled when running drills must end now.
    cancel: CancellationToken,
    drills: TaskTracker,
}

struct State {
    jobs: BTreeMap<String, Entry>,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    /// The timers of the current configuration; a reload cancels them and starts new ones.
    timers: CancellationToken,
    running: usize,
    /// The configuration file, by its full path, as runbooks name it.
    config_file: std::path::PathBuf,
    /// This replica's claims on drills not yet ended: run id → cancelled when the claim is
    /// lost (its lease could not be renewed), with when it was taken.
    claimed: std::collections::HashMap<String, (CancellationToken, std::time::Instant)>,
}

struct Entry {
    job: Arc<Job>,
    status: JobStatus,
    /// False once a reload removed the job; the entry goes when its last drill ends.
    configured: bool,
}

impl Scheduler {
    /// Starts scheduling the jobs of `config`; each drill is recorded in `history` before it
    /// counts as finished. Must be called within a tokio runtime.
    pub fn start(
        config: &Config,
        runner: Arc<dyn DrillRunner>,
        metrics: Arc<DrillMetrics>,
        history: Option<Arc<History>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let max = config.server.max_concurrent_drills;
        let claims = match (&config.server.replicas, &config.history.postgres) {
            (crate::config::Replicas::Postgres, Some(url)) => Some(Arc::new(Claims::new(
                url,
                config.history.postgres_ca_file.clone(),
                config.server.claim_lease,
            ))),
            _ => None,
        };
        let scheduler = Self {
            inner: Arc::new(Inner {
                clock,
                runner,
                metrics,
                history,
                claims,
                coordinated: std::sync::atomic::AtomicBool::new(true),
                unclaimed: std::sync::atomic::AtomicU64::new(0),
                state: Mutex::new(State {
                    jobs: BTreeMap::new(),
                    permits: Arc::new(Semaphore::new(max)),
                    max_concurrent: max,
                    timers: CancellationToken::new(),
                    running: 0,
                    config_file: config.file.clone(),
                    claimed: Default::default(),
                }),
                stopping: CancellationToken::new(),
                cancel: CancellationToken::new(),
                drills: TaskTracker::new(),
            }),
        };
        scheduler.reload(config);
        scheduler
    }

    /// Replaces the jobs with those of `config`. Drills already running go on; a job that is
    /// still configured keeps its history and its guard against overlapping drills.
    pub fn reload(&self, config: &Config) {
        let inner = &self.inner;
        let mut state = inner.lock();
        state.timers.cancel();
        state.timers = CancellationToken::new();
        state.config_file =
            std::fs::canonicalize(&config.file).unwrap_or_else(|_| config.file.clone());
        let max = config.server.max_concurrent_drills;
        if max != state.max_concurrent {
            // Drills already waiting keep their place in the old queue.
            state.permits = Arc::new(Semaphore::new(max));
            state.max_concurrent = max;
        }
        let mut old = std::mem::take(&mut state.jobs);
        for job in &config.jobs {
            let job = Arc::new(job.clone());
            let mut status = status::status_of(&job);
            if let Some(previous) = old.remove(&job.name) {
                status.running = previous.status.running;
                status.last = previous.status.last;
                status.last_success = previous.status.last_success;
                status.runs = previous.status.runs;
                status.skipped_runs = previous.status.skipped_runs;
            }
            inner.metrics.register_job(&job);
            state.jobs.insert(
                job.name.clone(),
                Entry {
                    job,
                    status,
                    configured: true,
                },
            );
        }
        for (name, mut entry) in old {
            if entry.status.running.is_some() {
                // Its series go when its last drill ends.
                entry.configured = false;
                state.jobs.insert(name, entry);
            } else {
                inner.metrics.forget_job(&name);
            }
        }
        if inner.stopping.is_cancelled() {
            return;
        }
        for entry in state.jobs.values().filter(|e| e.configured) {
            let job = &entry.job;
            for (schedule, trigger) in [
                (&job.schedule, Trigger::Schedule),
                (&job.selftest_schedule, Trigger::Selftest),
            ] {
                if let Some(schedule) = schedule.clone() {
                    tokio::spawn(timer::timer(
                        inner.clone(),
                        job.clone(),
                        schedule,
                        trigger,
                        state.timers.clone(),
                    ));
                }
            }
        }
    }

    /// Takes each configured job's state from its recorded history — the metrics' gauges and
    /// `/jobs`' last drill and last success — so a restarted service reports what the evidence
    /// says rather than nothing. Problems are logged; the job then starts empty.
    pub(crate) async fn restore_state(&self) {
        let Some(history) = self.inner.history.clone() else {
            return;
        };
        let names: Vec<String> = self.jobs().into_iter().map(|j| j.name).collect();
        let states = match history.job_states(&names).await {
            Ok((states, unreachable)) => {
                if let Some(e) = unreachable {
                    tracing::warn!(error = %e, "jobs the journal does not know start with empty metrics: PostgreSQL could not be read");
                }
                states
            }
            Err(e) => {
                tracing::warn!(error = %e, "the jobs' last drills could not be read from history; their metrics start empty");
                return;
            }
        };
        for (name, state) in names.iter().zip(states) {
            let Some(state) = state else { continue };
            self.inner
                .metrics
                .restore(&state.last, state.last_success, state.consecutive_errors);
            let mut locked = self.inner.lock();
            if let Some(entry) = locked.jobs.get_mut(name)
                && entry.status.last.is_none()
            {
                entry.status.last = Some(LastDrill::from(&state.last));
                entry.status.last_success = state.last_success;
            }
        }
    }

    /// Starts a drill of `name` now, unless one is running. Returns its run id. Where replicas
    /// share the drills, the drill is claimed first: it is refused while any replica drills
    /// the job, and when PostgreSQL cannot be reached.
    pub async fn run_now(&self, name: &str) -> Result<String, StartError> {
        if self.inner.claims.is_some() {
            return self.inner.clone().request(name).await;
        }
        self.inner.start(name, Trigger::Request, None)
    }

    /// This replica's name, where replicas share the drills.
    pub(crate) fn replica(&self) -> Option<String> {
        self.inner.claims.as_ref().map(|c| c.replica.clone())
    }

    /// Until `stop`, where replicas share the drills: renews this replica's claims, settles
    /// those other replicas left, and keeps every job's state equal to the shared history.
    pub async fn coordinate(&self, stop: CancellationToken) {
        if self.inner.claims.is_some() {
            self.inner.clone().coordinate(stop).await;
        }
    }

    /// Every configured job's status, by name.
    /// The runbook of the configured job `name`, from its recorded drills; `None`: no such
    /// job. Drills that cannot be read leave the runbook without them (logged).
    pub(crate) async fn runbook(&self, name: &str) -> Option<crate::runbook::Runbook> {
        let (job, file) = {
            let state = self.inner.lock();
            let entry = state.jobs.get(name).filter(|e| e.configured)?;
            (entry.job.clone(), state.config_file.clone())
        };
        let drills = match &self.inner.history {
            Some(history) => match history.recent(Some(name), None, usize::MAX).await {
                Ok(recent) => recent.drills(),
                Err(e) => {
                    tracing::warn!(job = name, error = %e, "the runbook is written without the job's drills");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        Some(crate::runbook::build(
            &file,
            &job,
            &drills,
            self.inner.clock.now(),
        ))
    }

    pub fn jobs(&self) -> Vec<JobStatus> {
        let state = self.inner.lock();
        state
            .jobs
            .values()
            .filter(|e| e.configured)
            .map(|e| e.status.clone())
            .collect()
    }

    /// Whether the scheduler is starting drills (it stops at shutdown).
    pub(crate) fn is_running(&self) -> bool {
        !self.inner.stopping.is_cancelled()
    }

    /// How many drills are running or waiting for a slot.
    pub(crate) fn active_drills(&self) -> usize {
        self.inner.drills.len()
    }

    /// Stops starting drills: timers end, requests are refused, queued drills are dropped.
    pub(crate) fn stop_starting(&self) {
        self.inner.stopping.cancel();
        self.inner.lock().timers.cancel();
        self.inner.drills.close();
    }

    /// Cancels every running drill now; each is recorded as aborted and its sandbox removed.
    pub(crate) fn cancel_running(&self) {
        self.inner.cancel.cancel();
    }

    /// Stops starting drills, lets running ones finish within `grace`, then cancels the rest
    /// and waits until their sandboxes are removed.
    pub async fn shut_down(&self, grace: Duration) {
        self.stop_starting();
        let finished = tokio::time::timeout(grace, self.inner.drills.wait()).await;
        if finished.is_err() {
            tracing::warn!(
                drills = self.inner.drills.len(),
                grace = %format_duration(grace),
                "drills still running after the grace period are cancelled"
            );
            self.cancel_running();
            self.inner.drills.wait().await;
        }
    }

    /// Waits until every drill has ended (after `stop_starting`, or in tests).
    pub(crate) async fn wait_idle(&self) {
        self.inner.drills.wait().await;
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(
        self: &Arc<Self>,
        name: &str,
        trigger: Trigger,
        due: Option<DateTime<Utc>>,
    ) -> Result<String, StartError> {
        let now = self.clock.now();
        let mut state = self.lock();
        if self.stopping.is_cancelled() {
            return Err(StartError::ShuttingDown);
        }
        let permits = state.permits.clone();
        let entry = state
            .jobs
            .get_mut(name)
            .filter(|e| e.configured)
            .ok_or_else(|| StartError::UnknownJob(name.to_string()))?;
        if let Some(running) = &entry.status.running {
            let running = running.run_id.clone();
            drop(state);
            if trigger == Trigger::Schedule {
                self.skipped(
                    name,
                    due,
                    &format!("the previous drill of this job ({running}) was still running"),
                );
            }
            return Err(StartError::AlreadyRunning {
                job: name.to_string(),
                run_id: running,
            });
        }
        let run_id = RunId::new(now).into_string();
        entry.status.running = Some(RunningDrill {
            run_id: run_id.clone(),
            trigger,
            queued_at: now,
            started_at: None,
            replica: None,
        });
        let job = entry.job.clone();
        drop(state);
        if trigger == Trigger::Selftest {
            self.drills
                .spawn(self.clone().selftest(job, run_id.clone(), permits));
        } else {
            self.drills.spawn(
                self.clone()
                    .drill(job, run_id.clone(), trigger, due, permits, None),
            );
        }
        Ok(run_id)
    }

    /// A self-test of `job` in a drill slot: its drills run on the drill runtime, it is
    /// recorded in the journal and shown in the self-test metrics; the job's last drill stays
    /// as it was. Cancelled on shutdown like a drill (its folders are swept later).
    async fn selftest(self: Arc<Self>, job: Arc<Job>, run_id: String, permits: Arc<Semaphore>) {
        let permit = tokio::select! {
            permit = permits.acquire_owned() => permit.ok(),
            _ = self.stopping.cancelled() => None,
        };
        if let Some(permit) = permit.filter(|_| !self.stopping.is_cancelled()) {
            tracing::info!(job = %job.name, run_id = %run_id, "self-test started");
            // Each of its drills may take the job's timeout.
            let limit = job.timeout * (crate::selftest::Damage::ALL.len() as u32 + 2);
            let clock = self.clock.clone();
            let work = drill::runtime::isolated({
                let job = job.clone();
                async move { crate::selftest::run(&job, rand::random(), clock.as_ref()).await }
            });
            let ended = tokio::select! {
                ended = tokio::time::timeout(limit, work) => ended.ok(),
                _ = self.cancel.cancelled() => None,
            };
            drop(permit);
            match ended {
                Some(report) => {
                    tracing::info!(
                        job = %job.name,
                        run_id = %report.run_id,
                        caught = report.caught,
                        applicable = report.applicable,
                        status = ?report.status,
                        "self-test finished"
                    );
                    report.show(&self.metrics);
                    let value = serde_json::to_value(&report).unwrap_or_default();
                    if let Some(history) = &self.history
                        && let Err(e) = history
                            .record_report(&job, &report.run_id, value, self.clock.as_ref())
                            .await
                    {
                        tracing::error!(job = %job.name, error = %e, "the self-test could not be recorded in the journal");
                    }
                }
                None => {
                    tracing::warn!(job = %job.name, run_id = %run_id, "self-test cancelled before it ended; nothing recorded")
                }
            }
        }
        let mut state = self.lock();
        if let Some(entry) = state.jobs.get_mut(&job.name) {
            entry.status.running = None;
        }
    }

    /// Runs a drill of `job` when a drill slot is free. `claim`, where replicas share the
    /// drills: cancelled when this replica's claim on it is lost; the drill then ends unrecorded
    /// (the replica that settles the claim records it).
    async fn drill(
        self: Arc<Self>,
        job: Arc<Job>,
        run_id: String,
        trigger: Trigger,
        due: Option<DateTime<Utc>>,
        permits: Arc<Semaphore>,
        claim: Option<CancellationToken>,
    ) {
        let queued_at = self.clock.now();
        let lost = claim.clone().unwrap_or_default();
        let permit = tokio::select! {
            permit = permits.acquire_owned() => permit.ok(),
            _ = self.stopping.cancelled() => None,
            _ = lost.cancelled() => None,
        };
        if claim.is_some() {
            let permit = permit.filter(|_| !self.stopping.is_cancelled());
            if permit.is_none() || !self.confirm_start(&run_id, &lost).await {
                self.claim_given_up(&job, &run_id, lost.is_cancelled())
                    .await;
                return;
            }
            return self
                .run_drill(job, run_id, trigger, due, queued_at, permit, claim)
                .await;
        }
        let Some(permit) = permit.filter(|_| !self.stopping.is_cancelled()) else {
            let now = self.clock.now();
            let report = DrillReport::interrupted(
                &job,
                run_id,
                now,
                now,
                Outcome::Aborted,
                "the service shut down before the drill's turn came; it never started".into(),
            );
            self.record(&job, &report).await;
            self.finished(report, false);
            return;
        };
        self.run_drill(job, run_id, trigger, due, queued_at, Some(permit), None)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_drill(
        self: Arc<Self>,
        job: Arc<Job>,
        run_id: String,
        trigger: Trigger,
        due: Option<DateTime<Utc>>,
        queued_at: DateTime<Utc>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        claim: Option<CancellationToken>,
    ) {
        let lost = claim.clone().unwrap_or_default();
        let started_at = self.clock.now();
        let running = {
            let mut state = self.lock();
            if let Some(r) = state
                .jobs
                .get_mut(&job.name)
                .and_then(|e| e.status.running.as_mut())
            {
                r.started_at = Some(started_at);
            }
            state.running += 1;
            state.running
        };
        self.metrics.set_running(running);
        let seconds = |from: DateTime<Utc>| (started_at - from).num_milliseconds() as f64 / 1000.0;
        tracing::info!(
            job = %job.name,
            run_id = %run_id,
            trigger = trigger.as_str(),
            due = due.map(|d| d.to_rfc3339()),
            delay_seconds = due.map(seconds),
            waited_seconds = seconds(queued_at),
            "drill started"
        );

        // A drill that panics ends like one that erred: recorded, its sandbox removed, its job
        // free for the next occurrence.
        let run = std::panic::AssertUnwindSafe(self.runner.run(job.clone(), run_id.clone()))
            .catch_unwind();
        let ended = tokio::select! {
            ended = tokio::time::timeout(job.timeout, run) => Some(ended),
            _ = self.cancel.cancelled() => None,
            _ = lost.cancelled() => {
                self.runner.discard(job.clone(), run_id.clone()).await;
                drop(permit);
                self.claim_given_up(&job, &run_id, true).await;
                self.running_ended();
                return;
            }
        };
        let report = match ended {
            Some(Ok(Ok(report))) => report,
            cancelled => {
                let (outcome, reason) = match cancelled {
                    Some(Ok(Err(panic))) => (
                        Outcome::Error,
                        format!(
                            "the drill stopped on an internal error ({}); its sandbox was removed — please report this with the log",
                            drill::panic_message(panic.as_ref())
                        ),
                    ),
                    Some(Err(_)) => (Outcome::Error, drill::timeout_reason(&job)),
                    _ => (
                        Outcome::Aborted,
                        "the service shut down before the drill finished; it was cancelled and its sandbox removed".to_string(),
                    ),
                };
                self.runner.discard(job.clone(), run_id.clone()).await;
                DrillReport::interrupted(
                    &job,
                    run_id,
                    started_at,
                    self.clock.now(),
                    outcome,
                    reason,
                )
            }
        };
        drop(permit);
        if claim.is_some() && !self.end_claim(&report, &lost).await {
            self.running_ended();
            return;
        }
        self.record(&job, &report).await;
        self.finished(report, true);
    }

    /// One drill fewer running (it ended without a record of this replica's).
    fn running_ended(&self) {
        let running = {
            let mut state = self.lock();
            state.running -= 1;
            state.running
        };
        self.metrics.set_running(running);
    }

    /// A scheduled drill of `name` due at `due` is not run (`why`): counted and logged.
    fn skipped(&self, name: &str, due: Option<DateTime<Utc>>, why: &str) {
        if let Some(entry) = self.lock().jobs.get_mut(name) {
            entry.status.skipped_runs += 1;
        }
        self.metrics.skipped(name);
        tracing::warn!(
            job = name,
            due = due.map(|d| d.to_rfc3339()),
            why,
            "scheduled drill skipped"
        );
    }

    async fn record(&self, job: &Job, report: &DrillReport) {
        if let Some(history) = &self.history
            && let Err(e) = history.record(job, report, self.clock.as_ref()).await
        {
            tracing::error!(job = %job.name, run_id = %report.run_id, error = %e, "the drill could not be recorded in the journal");
        }
    }

    fn finished(&self, report: DrillReport, was_running: bool) {
        self.metrics.observe(&report);
        drill::log_finished(&report);
        let running = {
            let mut state = self.lock();
            if was_running {
                state.running -= 1;
            }
            let remove = match state.jobs.get_mut(&report.job) {
                Some(entry) => {
                    let status = &mut entry.status;
                    status.running = None;
                    status.runs += 1;
                    if report.outcome == Outcome::Passed {
                        status.last_success = Some(report.finished_at);
                    }
                    status.last = Some(LastDrill {
                        replica: self.claims.as_ref().map(|c| c.replica.clone()),
                        run_id: report.run_id.clone(),
                        outcome: report.outcome,
                        started_at: report.started_at,
                        finished_at: report.finished_at,
                        findings: report.findings.len(),
                        error: report.error.clone(),
                        rpo_seconds: report.rpo_seconds,
                        rto_seconds: report.rto_seconds,
                    });
                    !entry.configured
                }
                None => false,
            };
            if remove {
                state.jobs.remove(&report.job);
                self.metrics.forget_job(&report.job);
            }
            state.running
        };
        self.metrics.set_running(running);
    }

    fn set_next_run(&self, name: &str, next: Option<DateTime<Utc>>) {
        if let Some(entry) = self.lock().jobs.get_mut(name) {
            entry.status.next_run = next;
        }
    }
}
