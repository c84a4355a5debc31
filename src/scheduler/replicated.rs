//! The scheduler where replicas share the drills ([`claims`](super::claims)): each occurrence
//! and request is claimed before it is drilled, a claim is ended before its drill is recorded
//! (so a drill is recorded once, by its claimer or by the replica that settles a lost claim),
//! leases are renewed while drills wait and run, and every job's state — the gauges and
//! `/jobs` — follows the shared history, whichever replica drilled it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::claims::{Claimed, Claims, Occurrence, Settled};
use super::{Inner, LastDrill, RunningDrill, StartError, Trigger};
use crate::config::Job;
use crate::drill::{self, DrillReport, Outcome};
use crate::history::{self, HistoryError};
use crate::primitives::run_id::RunId;

/// How often a claim that PostgreSQL did not answer is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// How far back each look at the shared history reaches beyond the previous one: a record's
/// `stored_at` is its transaction's start, which may precede the previous look's time.
const OVERLAP: chrono::Duration = chrono::Duration::seconds(60);

/// Ended claims are kept this long: `/jobs` shows who ran a drill from them.
const CLAIMS_KEPT_DAYS: i32 = 35;

/// A busy replica waits this long per drill it holds before claiming, so idle ones take more.
const BACKOFF_PER_DRILL: Duration = Duration::from_millis(20);

impl Inner {
    fn claims(&self) -> &Arc<Claims> {
        self.claims
            .as_ref()
            .expect("only replicas that claim drills get here")
    }

    fn coordination_ok(&self) {
        self.metrics.set_coordination_up(true);
        if !self.coordinated.swap(true, Ordering::SeqCst) {
            tracing::info!(
                replica = %self.claims().replica,
                occurrences_not_drilled = self.unclaimed.swap(0, Ordering::SeqCst),
                "PostgreSQL is reachable again: this replica claims drills again"
            );
        }
    }

    fn coordination_failed(&self, e: &HistoryError) {
        self.metrics.set_coordination_up(false);
        self.claims().forget_closed();
        if self.coordinated.swap(false, Ordering::SeqCst) {
            tracing::error!(
                replica = %self.claims().replica,
                error = %e,
                "PostgreSQL cannot be reached: this replica starts no drill until it can claim one"
            );
        }
    }

    /// A run-now request: claimed for this replica, then drilled.
    pub(super) async fn request(self: Arc<Self>, name: &str) -> Result<String, StartError> {
        if self.stopping.is_cancelled() {
            return Err(StartError::ShuttingDown);
        }
        let job = {
            let state = self.lock();
            state
                .jobs
                .get(name)
                .filter(|e| e.configured)
                .map(|e| e.job.clone())
                .ok_or_else(|| StartError::UnknownJob(name.to_string()))?
        };
        let now = self.clock.now();
        let run_id = RunId::new(now).into_string();
        let occurrence = Occurrence::requested(name, &run_id, now);
        match self.claims().claim(&occurrence, &run_id).await {
            Ok(Claimed::Won) => {
                self.coordination_ok();
                self.drills.spawn(self.clone().drill_claimed(
                    job,
                    run_id.clone(),
                    Trigger::Request,
                    None,
                ));
                Ok(run_id)
            }
            Ok(Claimed::Busy { replica, run_id } | Claimed::Skipped { replica, run_id }) => {
                self.coordination_ok();
                Err(StartError::AlreadyRunning {
                    job: name.to_string(),
                    run_id: format!("{run_id} on {replica}"),
                })
            }
            Ok(Claimed::Taken { replica }) => Err(StartError::AlreadyRunning {
                job: name.to_string(),
                run_id: format!("a drill on {replica}"),
            }),
            Err(e) => {
                self.coordination_failed(&e);
                Err(StartError::Coordination(e.to_string()))
            }
        }
    }

    /// An occurrence of `job`'s schedule came due: claims it (tried again while PostgreSQL
    /// does not answer, until too late to start it), then drills it if this replica won.
    pub(super) fn claim_occurrence(
        self: &Arc<Self>,
        job: Arc<Job>,
        trigger: Trigger,
        due: DateTime<Utc>,
    ) {
        self.drills
            .spawn(self.clone().claim_and_drill(job, trigger, due));
    }

