//! The metric set: every drill's outcome and measurements as Prometheus metrics. Names are
//! written here once; labels are `job`, `check` and `outcome` only (never a run id).

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use prometheus::core::{MetricVec, MetricVecBuilder};

use crate::config::Job;
use crate::drill::{DrillReport, DrillSummary, Outcome};
use crate::verify::CheckOutcome;

/// The metrics of one process; values persist between scrapes and reflect each job's last drill.
pub struct DrillMetrics {
    registry: Registry,
    /// The process's own resources, read at every scrape.
    process: Registry,
    /// Bumped by every change of a series of `registry`.
    generation: std::sync::atomic::AtomicU64,
    /// `registry` as text, and the generation it shows: a scrape with nothing changed since
    /// (the usual case with thousands of jobs between drills) answers it without rendering.
    rendered: Mutex<Option<(u64, std::sync::Arc<String>)>>,
    /// Per job, the label values its series carry beyond `job`, so that a change replaces
    /// exactly the stale series without reading every job's (which made starting with
    /// thousands of jobs quadratic).
    exported: Mutex<HashMap<String, Exported>>,
    last_run_success: IntGaugeVec,
    last_run_timestamp: GaugeVec,
    last_success_timestamp: GaugeVec,
    runs_total: IntCounterVec,
    rpo: GaugeVec,
    rpo_objective: GaugeVec,
    rto: GaugeVec,
    rto_objective: GaugeVec,
    restore_duration: GaugeVec,
    verify_duration: GaugeVec,
    phase_duration: GaugeVec,
    restored_bytes: GaugeVec,
    restored_rows: GaugeVec,
    check_success: IntGaugeVec,
    snapshot_age: GaugeVec,
    snapshot_timestamp: GaugeVec,
    compare_mismatched_rows: GaugeVec,
    job_info: IntGaugeVec,
    skipped_runs: IntCounterVec,
    restores: IntCounterVec,
    selftest_caught: IntGaugeVec,
    selftest_caught_ratio: GaugeVec,
    last_run_outcome: IntGaugeVec,
    consecutive_errors: IntGaugeVec,
    schedule_interval: GaugeVec,
    timeout: GaugeVec,
    history_divergence: IntGaugeVec,
    running_drills: IntGauge,
    config_reload_successful: IntGauge,
    config_reload_success_timestamp: Gauge,
    start_time: Gauge,
    /// `restore_drill_coordination_up`, registered by replicas (`[server] replicas`) only.
    coordination_up: Mutex<Option<IntGauge>>,
}

/// The phases a drill reports, each a series of `restore_drill_phase_seconds`.
const PHASES: [&str; 5] = ["fetch", "restore", "verify", "compare", "smoke"];

const ALL_OUTCOMES: [Outcome; 4] = [
    Outcome::Passed,
    Outcome::Failed,
    Outcome::Error,
    Outcome::Aborted,
];

/// A new metric, registered; metric definitions are fixed, so failures are bugs.
fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: Result<M, prometheus::Error>,
) -> M {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// The label values of a job's series beyond `job`.
#[derive(Debug, Default)]
struct Exported {
    /// `job_info`'s owner and kind.
    info: Option<(String, String)>,
    /// The checks with a `check_success` series.
    checks: BTreeSet<String>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("restore_drill_{name}"), help)
}

