//! The scheduler in tokio's paused time: schedules fire when due (in their time zone, across
//! daylight-saving changes), overlapping runs are skipped and counted, the concurrency bound
//! holds, timed-out drills are cancelled and recorded, shutdown respects the grace period.
//! Drills here are stand-ins that take a set time; real drills run in `serve.rs`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use restore_drill::clock::{Clock, TokioClock};
use restore_drill::config::{self, Config, Job};
use restore_drill::drill::{DrillReport, Outcome};
use restore_drill::metrics::DrillMetrics;
use restore_drill::scheduler::{DrillRunner, Scheduler, StartError};

/// Drills that take `length` and pass, recording when each started and what was discarded.
struct StandIn {
    clock: TokioClock,
    length: Duration,
    started: Mutex<Vec<(String, DateTime<Utc>)>>,
    discarded: Mutex<Vec<String>>,
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StandIn {
    fn new(clock: TokioClock, length: Duration) -> Arc<Self> {
        Arc::new(Self {
            clock,
            length,
            started: Mutex::new(Vec::new()),
            discarded: Mutex::new(Vec::new()),
            running: Arc::new(AtomicUsize::new(0)),
            most_at_once: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn starts(&self) -> Vec<(String, DateTime<Utc>)> {
        self.started.lock().unwrap().clone()
    }
}

impl DrillRunner for StandIn {
    fn run(&self, job: Arc<Job>, run_id: String) -> BoxFuture<'static, DrillReport> {
        let started = self.clock.now();
        self.started
            .lock()
            .unwrap()
            .push((job.name.clone(), started));
        let now_running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now_running, Ordering::SeqCst);
        let guard = Running(self.running.clone());
        let (clock, length) = (self.clock, self.length);
        Box::pin(async move {
            let _guard = guard;
            tokio::time::sleep(length).await;
            let mut report = DrillReport::new(&job, run_id, started);
            report.finished_at = clock.now();
            report.outcome = Outcome::Passed;
            report
        })
    }

    fn discard(&self, _job: Arc<Job>, run_id: String) -> BoxFuture<'static, ()> {
        self.discarded.lock().unwrap().push(run_id);
        Box::pin(async {})
    }
}

/// A configuration with `jobs` (each a `[[job]]` body without the common fields).
fn config(dir: &Path, server: &str, jobs: &[&str]) -> Config {
    std::fs::write(
        dir.join("suite.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1\n",
    )
    .unwrap();
    let mut text = format!("[server]\n{server}\n");
    for (i, job) in jobs.iter().enumerate() {
        text.push_str(&format!(
            "\n[[job]]\nsource = \"lake/t{i}\"\nsnapshots = {{ kind = \"delta_copy\", location = \"backups/t{i}\", pattern = \"t_{{date}}\" }}\nsandbox = \"sandbox\"\nsuite = \"suite.toml\"\nobjectives = {{ rpo = \"26h\", rto = \"1h\" }}\n{job}\n"
        ));
    }
    config::parse(&dir.join("restore-drill.toml"), &text, |_| None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn start(config: &Config, drills: &Arc<StandIn>) -> (Scheduler, Arc<DrillMetrics>) {
    let metrics = Arc::new(DrillMetrics::new());
    let scheduler = Scheduler::start(
        config,
        drills.clone(),
        metrics.clone(),
        None,
        Arc::new(drills.clock),
    );
    (scheduler, metrics)
}

/// Start times, rounded down to the second (tokio's timers have millisecond steps).
fn seconds(starts: &[(String, DateTime<Utc>)]) -> Vec<DateTime<Utc>> {
    starts
        .iter()
        .map(|(_, t)| DateTime::from_timestamp(t.timestamp(), 0).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_daily_job_runs_at_its_local_time_on_both_sides_of_daylight_saving_changes() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "",
        &["name = \"berlin\"\nschedule = \"0 30 2 * * *\"\ntimezone = \"Europe/Berlin\""],
    );

    // Spring forward (29 March 2026, 02:00 CET → 03:00 CEST): 02:30 does not exist that night.
    let drills = StandIn::new(
        TokioClock::starting_at(utc("2026-03-27T12:00:00Z")),
        Duration::from_secs(60),
    );
    let (scheduler, _) = start(&config, &drills);
    tokio::time::sleep(Duration::from_secs(4 * 86_400)).await;
    assert_eq!(
        seconds(&drills.starts()),
        vec![
            utc("2026-03-28T01:30:00Z"), // 02:30 CET
            utc("2026-03-29T01:00:00Z"), // the first second after the gap: 03:00 CEST
            utc("2026-03-30T00:30:00Z"), // 02:30 CEST
            utc("2026-03-31T00:30:00Z"),
        ]
    );
    scheduler.shut_down(Duration::from_secs(60)).await;

    // Fall back (25 October 2026, 03:00 CEST → 02:00 CET): 02:30 happens twice; one drill.
    let drills = StandIn::new(
        TokioClock::starting_at(utc("2026-10-24T12:00:00Z")),
        Duration::from_secs(60),
    );
    let (scheduler, _) = start(&config, &drills);
    tokio::time::sleep(Duration::from_secs(3 * 86_400)).await;
    assert_eq!(
        seconds(&drills.starts()),
        vec![
            utc("2026-10-25T00:30:00Z"), // 02:30 CEST
            utc("2026-10-26T01:30:00Z"), // 02:30 CET
            utc("2026-10-27T01:30:00Z"),
        ]
    );
    let status = &scheduler.jobs()[0];
    assert_eq!(status.runs, 3);
    assert_eq!(status.next_run, Some(utc("2026-10-28T01:30:00Z")));
    scheduler.shut_down(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn a_run_that_comes_due_while_the_previous_one_runs_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "",
        &["name = \"slow\"\nschedule = \"*/10 * * * * *\""],
    );
    let drills = StandIn::new(
        TokioClock::starting_at(utc("2026-06-01T00:00:00.500Z")),
        Duration::from_secs(25),
    );
    let (scheduler, metrics) = start(&config, &drills);
    // Due at :10 (runs to :35), :20 and :30 skipped, :40 (runs to :65), :50 and :60 skipped.
    tokio::time::sleep(Duration::from_millis(65_000)).await;
    assert_eq!(
        seconds(&drills.starts()),
        vec![utc("2026-06-01T00:00:10Z"), utc("2026-06-01T00:00:40Z")]
    );
    let status = &scheduler.jobs()[0];
    assert_eq!(status.skipped_runs, 4);
    assert_eq!(status.runs, 2);
    assert!(
        metrics
            .render()
            .contains("restore_drill_skipped_runs_total{job=\"slow\"} 4"),
        "{}",
        metrics.render()
    );
    // Asking for a drill while one runs is refused the same way.
    tokio::time::sleep(Duration::from_secs(6)).await; // :71.5, the drill due at :70 runs
    assert!(matches!(
        scheduler.run_now("slow").await,
        Err(StartError::AlreadyRunning { .. })
    ));
    scheduler.shut_down(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn no_more_drills_run_at_once_than_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<String> = (0..5)
        .map(|i| format!("name = \"j{i}\"\nschedule = \"0 * * * * *\""))
        .collect();
    let jobs: Vec<&str> = jobs.iter().map(String::as_str).collect();
    let config = config(dir.path(), "max_concurrent_drills = 2", &jobs);
    let drills = StandIn::new(
        TokioClock::starting_at(utc("2026-06-01T00:00:30Z")),
        Duration::from_secs(10),
    );
    let (scheduler, _) = start(&config, &drills);
    // All five are due at 00:01:00; two at a time, 10 s each: starts at :00, :00, :10, :10, :20.
    tokio::time::sleep(Duration::from_secs(65)).await; // 00:01:35
    assert_eq!(drills.most_at_once.load(Ordering::SeqCst), 2);
    let mut starts = seconds(&drills.starts());
    starts.sort();
    assert_eq!(
        starts,
        vec![
            utc("2026-06-01T00:01:00Z"),
            utc("2026-06-01T00:01:00Z"),
            utc("2026-06-01T00:01:10Z"),
            utc("2026-06-01T00:01:10Z"),
            utc("2026-06-01T00:01:20Z"),
        ]
    );
    assert!(scheduler.jobs().iter().all(|j| j.runs == 1));
    scheduler.shut_down(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn a_drill_that_outlives_its_timeout_is_cancelled_its_sandbox_removed_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "",
        &["name = \"stuck\"\nschedule = \"0 * * * * *\"\ntimeout = \"3s\""],
    );
    let drills = StandIn::new(
        TokioClock::starting_at(utc("2026-06-01T00:00:30Z")),
        Duration::from_secs(3600),
    );
    let (scheduler, metrics) = start(&config, &drills);
    tokio::time::sleep(Duration::from_secs(35)).await; // due at :60, cancelled at :63
    let status = &scheduler.jobs()[0];
    let last = status.last.as_ref().expect("the drill was recorded");
    assert_eq!(last.outcome, Outcome::Error);
    assert!(
        last.error.as_deref().unwrap().contains("timeout of 3s"),
        "{:?}",
        last.error
    );
    assert_eq!(last.finished_at, utc("2026-06-01T00:01:03Z"));
    assert!(status.running.is_none());
    assert_eq!(*drills.discarded.lock().unwrap(), vec![last.run_id.clone()]);
    assert_eq!(
        drills.running.load(Ordering::SeqCst),
        0,
        "the drill was dropped"
    );
    let text = metrics.render();
    assert!(text.contains("restore_drill_runs_total{job=\"stuck\",outcome=\"error\"} 1"));
    assert!(text.contains("restore_drill_last_run_success{job=\"stuck\"} 0"));
    assert!(text.contains("restore_drill_running_drills 0"));
    scheduler.shut_down(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_drills_finish_within_the_grace_period_then_aborts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "max_concurrent_drills = 2",
        &["name = \"quick\"", "name = \"long\"", "name = \"queued\""],
    );
    let clock = TokioClock::starting_at(utc("2026-06-01T00:00:00Z"));
    let drills = StandIn::new(clock, Duration::from_secs(5));
    let (scheduler, metrics) = start(&config, &drills);
    scheduler.run_now("quick").await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // `long` starts 4 s later, so it is still running when the 5 s grace period ends at 0:06.
    let long = scheduler.run_now("long").await.unwrap();
    let queued = scheduler.run_now("queued").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    scheduler.shut_down(Duration::from_millis(1500)).await;

    assert_eq!(clock.now(), utc("2026-06-01T00:00:06Z"));
    let status = |name: &str| {
        scheduler
            .jobs()
            .into_iter()
            .find(|j| j.name == name)
            .unwrap()
            .last
            .unwrap()
    };
    assert_eq!(status("quick").outcome, Outcome::Passed);
    assert_eq!(status("long").outcome, Outcome::Aborted);
    assert_eq!(status("long").run_id, long);
    assert_eq!(status("queued").outcome, Outcome::Aborted);
    assert_eq!(status("queued").run_id, queued);
    assert!(status("queued").error.unwrap().contains("never started"));
    // Only the drill that had started had a sandbox to remove.
    assert_eq!(*drills.discarded.lock().unwrap(), vec![long]);
    assert_eq!(
        scheduler.run_now("quick").await,
        Err(StartError::ShuttingDown)
    );
    assert!(
        metrics
            .render()
            .contains("restore_drill_runs_total{job=\"long\",outcome=\"aborted\"} 1")
    );
}

/// Drills whose first run panics; the others pass as a [`StandIn`]'s.
struct PanicsOnce {
    inner: Arc<StandIn>,
    panicked: std::sync::atomic::AtomicBool,
}

impl DrillRunner for PanicsOnce {
    fn run(&self, job: Arc<Job>, run_id: String) -> BoxFuture<'static, DrillReport> {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            return Box::pin(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                panic!("an injected fault");
            });
        }
        self.inner.run(job, run_id)
    }

    fn discard(&self, job: Arc<Job>, run_id: String) -> BoxFuture<'static, ()> {
        self.inner.discard(job, run_id)
    }
}