    async fn claim_and_drill(self: Arc<Self>, job: Arc<Job>, trigger: Trigger, due: DateTime<Utc>) {
        let held = self.lock().claimed.len() as u32;
        if held > 0 {
            tokio::select! {
                _ = tokio::time::sleep(BACKOFF_PER_DRILL * held.min(50)) => {}
                _ = self.stopping.cancelled() => return,
            }
        }
        let claims = self.claims().clone();
        let occurrence = Occurrence::scheduled(&job.name, trigger, due, job.jitter);
        // Claims are tried again while PostgreSQL does not answer, but not past the next
        // occurrence: an outage is not made up for in a burst of late drills.
        let schedule = match trigger {
            Trigger::Selftest => job.selftest_schedule.as_ref(),
            _ => job.schedule.as_ref(),
        };
        let give_up_at = schedule
            .and_then(|s| s.next_after(due))
            .map_or(occurrence.run_by, |next| next.min(occurrence.run_by));
        let run_id = RunId::new(self.clock.now()).into_string();
        let claimed = loop {
            if self.stopping.is_cancelled() {
                return;
            }
            match claims.claim(&occurrence, &run_id).await {
                Ok(claimed) => {
                    self.coordination_ok();
                    break claimed;
                }
                Err(e) => {
                    self.coordination_failed(&e);
                    if self.clock.now() >= give_up_at {
                        tracing::debug!(
                            job = %job.name,
                            due = %due.to_rfc3339(),
                            trigger = trigger.as_str(),
                            "this occurrence is not drilled: it could not be claimed while PostgreSQL was unreachable"
                        );
                        self.unclaimed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = self.stopping.cancelled() => return,
                    }
                }
            }
        };
        match claimed {
            Claimed::Won => {
                self.drill_claimed(job, run_id, trigger, Some(due)).await;
            }
            Claimed::Skipped { replica, run_id } if trigger == Trigger::Schedule => {
                self.skipped(
                    &job.name,
                    Some(due),
                    &format!(
                        "the previous drill of this job ({run_id}, on {replica}) was still running"
                    ),
                );
            }
            Claimed::Skipped { .. } | Claimed::Busy { .. } => {}
            Claimed::Taken { replica } => {
                tracing::debug!(job = %job.name, due = %due.to_rfc3339(), replica = %replica, "claimed by another replica");
            }
        }
    }

    /// Drills (or self-tests) `job` under this replica's claim `run_id`.
    async fn drill_claimed(
        self: Arc<Self>,
        job: Arc<Job>,
        run_id: String,
        trigger: Trigger,
        due: Option<DateTime<Utc>>,
    ) {
        let lost = CancellationToken::new();
        let permits = {
            let now = self.clock.now();
            let mut state = self.lock();
            state
                .claimed
                .insert(run_id.clone(), (lost.clone(), Instant::now()));
            if let Some(entry) = state.jobs.get_mut(&job.name) {
                entry.status.running = Some(RunningDrill {
                    run_id: run_id.clone(),
                    trigger,
                    queued_at: now,
                    started_at: None,
                    replica: Some(self.claims().replica.clone()),
                });
            }
            state.permits.clone()
        };
        if trigger == Trigger::Selftest {
            if self.confirm_start(&run_id, &lost).await {
                self.clone().selftest(job, run_id.clone(), permits).await;
                let _ = self.claims().end(&run_id).await;
            } else {
                self.claim_given_up(&job, &run_id, lost.is_cancelled())
                    .await;
            }
        } else {
            self.clone()
                .drill(job, run_id.clone(), trigger, due, permits, Some(lost))
                .await;
        }
        self.lock().claimed.remove(&run_id);
    }

    /// Marks the claim as started, trying again while PostgreSQL does not answer; false when
    /// the claim is lost (or the service stops) first: the drill must not start.
    pub(super) async fn confirm_start(&self, run_id: &str, lost: &CancellationToken) -> bool {
        loop {
            if lost.is_cancelled() || self.stopping.is_cancelled() {
                return false;
            }
            match self.claims().started(run_id).await {
                Ok(started) => {
                    self.coordination_ok();
                    return started;
                }
                Err(e) => self.coordination_failed(&e),
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = lost.cancelled() => return false,
            }
        }
    }

    /// A claimed drill that does not run to its end here: the claim was lost (the replica
    /// that settles it records the drill), or the service stops before its turn (the claim
    /// is given back, so another replica may still run it in time).
    pub(super) async fn claim_given_up(&self, job: &Job, run_id: &str, lost: bool) {
        if lost {
            tracing::error!(
                job = %job.name,
                run_id,
                "this replica lost its claim on the drill (its lease could not be renewed): the drill was given up and its sandbox removed; the replica that settles the claim records it"
            );
        } else {
            if let Err(e) = self.claims().give_back(run_id).await {
                tracing::warn!(job = %job.name, run_id, error = %e, "the claim of a drill that never started could not be given back; it is settled when its lease runs out");
            }
            tracing::info!(job = %job.name, run_id, "the service stops before the drill's turn: its claim is given back");
        }
        self.clear_running(&job.name, run_id);
    }