impl DrillMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, GaugeVec::new(opts(name, help), labels))
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, IntGaugeVec::new(opts(name, help), labels))
        };
        let job = &["job"];
        let metrics = Self {
            last_run_success: int_gauge(
                "last_run_success",
                "1 if the job's last drill passed, 0 if it failed or erred",
                job,
            ),
            last_run_timestamp: gauge(
                "last_run_timestamp_seconds",
                "Unix time at which the job's last drill finished",
                job,
            ),
            last_success_timestamp: gauge(
                "last_success_timestamp_seconds",
                "Unix time at which the job's last passed drill finished",
                job,
            ),
            runs_total: registered(
                &registry,
                IntCounterVec::new(
                    opts(
                        "runs_total",
                        "Drills run, by outcome (passed, failed, error, aborted)",
                    ),
                    &["job", "outcome"],
                ),
            ),
            rpo: gauge(
                "rpo_seconds",
                "Data a restore of the last drilled snapshot would lose: source's newest commit minus the snapshot's",
                job,
            ),
            rpo_objective: gauge(
                "rpo_objective_seconds",
                "The job's recovery point objective",
                job,
            ),
            rto: gauge(
                "rto_seconds",
                "Seconds from the start of the last restore until the restored data passed verification",
                job,
            ),
            rto_objective: gauge(
                "rto_objective_seconds",
                "The job's recovery time objective",
                job,
            ),
            restore_duration: gauge(
                "restore_duration_seconds",
                "Seconds the last restore (copy into the sandbox) took",
                job,
            ),
            verify_duration: gauge(
                "verify_duration_seconds",
                "Seconds the last verification of the restored data took",
                job,
            ),
            phase_duration: registered(
                &registry,
                GaugeVec::new(
                    opts(
                        "phase_seconds",
                        "Seconds each phase of the job's last drill took: fetch, restore, verify (the RTO's), compare (reading the source)",
                    ),
                    &["job", "phase"],
                ),
            ),
            restored_bytes: gauge("restored_bytes", "Bytes restored by the last drill", job),
            restored_rows: gauge(
                "restored_rows",
                "Rows read from the table restored by the last drill",
                job,
            ),
            check_success: int_gauge(
                "check_success",
                "1 if the check held in the job's last drill, 0 if it did not",
                &["job", "check"],
            ),
            snapshot_age: gauge(
                "snapshot_age_seconds",
                "Age of the last drilled snapshot's newest commit when the drill finished",
                job,
            ),
            snapshot_timestamp: gauge(
                "snapshot_timestamp_seconds",
                "Unix time of the newest commit of the snapshot the job's last drill restored",
                job,
            ),
            job_info: int_gauge(
                "job_info",
                "Always 1 for each configured job; its labels carry the job's owner and snapshot kind, for joins with group_left",
                &["job", "owner", "kind"],
            ),
            compare_mismatched_rows: gauge(
                "compare_mismatched_rows",
                "Rows of the last drill's keyed sample that were missing, extra or changed against the source",
                job,
            ),
            skipped_runs: registered(
                &registry,
                IntCounterVec::new(
                    opts(
                        "skipped_runs_total",
                        "Scheduled drills not started because the job's previous drill was still running",
                    ),
                    job,
                ),
            ),
            restores: registered(
                &registry,
                IntCounterVec::new(
                    opts(
                        "restores_total",
                        "Restores for real (`restore-drill restore`) recorded in the journal, by outcome",
                    ),
                    &["job", "outcome"],
                ),
            ),
            selftest_caught: int_gauge(
                "selftest_caught",
                "1 if the job's newest self-test found its drill catching the damage, 0 if it missed it (damages that do not apply have no series)",
                &["job", "damage"],
            ),
            selftest_caught_ratio: gauge(
                "selftest_caught_ratio",
                "The share of damages that apply which the job's newest self-test found its drill catching, 0 to 1",
                job,
            ),
            last_run_outcome: int_gauge(
                "last_run_outcome",
                "1 for the outcome of the job's last drill (passed, failed, error, aborted), 0 for the others",
                &["job", "outcome"],
            ),
            consecutive_errors: int_gauge(
                "consecutive_errors",
                "Drills of the job in a row, up to the last, that ended in error",
                job,
            ),
            schedule_interval: gauge(
                "schedule_interval_seconds",
                "The longest time between two scheduled drills of the job",
                job,
            ),
            timeout: gauge(
                "timeout_seconds",
                "How long a drill of the job may run before it is cancelled",
                job,
            ),
            history_divergence: int_gauge(
                "history_divergence",
                "Differences between the job's journal and PostgreSQL found at the last sync (a record edited, removed or its sequence number reused); 0 when they agree",
                job,
            ),
            coordination_up: Mutex::new(None),
            start_time: registered(
                &registry,
                Gauge::with_opts(opts(
                    "start_time_seconds",
                    "Unix time at which the metrics of this process were created",
                )),
            ),
            running_drills: registered(
                &registry,
                IntGauge::with_opts(opts(
                    "running_drills",
                    "Drills running now, across all jobs",
                )),
            ),
            config_reload_successful: registered(
                &registry,
                IntGauge::with_opts(opts(
                    "config_last_reload_successful",
                    "1 if the last attempt to load the configuration succeeded, 0 if it was refused",
                )),
            ),
            config_reload_success_timestamp: registered(
                &registry,
                Gauge::with_opts(opts(
                    "config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration load",
                )),
            ),
            registry,
            process: Registry::new(),
            generation: std::sync::atomic::AtomicU64::new(0),
            rendered: Mutex::new(None),
            exported: Mutex::new(HashMap::new()),
        };
        let build_info = registered(
            &metrics.registry,
            IntGaugeVec::new(
                opts(
                    "build_info",
                    "Always 1; the labels name the running build's version and source revision",
                ),
                &["version", "revision"],
            ),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("RESTORE_DRILL_REVISION")])
            .set(1);
        // The service's own memory, CPU, file descriptors and start time (`process_*`).
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            if let Err(e) = metrics.process.register(Box::new(process)) {
                tracing::warn!(error = %e, "the process metrics are not exported");
            }
        }
        metrics.start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_millis() as f64 / 1000.0),
        );
        metrics
    }

    /// Records how many differences between a job's journal and PostgreSQL the last sync found.
    pub(crate) fn set_history_divergence(&self, job: &str, differences: usize) {
        self.changed();
        self.history_divergence
            .with_label_values(&[job])
            .set(differences as i64);
    }

    /// Exports what is known of a job before its first drill: its objectives, and zero counts
    /// for every outcome, so alert rules can compare and `rate()` sees a start.
    pub(crate) fn register_job(&self, job: &Job) {
        self.changed();
        let labels = &[job.name.as_str()];
        let owner = job.owner.as_deref().unwrap_or("");
        let info = (owner.to_string(), job.snapshots.kind().to_string());
        let mut exported = self.exported();
        let known = exported.entry(job.name.clone()).or_default();
        if let Some((old_owner, old_kind)) = known.info.replace(info.clone())
            && (&old_owner, &old_kind) != (&info.0, &info.1)
        {
            let _ = self
                .job_info
                .remove_label_values(&[job.name.as_str(), &old_owner, &old_kind]);
        }
        drop(exported);
        self.job_info
            .with_label_values(&[job.name.as_str(), owner, job.snapshots.kind()])
            .set(1);
        self.rpo_objective
            .with_label_values(labels)
            .set(job.objectives.rpo.as_secs_f64());
        self.rto_objective
            .with_label_values(labels)
            .set(job.objectives.rto.as_secs_f64());
        // Restores for real are rare: their series appear with the first.
        for outcome in ALL_OUTCOMES {
            self.runs_total
                .with_label_values(&[job.name.as_str(), outcome.as_str()]);
        }
        self.skipped_runs.with_label_values(labels);
        self.consecutive_errors.with_label_values(labels);
        self.timeout
            .with_label_values(labels)
            .set(job.timeout.as_secs_f64());
        let interval = job
            .schedule
            .as_ref()
            .and_then(|s| s.longest_interval(chrono::Utc::now()));
        match interval {
            Some(i) => self
                .schedule_interval
                .with_label_values(labels)
                .set(i.as_secs_f64()),
            None => {
                let _ = self.schedule_interval.remove_label_values(labels);
            }
        }
    }

    /// Counts a scheduled drill that was skipped because the previous one still ran.
    pub fn skipped(&self, job: &str) {
        self.changed();
        self.skipped_runs.with_label_values(&[job]).inc();
    }

    /// Raises the count of a job's restores for real with `outcome` to `total`, the number
    /// its history holds (a count never goes down, even when retention drops records).
    pub(crate) fn restores_recorded(&self, job: &str, outcome: Outcome, total: u64) {
        self.changed();
        let counter = self.restores.with_label_values(&[job, outcome.as_str()]);
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// Shows a job's newest self-test: each damage that applied, caught (true) or missed, and
    /// the share caught; series of an earlier self-test go.
    pub(crate) fn selftest_recorded(
        &self,
        job: &str,
        damages: &[(String, bool)],
        ratio: Option<f64>,
    ) {
        self.changed();
        remove_series(&self.selftest_caught, |labels| {
            labels.get("job").map(String::as_str) == Some(job)
        });
        for (damage, caught) in damages {
            self.selftest_caught
                .with_label_values(&[job, damage.as_str()])
                .set(i64::from(*caught));
        }
        match ratio {
            Some(r) => self.selftest_caught_ratio.with_label_values(&[job]).set(r),
            None => {
                let _ = self.selftest_caught_ratio.remove_label_values(&[job]);
            }
        }
    }

    /// The number of drills running now.
    /// Whether this replica can claim drills through PostgreSQL (1) or not (0); the series
    /// exists from the first call on, so a single `serve` never exports it.
    pub(crate) fn set_coordination_up(&self, up: bool) {
        self.changed();
        let mut gauge = self
            .coordination_up
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let gauge = gauge.get_or_insert_with(|| {
            registered(
                &self.registry,
                IntGauge::with_opts(opts(
                    "coordination_up",
                    "1 if this replica can claim drills through PostgreSQL ([server] replicas = \"postgres\"), 0 if it cannot and starts none",
                )),
            )
        });
        gauge.set(i64::from(up));
    }

    pub(crate) fn set_running(&self, running: usize) {
        self.changed();
        self.running_drills.set(running as i64);
    }

    /// Records an attempt to load the configuration, at `at` (Unix seconds) if it succeeded.
    pub(crate) fn config_loaded(&self, success: bool, at: f64) {
        self.changed();
        self.config_reload_successful.set(success as i64);
        if success {
            self.config_reload_success_timestamp.set(at);
        }
    }

    /// Records a finished drill.
    pub fn observe(&self, report: &DrillReport) {
        self.changed();
        let job = &[report.job.as_str()];
        self.runs_total
            .with_label_values(&[report.job.as_str(), report.outcome.as_str()])
            .inc();
        for outcome in ALL_OUTCOMES {
            // Every outcome series exists from the first run, so rate() and alerts see zeros.
            self.runs_total
                .with_label_values(&[report.job.as_str(), outcome.as_str()]);
        }
        let errors = self.consecutive_errors.with_label_values(job);
        match report.outcome {
            Outcome::Error => errors.inc(),
            Outcome::Passed | Outcome::Failed => errors.set(0),
            // A drill cut short by a shutdown says nothing either way.
            Outcome::Aborted => {}
        }
        if report.outcome == Outcome::Passed {
            self.last_success_timestamp
                .with_label_values(job)
                .set(unix_seconds(report.finished_at));
        }
        match DrillSummary::of(report) {
            Ok(summary) => self.show(&summary),
            Err(e) => {
                tracing::error!(job = %report.job, error = %e, "the drill's report could not be read for its metrics")
            }
        }
    }

    /// Restores a job's gauges from its recorded history, as a restarted service starts: the
    /// last drill, when the last passed one finished, and how many drills in a row up to the last
    /// ended in `error`. Counters start at zero in every process.
    pub fn restore(
        &self,
        last: &DrillSummary,
        last_success: Option<DateTime<Utc>>,
        consecutive_errors: u64,
    ) {
        self.changed();
        let job = &[last.job.as_str()];
        match last_success {
            Some(t) => self
                .last_success_timestamp
                .with_label_values(job)
                .set(unix_seconds(t)),
            None => {
                let _ = self.last_success_timestamp.remove_label_values(job);
            }
        }
        self.consecutive_errors
            .with_label_values(job)
            .set(consecutive_errors as i64);
        self.show(last);
    }

    /// Sets the gauges that describe a job's last drill; a value that drill did not measure is
    /// removed rather than left from an earlier one, and so is a check it did not evaluate.
    fn show(&self, s: &DrillSummary) {
        let job = &[s.job.as_str()];
        for outcome in ALL_OUTCOMES {
            self.last_run_outcome
                .with_label_values(&[s.job.as_str(), outcome.as_str()])
                .set((outcome == s.outcome) as i64);
        }
        self.last_run_success
            .with_label_values(job)
            .set((s.outcome == Outcome::Passed) as i64);
        self.last_run_timestamp
            .with_label_values(job)
            .set(unix_seconds(s.finished_at));
        self.rpo_objective
            .with_label_values(job)
            .set(s.objectives.rpo_seconds);
        self.rto_objective
            .with_label_values(job)
            .set(s.objectives.rto_seconds);
        let set = |gauge: &GaugeVec, value: Option<f64>| match value {
            Some(v) => gauge.with_label_values(job).set(v),
            None => {
                let _ = gauge.remove_label_values(job);
            }
        };
        set(&self.rpo, s.rpo_seconds);
        set(&self.rto, s.rto_seconds);
        set(
            &self.restore_duration,
            s.restore.as_ref().map(|r| r.seconds),
        );
        set(
            &self.restored_bytes,
            s.restore.as_ref().map(|r| r.bytes as f64),
        );
        set(&self.verify_duration, s.verify.as_ref().map(|v| v.seconds));
        for phase in PHASES {
            let labels = &[s.job.as_str(), phase];
            match s.phases.iter().find(|p| p.phase == phase) {
                Some(p) => self.phase_duration.with_label_values(labels).set(p.seconds),
                None => {
                    let _ = self.phase_duration.remove_label_values(labels);
                }
            }
        }
        set(
            &self.restored_rows,
            s.verify.as_ref().and_then(|v| v.rows).map(|r| r as f64),
        );
        let commit = s.snapshot.as_ref().and_then(|snap| snap.commit_timestamp);
        set(
            &self.snapshot_age,
            commit.map(|t| (s.finished_at - t).num_milliseconds().max(0) as f64 / 1000.0),
        );
        set(&self.snapshot_timestamp, commit.map(unix_seconds));
        set(
            &self.compare_mismatched_rows,
            s.compare.as_ref().map(|c| c.mismatched() as f64),
        );
        let mut evaluated = BTreeSet::new();
        for check in &s.checks {
            let labels = [s.job.as_str(), check.id.as_str()];
            match check.outcome {
                CheckOutcome::Passed | CheckOutcome::Failed => {
                    evaluated.insert(check.id.clone());
                    self.check_success
                        .with_label_values(&labels)
                        .set((check.outcome == CheckOutcome::Passed) as i64);
                }
                // Not evaluated this time: an old value would claim a result nobody saw.
                CheckOutcome::Skipped => {}
            }
        }
        // Not evaluated this time: an old value would claim a result nobody saw.
        let mut exported = self.exported();
        let known = exported.entry(s.job.clone()).or_default();
        for stale in known.checks.difference(&evaluated) {
            let _ = self
                .check_success
                .remove_label_values(&[s.job.as_str(), stale.as_str()]);
        }
        known.checks = evaluated;
    }

    fn exported(&self) -> MutexGuard<'_, HashMap<String, Exported>> {
        self.exported.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes every series of a job that is no longer configured.
    pub(crate) fn forget_job(&self, job: &str) {
        self.changed();
        self.exported().remove(job);
        let of_job =
            |labels: &HashMap<String, String>| labels.get("job").map(String::as_str) == Some(job);
        for gauge in [
            &self.last_run_timestamp,
            &self.last_success_timestamp,
            &self.rpo,
            &self.rpo_objective,
            &self.rto,
            &self.rto_objective,
            &self.restore_duration,
            &self.verify_duration,
            &self.phase_duration,
            &self.restored_bytes,
            &self.restored_rows,
            &self.snapshot_age,
            &self.snapshot_timestamp,
            &self.compare_mismatched_rows,
            &self.schedule_interval,
            &self.timeout,
            &self.selftest_caught_ratio,
        ] {
            remove_series(gauge, of_job);
        }
        for gauge in [
            &self.last_run_success,
            &self.check_success,
            &self.last_run_outcome,
            &self.consecutive_errors,
            &self.history_divergence,
            &self.job_info,
            &self.selftest_caught,
        ] {
            remove_series(gauge, of_job);
        }
        remove_series(&self.runs_total, of_job);
        remove_series(&self.skipped_runs, of_job);
        remove_series(&self.restores, of_job);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        use std::sync::atomic::Ordering;
        let generation = self.generation.load(Ordering::SeqCst);
        let cached = self
            .rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(shown, _)| *shown == generation)
            .map(|(_, text)| text.clone());
        let series = match cached {
            Some(text) => text,
            None => {
                let text = std::sync::Arc::new(encode(&self.registry));
                // A change while it rendered bumped the generation: the next scrape renders.
                *self.rendered.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((generation, text.clone()));
                text
            }
        };
        let mut text = encode(&self.process);
        text.push_str(&series);
        text
    }

    /// A series changed: the next scrape renders the metrics again.
    fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A registry in the text exposition format.
fn encode(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("encoding to memory does not fail");
    String::from_utf8(buffer).expect("the text format is UTF-8")
}

fn unix_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// Removes the series of a metric whose labels `matches` selects.
fn remove_series<T: MetricVecBuilder>(
    vec: &MetricVec<T>,
    matches: impl Fn(&HashMap<String, String>) -> bool,
) {
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: HashMap<String, String> = metric
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            if matches(&labels) {
                let by_name: HashMap<&str, &str> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let _ = vec.remove(&by_name);
            }
        }
    }
}

impl Default for DrillMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
