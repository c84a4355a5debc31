//! A job's timer: sleeps until each next occurrence of its schedule (plus the job's random
//! jitter), then asks for a drill.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Inner, Trigger};
use crate::clock::Clock;
use crate::config::Job;
use crate::schedule::Schedule;

/// Asks for a drill of `job` (or, for [`Trigger::Selftest`], a self-test) at each occurrence
/// of `schedule` until `stop` is cancelled.
pub(super) async fn timer(
    inner: Arc<Inner>,
    job: Arc<Job>,
    schedule: Schedule,
    trigger: Trigger,
    stop: CancellationToken,
) {
    let mut after = inner.clock.now();
    loop {
        let Some(due) = schedule.next_after(after) else {
            tracing::warn!(job = %job.name, schedule = schedule.expression(), "the schedule never comes due");
            if trigger == Trigger::Schedule {
                inner.set_next_run(&job.name, None);
            }
            return;
        };
        if trigger == Trigger::Schedule {
            inner.set_next_run(&job.name, Some(due));
        }
        let jitter = random_delay(job.jitter);
        let at = due + chrono::Duration::from_std(jitter).unwrap_or_default();
        if !sleep_until(inner.clock.as_ref(), at, &stop).await {
            return;
        }
        if inner.claims.is_some() {
            // The replicas' claims decide who drills it, and which of them counts a skip.
            inner.claim_occurrence(job.clone(), trigger, due);
        } else {
            // Not an error to report here: overlap is counted and logged by `start`.
            let _ = inner.start(&job.name, trigger, Some(due));
        }
        // Occurrences missed while the process could not run (a suspended machine) are not
        // made up in a burst: the next one is the first after now.
        let woke = inner.clock.now() - chrono::Duration::from_std(jitter).unwrap_or_default();
        after = due.max(woke);
    }
}

/// Sleeps until the clock reads `at`, in steps of at most a minute so a wall clock that jumps
/// is noticed. Returns false if `stop` was cancelled first.
async fn sleep_until(clock: &dyn Clock, at: DateTime<Utc>, stop: &CancellationToken) -> bool {
    loop {
        let now = clock.now();
        if now >= at {
            return true;
        }
        let wait = (at - now)
            .to_std()
            .unwrap_or_default()
            .min(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return false,
        }
    }
}

fn random_delay(up_to: Duration) -> Duration {
    if up_to.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::random_range(0..=up_to.as_millis() as u64))
}