#[tokio::test(start_paused = true)]
async fn a_drill_that_panics_is_recorded_as_error_and_the_job_drills_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "",
        &["name = \"fragile\"\nschedule = \"0 * * * * *\""],
    );
    let stand_in = StandIn::new(
        TokioClock::starting_at(utc("2026-06-01T00:00:30Z")),
        Duration::from_secs(5),
    );
    let drills = Arc::new(PanicsOnce {
        inner: stand_in.clone(),
        panicked: false.into(),
    });
    let metrics = Arc::new(DrillMetrics::new());
    let scheduler = Scheduler::start(
        &config,
        drills.clone(),
        metrics.clone(),
        None,
        Arc::new(stand_in.clock),
    );
    tokio::time::sleep(Duration::from_secs(35)).await; // due at :60, panics at :61
    let status = &scheduler.jobs()[0];
    let last = status
        .last
        .as_ref()
        .expect("the panicked drill was recorded");
    assert_eq!(last.outcome, Outcome::Error);
    assert!(
        last.error.as_deref().unwrap().contains("an injected fault"),
        "{:?}",
        last.error
    );
    assert!(status.running.is_none(), "the job was released");
    assert_eq!(stand_in.discarded.lock().unwrap().len(), 1);
    assert!(
        metrics
            .render()
            .contains("restore_drill_runs_total{job=\"fragile\",outcome=\"error\"} 1")
    );

    // The next occurrence (due at 00:02:00) drills normally.
    tokio::time::sleep(Duration::from_secs(70)).await;
    let status = &scheduler.jobs()[0];
    assert_eq!(status.last.as_ref().unwrap().outcome, Outcome::Passed);
    assert_eq!(status.runs, 2);
    scheduler.shut_down(Duration::from_secs(1)).await;
}