    /// `/jobs` no longer shows `run_id` as the job's running drill.
    fn clear_running(&self, job: &str, run_id: &str) {
        if let Some(entry) = self.lock().jobs.get_mut(job)
            && entry
                .status
                .running
                .as_ref()
                .is_some_and(|r| r.run_id == run_id)
        {
            entry.status.running = None;
        }
    }

    /// Ends the claim of a finished drill before it is recorded; false when the claim was
    /// lost (the drill is then recorded by the replica that settled it, as aborted).
    pub(super) async fn end_claim(&self, report: &DrillReport, lost: &CancellationToken) -> bool {
        loop {
            match self.claims().end(&report.run_id).await {
                Ok(true) => {
                    self.coordination_ok();
                    return true;
                }
                Ok(false) => break,
                Err(e) => self.coordination_failed(&e),
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = lost.cancelled() => break,
            }
        }
        tracing::error!(
            job = %report.job,
            run_id = %report.run_id,
            outcome = report.outcome.as_str(),
            "the drill ended after this replica lost its claim on it: its result is not recorded here; the replica that settled the claim recorded it as aborted"
        );
        self.clear_running(&report.job, &report.run_id);
        false
    }

    /// Until `stop`: every quarter of the lease, renews this replica's claims (giving its drills
    /// up when that has failed for three quarters of the lease), settles the claims whose lease
    /// ran out, and reads what other replicas recorded.
    pub(super) async fn coordinate(self: Arc<Self>, stop: CancellationToken) {
        let claims = self.claims().clone();
        let tick = claims.lease / 4;
        let give_up_after = claims.lease * 3 / 4;
        let mut renewed = Instant::now();
        let mut seen_until: Option<DateTime<Utc>> = None;
        let mut pruned: Option<Instant> = None;
        loop {
            let asked = Instant::now();
            match claims.renew().await {
                Ok(ours) => {
                    self.coordination_ok();
                    renewed = asked;
                    self.give_up(|run_id, taken| {
                        taken < asked && !ours.iter().any(|o| o == run_id)
                    });
                }
                Err(e) => {
                    self.coordination_failed(&e);
                    if renewed.elapsed() > give_up_after {
                        self.give_up(|_, _| true);
                    }
                }
            }
            if self.coordinated.load(Ordering::SeqCst) {
                if let Err(e) = self.settle_expired().await {
                    self.coordination_failed(&e);
                }
                match self.follow_shared_history(seen_until).await {
                    Ok(until) => seen_until = Some(until),
                    Err(e) => self.coordination_failed(&e),
                }
                if pruned.is_none_or(|p| p.elapsed() > Duration::from_secs(3600)) {
                    match claims.prune(CLAIMS_KEPT_DAYS).await {
                        Ok(_) => pruned = Some(Instant::now()),
                        Err(e) => self.coordination_failed(&e),
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Cancels this replica's claimed drills that `lost` says are no longer its own.
    fn give_up(&self, lost: impl Fn(&str, Instant) -> bool) {
        let state = self.lock();
        for (run_id, (token, taken)) in &state.claimed {
            if !token.is_cancelled() && lost(run_id, *taken) {
                token.cancel();
            }
        }
    }

    /// Settles the claims other replicas left when their lease ran out.
    async fn settle_expired(self: &Arc<Self>) -> Result<(), HistoryError> {
        let jobs: HashMap<String, Arc<Job>> = {
            let state = self.lock();
            state
                .jobs
                .iter()
                .filter(|(_, e)| e.configured)
                .map(|(name, e)| (name.clone(), e.job.clone()))
                .collect()
        };
        let now = self.clock.now();
        let settled = self
            .claims()
            .settle_expired(
                |job| jobs.contains_key(job),
                || RunId::new(now).into_string(),
            )
            .await?;
        for settled in settled {
            match settled {
                Settled::Abandoned {
                    job,
                    run_id,
                    trigger,
                    started_at,
                    reason,
                } => {
                    let job = &jobs[&job];
                    tracing::warn!(job = %job.name, run_id = %run_id, reason = %reason, "a drill abandoned by another replica is recorded as aborted");
                    drill::sweep_sandboxes(std::slice::from_ref(job.as_ref()), now).await;
                    if trigger == Trigger::Selftest {
                        continue;
                    }
                    let report = DrillReport::interrupted(
                        job,
                        run_id,
                        started_at,
                        self.clock.now(),
                        Outcome::Aborted,
                        reason,
                    );
                    self.record(job, &report).await;
                    self.finished(report, false);
                }
                Settled::TakenOver {
                    job,
                    trigger,
                    run_id,
                    due,
                    replica,
                } => {
                    let job = jobs[&job].clone();
                    tracing::warn!(job = %job.name, run_id = %run_id, replica = %replica, "a drill claimed by another replica that stopped before starting it is run here");
                    self.drills
                        .spawn(self.clone().drill_claimed(job, run_id, trigger, Some(due)));
                }
                Settled::Skipped {
                    job,
                    trigger,
                    replica,
                } => {
                    if trigger == Trigger::Schedule {
                        self.skipped(&job, None, &format!("replica {replica} claimed it and stopped before starting it, and it was too late to start it elsewhere"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings each job's state up to what the shared history holds: drills running on any
    /// replica, and the newest drills, self-tests and restores recorded since `since` (all, the
    /// first time). Returns the database's time of this look.
    async fn follow_shared_history(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, HistoryError> {
        let claims = self.claims();
        let active = claims.active().await?;
        {
            let mut state = self.lock();
            let ours = &state.claimed;
            let remote: HashMap<&str, &super::claims::ActiveClaim> = active
                .iter()
                .filter(|a| !ours.contains_key(&a.run_id))
                .map(|a| (a.job.as_str(), a))
                .collect();
            let owned: std::collections::HashSet<String> = ours.keys().cloned().collect();
            for (name, entry) in state.jobs.iter_mut() {
                let running_here = entry
                    .status
                    .running
                    .as_ref()
                    .is_some_and(|r| owned.contains(&r.run_id));
                if running_here {
                    continue;
                }
                entry.status.running = remote.get(name.as_str()).map(|a| RunningDrill {
                    run_id: a.run_id.clone(),
                    trigger: a.trigger,
                    queued_at: a.claimed_at,
                    started_at: a.started_at,
                    replica: Some(a.replica.clone()),
                });
            }
        }
        let store = claims.history_store().await?;
        let (changed, now) = store.jobs_stored_since(since.map(|s| s - OVERLAP)).await?;
        let changed: Vec<(String, String)> = {
            let state = self.lock();
            changed
                .into_iter()
                .filter(|(job, _)| state.jobs.get(job).is_some_and(|e| e.configured))
                .collect()
        };
        // Self-tests and restores for real, whichever replica or command recorded them.
        for (job, kind) in &changed {
            match kind.as_str() {
                "selftest" => {
                    if let Some(report) = store.newest_selftest(job).await?
                        && let Some(Ok(selftest)) = history::SelfTestSummary::from_record(&report)
                    {
                        selftest.show(&self.metrics);
                    }
                }
                "restore" => {
                    for (outcome, total) in store.restore_counts(job).await? {
                        if let Ok(outcome) =
                            serde_json::from_value::<Outcome>(serde_json::Value::String(outcome))
                        {
                            self.metrics
                                .restores_recorded(job, outcome, total.max(0) as u64);
                        }
                    }
                }
                _ => {}
            }
        }
        let configured: Vec<String> = changed
            .into_iter()
            .filter(|(_, kind)| kind == "drill")
            .map(|(job, _)| job)
            .collect();
        let states: Vec<_> = futures::stream::iter(configured)
            .map(|job| {
                let store = store.clone();
                async move {
                    let state = history::stored_state(&store, &job).await;
                    (job, state)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut newer = Vec::new();
        for (job, state) in states {
            let Some(state) = state? else { continue };
            let locked = self.lock();
            let known = locked.jobs.get(&job).and_then(|e| e.status.last.as_ref());
            let is_newer = known.is_none_or(|k| {
                k.run_id != state.last.run_id && k.started_at <= state.last.started_at
            });
            if is_newer {
                newer.push(state);
            }
        }
        if newer.is_empty() {
            return Ok(now);
        }
        let run_ids: Vec<String> = newer.iter().map(|s| s.last.run_id.clone()).collect();
        let replicas: HashMap<String, String> =
            claims.replicas_of(&run_ids).await?.into_iter().collect();
        for state in newer {
            self.metrics
                .restore(&state.last, state.last_success, state.consecutive_errors);
            let mut locked = self.lock();
            if let Some(entry) = locked.jobs.get_mut(&state.last.job) {
                let mut last = LastDrill::from(&state.last);
                last.replica = replicas.get(&state.last.run_id).cloned();
                entry.status.last = Some(last);
                entry.status.last_success = state.last_success;
            }
        }
        Ok(now)
    }
}
