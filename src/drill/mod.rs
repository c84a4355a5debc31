//! One drill: discover → restore → verify → measure → report → clean up.

pub mod plan;
mod report;
pub mod runtime;
pub mod summary;

pub use report::{
    DrillReport, DrillSummary, Finding, ObjectivesEvidence, Outcome, Query, RestoreEvidence,
    SnapshotEvidence, VerifyEvidence,
};

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::clock::{Clock, elapsed_seconds};
use crate::config::Job;
use crate::primitives::duration::format_duration;
use crate::primitives::run_id::RunId;
use crate::restore::{self, CopyProgress, RestoreError, StructureReport};
use crate::snapshot::{self, RestoreMethod, Snapshot, SnapshotError};
use crate::storage::{ReadOnlyDir, RunSandbox, SandboxRoot, StorageError};
use crate::table;
use crate::verify::sample::{self, CompareSpec, DiffMode, Fallback, SampleCollector};
use crate::verify::suite::CheckKind;
use crate::verify::suite::Severity;
use crate::verify::{self, CheckOutcome, CheckResult, SourceValues, damage, scan};
use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

/// Why a drill could not be carried out (its outcome is then `error`).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("job `{job}`: the suite does not fit the table:\n{problems}")]
    SuiteDoesNotFit { job: String, problems: String },
    #[error("job `{job}`: cannot read the restored table: {message}")]
    Restored { job: String, message: String },
    #[error("job `{job}`: the restore failed: {message}")]
    Restore { job: String, message: String },
    #[error(
        "job `{job}`: the table declares the Delta reader feature(s) {features}, which this version of restore-drill cannot verify; the backup is neither passed nor failed (the README lists the supported features)"
    )]
    UnsupportedFeatures { job: String, features: String },
    #[error(
        "job `{job}`: the source {location} cannot be read: {reason}; check `source`, its storage profile and that the table exists — without it the restored data cannot be compared"
    )]
    Source {
        job: String,
        location: String,
        reason: String,
    },
}

/// The snapshot asked for lies outside what the table's or bucket's history still holds: a
/// failed check, since a restore to that point is no longer possible.
fn window_finding(report: &mut DrillReport, message: String) {
    let mut check = CheckResult::new("time_travel_window", "time_travel_window", Severity::Fail);
    check.fail(message.clone());
    report.checks.push(check);
    report.findings.push(Finding {
        check: "time_travel_window".into(),
        severity: Severity::Fail,
        message,
    });
}

/// Choices for one drill.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// Drill this snapshot instead of the newest.
    pub snapshot: Option<String>,
    /// The run id (it names the sandbox folder); a new one when `None`.
    pub run_id: Option<String>,
}

/// What a drill reports while it works, for progress bars.
pub trait Progress: CopyProgress {
    fn scan_started(&self, what: &str);
    fn scan_finished(&self);
}

/// Progress that nobody watches.
pub struct NoProgress;

impl CopyProgress for NoProgress {
    fn start(&self, _: usize, _: u64) {}
    fn copied(&self, _: u64) {}
    fn finish(&self) {}
}

impl Progress for NoProgress {
    fn scan_started(&self, _: &str) {}
    fn scan_finished(&self) {}
}

/// Runs one drill of `job`. Always returns a report; an `error` outcome carries the reason.
pub async fn run_drill(
    job: &Job,
    options: &DrillOptions,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> DrillReport {
    let started_at = clock.now();
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| RunId::new(started_at).into_string());
    let mut report = DrillReport::new(job, run_id, started_at);
    let mut sandbox = None;
    let result = drill(job, options, clock, progress, &mut report, &mut sandbox).await;
    report.outcome = match &result {
        Err(e) => {
            report.error = Some(e.to_string());
            Outcome::Error
        }
        Ok(()) if report.findings.iter().any(|f| f.severity == Severity::Fail) => Outcome::Failed,
        Ok(()) => Outcome::Passed,
    };
    if let Some(run) = sandbox {
        let keep = report.outcome == Outcome::Failed;
        let cleaned = if keep {
            run.keep().await
        } else {
            run.remove().await
        };
        if let Err(e) = cleaned {
            tracing::warn!(job = %job.name, error = %e, "could not clean up the sandbox");
        }
        if let Some(r) = report.restore.as_mut() {
            r.kept = keep;
        }
    }
    report.finished_at = clock.now();
    report
}

async fn drill(
    job: &Job,
    options: &DrillOptions,
    clock: &dyn Clock,
    progress: &dyn Progress,
    report: &mut DrillReport,
    sandbox: &mut Option<RunSandbox>,
) -> Result<(), DrillError> {
    // 1. Discover.
    let chosen = snapshot::choose(&job.snapshots, options.snapshot.as_deref(), clock.now()).await;
    let mut snapshot = match chosen {
        Ok(s) => s,
        Err(SnapshotError::OutsideWindow(message)) => {
            window_finding(report, message);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    report.snapshot = Some(SnapshotEvidence::from(&snapshot));
    if let Ok(info) = &snapshot.table {
        check_features(job, info)?;
        check_columns(job, &info.typed_columns())?;
    }

    // 2. Restore.
    let run = SandboxRoot::new(&job.sandbox)
        .create_run(&job.name, &report.run_id)
        .await?;
    *sandbox = Some(run.clone());
    let restored = match restore::restore(&snapshot, &run, job.copy_concurrency, progress).await {
        Ok(r) => r,
        Err(RestoreError::Unreadable(message)) => {
            window_finding(report, message);
            return Ok(());
        }
        Err(RestoreError::Storage(e)) => return Err(e.into()),
        Err(RestoreError::Write(message)) => {
            return Err(DrillError::Restore {
                job: job.name.clone(),
                message,
            });
        }
    };
    report.restore = Some(RestoreEvidence {
        sandbox: run.location().to_string(),
        files: restored.files,
        bytes: restored.bytes,
        seconds: restored.seconds,
        kept: false,
    });

    // 3. Verify the structure, then the suite in one scan.
    let verify_started = Instant::now();
    // A copy replays to the snapshot's version; a rewrite is a new table's first version; a
    // versioned-bucket restore is at whatever version the bucket held then.
    let expected_version = match &snapshot.method {
        RestoreMethod::CopyAll => snapshot.version(),
        RestoreMethod::Rewrite { .. } => Some(0),
        RestoreMethod::CopyVersions(_) => None,
    };
    let structure = restore::verify_structure(&run, expected_version).await;
    if let (RestoreMethod::CopyVersions(_), Some(info)) = (&snapshot.method, &structure.table) {
        snapshot.table = Ok(info.clone());
        report.snapshot = Some(SnapshotEvidence::from(&snapshot));
    }
    if let Some(info) = &structure.table {
        check_features(job, info)?;
    }
    // A log that does not replay because it declares a feature this version does not know is
    // not a broken backup.
    refuse_features(
        job,
        structure
            .declared_reader_features
            .iter()
            .filter(|f| !table::SUPPORTED_READER_FEATURES.contains(&f.as_str()))
            .cloned()
            .collect(),
    )?;
    let mut structure_check = CheckResult::new("structure", "structure", Severity::Fail);
    structure_check.observed = json!({
        "log_replays": structure.log_replays,
        "version": structure.version,
        "files_checked": structure.files_checked,
        "missing_files": structure.missing_files.len(),
        "wrong_size_files": structure.wrong_size_files.len(),
        "deletion_vectors_checked": structure.deletion_vectors_checked,
        "damaged_deletion_vectors": structure.damaged_deletion_vectors.len(),
    });
    structure_check.expected = json!({ "log_replays": true, "version": expected_version, "missing_files": 0, "wrong_size_files": 0, "damaged_deletion_vectors": 0 });
    if !structure.is_sound() {
        structure_check.fail(structure.problems.join("; "));
    }
    report.checks.push(structure_check);
    report
        .findings
        .extend(structure.warnings.iter().map(|message| Finding {
            check: "structure".into(),
            severity: Severity::Warn,
            message: message.clone(),
        }));

    let mut queries = Vec::new();
    let mut rows = None;
    let mut context = verify::Context {
        commit_time: snapshot.commit_timestamp(),
        logged_rows: structure.table.as_ref().and_then(|i| i.logged_rows()),
        columns: structure
            .table
            .as_ref()
            .map(|i| i.typed_columns())
            .unwrap_or_default(),
        source_columns: None,
        key_ranges: structure
            .table
            .as_ref()
            .map(|info| {
                verify::evaluate::key_columns(&job.suite)
                    .into_iter()
                    .filter_map(|c| info.integer_range(c).map(|r| (c.to_string(), r)))
                    .collect()
            })
            .unwrap_or_default(),
    };
    // The keyed sample is collected during each side's one scan.
    let sampling = job
        .compare
        .as_ref()
        .map(|spec| (spec, spec.fraction(context.logged_rows)));
    let scanned = match &structure.table {
        Some(info)
            if structure.missing_files.is_empty()
                && structure.wrong_size_files.is_empty()
                && structure.damaged_deletion_vectors.is_empty() =>
        {
            check_columns(job, &info.typed_columns())?;
            let mut plan = verify::plan_restored(&job.suite, &info.columns, &context);
            if let Some((spec, fraction)) = &sampling {
                plan.add(SampleCollector::new(&info.columns, &spec.key, *fraction).expr);
            }
            for sql in plan.queries() {
                queries.push(Query {
                    target: "restored".into(),
                    sql,
                });
            }
            progress.scan_started("verifying the restored table");
            let values = scan_restored(job, &run, &plan).await;
            progress.scan_finished();
            match values {
                Ok((table, values)) => {
                    rows = values
                        .get(&verify::plan::row_count())
                        .and_then(verify::evaluate::as_f64)
                        .map(|n| n as u64);
                    if let (Some(rows), Some(logged)) = (rows, info.logged_rows())
                        && rows != logged
                    {
                        report.checks[0].fail(format!(
                            "the scan read {rows} rows but the log promises {logged} (its files' numRecords less the rows their deletion vectors remove)"
                        ));
                    }
                    Some((table, values))
                }
                Err(message) => {
                    let bad = damage::find_undecodable(&run, &info.files).await;
                    let detail = if bad.is_empty() {
                        message
                    } else {
                        format!(
                            "{} data file(s) do not decode: {}",
                            bad.len(),
                            restore::name_some(
                                bad.iter().map(|b| format!("{} ({})", b.path, b.reason))
                            )
                        )
                    };
                    report.checks[0].fail(format!("the restored data cannot be read: {detail}"));
                    None
                }
            }
        }
        _ => None,
    };
    let verify_seconds = elapsed_seconds(verify_started);
    let rto_seconds = ((restored.seconds + verify_seconds) * 1000.0).round() / 1000.0;

    // 4. Compare with the source at the snapshot's version.
    let compare_started = Instant::now();
    let source_dir = ReadOnlyDir::new(&job.source);
    let source = match &scanned {
        Some((restored_table, _)) => {
            let sides = Sides {
                snapshot: &snapshot,
                restored: restored_table,
                source_dir: &source_dir,
            };
            source_side(job, sides, sampling, report, &mut queries).await?
        }
        None => SourceSide::not_read(),
    };
    match (&scanned, &structure.table) {
        (Some((restored_table, values)), Some(info)) => {
            context.source_columns = source.typed_columns.clone();
            let ctx = scan::session();
            let registered = table::provider(&ctx, restored_table)
                .await
                .and_then(|provider| {
                    ctx.register_table(verify::plan::TABLE, provider)
                        .map(|_| ())
                });
            let custom = custom_queries(&ctx, job, &mut queries).await;
            let mut results =
                verify::evaluate(&job.suite, values, &source.values, &context, &custom);
            if registered.is_ok() {
                add_examples(&ctx, job, &context, &mut results, &mut queries).await;
            }
            report.checks.extend(results);
            report.checks.push(verify::compare_fingerprints(
                values,
                &info.columns,
                &source.values,
            ));
            let restored_sample = sampling.and_then(|(_, fraction)| {
                SampleCollector::new(&info.columns, &job.compare.as_ref()?.key, fraction)
                    .rows(values)
            });
            if let (Some((spec, fraction)), Some(restored_sample), Some(source_sample)) =
                (sampling, &restored_sample, &source.sample)
            {
                let check = sample_diff(
                    job,
                    spec,
                    fraction,
                    (restored_sample, source_sample),
                    source.mode,
                    report,
                    &mut queries,
                )
                .await;
                report.checks.push(check);
            }
        }
        _ => {
            let reason = "not evaluated: the restored table could not be scanned (see `structure`)";
            let builtin = [("fingerprint", "fingerprint")]
                .into_iter()
                .chain(job.compare.as_ref().map(|_| ("sample", "sample_diff")));
            let skipped = job
                .suite
                .checks
                .iter()
                .map(|c| (c.id.as_str(), c.kind.name(), c.severity))
                .chain(builtin.map(|(id, kind)| (id, kind, Severity::Fail)));
            for (id, kind, severity) in skipped {
                let mut r = CheckResult::new(id, kind, severity);
                r.outcome = CheckOutcome::Skipped;
                r.message = Some(reason.into());
                report.checks.push(r);
            }
        }
    }
    let compare_seconds = (!matches!(source.values, SourceValues::NotNeeded))
        .then(|| elapsed_seconds(compare_started));
    report.verify = Some(VerifyEvidence {
        seconds: verify_seconds,
        structure: strip_table(structure),
        rows,
        queries,
        compare_seconds,
    });

    // 5. Measure RPO and RTO against the objectives.
    measure(
        job,
        &snapshot,
        &source_dir,
        clock,
        rto_seconds,
        restored.seconds,
        verify_seconds,
        report,
    )
    .await;

    // Findings: every check that did not hold.
    let findings: Vec<Finding> = report
        .checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Failed)
        .map(|c| Finding {
            check: c.id.clone(),
            severity: c.severity,
            message: c.message.clone().unwrap_or_default(),
        })
        .collect();
    report.findings.splice(0..0, findings);
    Ok(())
}

/// Refuses a table whose protocol declares a reader feature this version cannot verify: the
/// drill ends as `error`, never `passed` or `failed`.
fn check_features(job: &Job, info: &table::TableInfo) -> Result<(), DrillError> {
    refuse_features(job, info.unsupported_features())
}

/// An error naming the reader features this version cannot verify, if there are any.
fn refuse_features(job: &Job, unsupported: Vec<String>) -> Result<(), DrillError> {
    if unsupported.is_empty() {
        return Ok(());
    }
    Err(DrillError::UnsupportedFeatures {
        job: job.name.clone(),
        features: unsupported.join(", "),
    })
}

/// Refuses a suite that reads a column the table does not have, before anything is written.
fn check_columns(job: &Job, columns: &[(String, String)]) -> Result<(), DrillError> {
    let mut problems: Vec<String> = Vec::new();
    if let Some(spec) = &job.compare {
        for column in &spec.key {
            if !columns.iter().any(|(c, _)| c == column) {
                let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
                problems.push(format!(
                    "{}: compare.key names column `{column}`, which the table does not have; its columns are: {}",
                    job.name,
                    names.join(", ")
                ));
            }
        }
    }
    problems.extend(
        job.suite
            .mismatches(&job.suite_path, columns)
            .iter()
            .map(|p| p.to_string()),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DrillError::SuiteDoesNotFit {
            job: job.name.clone(),
            problems: problems.join("\n"),
        })
    }
}

async fn scan_restored(
    job: &Job,
    run: &RunSandbox,
    plan: &verify::plan::AggregatePlan,
) -> Result<(DeltaTable, verify::plan::ScanValues), String> {
    let table = table::open_run(run).await.map_err(|e| {
        DrillError::Restored {
            job: job.name.clone(),
            message: e.to_string(),
        }
        .to_string()
    })?;
    let values = scan::run(plan, &table).await.map_err(|e| e.to_string())?;
    Ok((table, values))
}

/// What was read of the source: values for the checks, and the table a sample diff joins with.
struct SourceSide {
    values: SourceValues,
    /// The source's rows in the keyed sample (at the snapshot's version, or current for the
    /// append-only fallback), collected during its one scan.
    sample: Option<RecordBatch>,
    /// The source's columns with their Delta types at the snapshot's version.
    typed_columns: Option<Vec<(String, String)>>,
    mode: DiffMode,
}

impl SourceSide {
    fn not_read() -> Self {
        SourceSide {
            values: SourceValues::NotNeeded,
            sample: None,
            typed_columns: None,
            mode: DiffMode::Exact,
        }
    }
}

/// The three tables a comparison involves.
struct Sides<'a> {
    snapshot: &'a Snapshot,
    restored: &'a DeltaTable,
    source_dir: &'a ReadOnlyDir,
}

/// Opens the source at the snapshot's version, checks it is the same table with the same
/// history, and runs the source-side scan. A source that cannot be read at all is an error; a
/// version its log or files no longer hold is a `warn` finding and the job's fallback; a
/// snapshot that does not belong to the source's history is a `fail` finding.
async fn source_side(
    job: &Job,
    sides: Sides<'_>,
    sampling: Option<(&CompareSpec, f64)>,
    report: &mut DrillReport,
    queries: &mut Vec<Query>,
) -> Result<SourceSide, DrillError> {
    let Sides {
        snapshot,
        restored,
        source_dir,
    } = sides;
    let Some(version) = snapshot.version() else {
        return Ok(SourceSide::not_read());
    };
    let cannot_read = |reason: String| DrillError::Source {
        job: job.name.clone(),
        location: job.source.to_string(),
        reason,
    };
    let current = table::open_dir(source_dir, None)
        .await
        .map_err(|e| cannot_read(table::explain_log_error(&e)))?;
    let current_version = current.version().unwrap_or_default();
    if version > current_version {
        return Ok(foreign_history(
            job,
            report,
            format!(
                "the snapshot holds version {version} of the table but the source {} is at version {current_version}: the backup does not belong to this source's history (a copy of another environment's table, or the source was recreated)",
                job.source
            ),
        ));
    }
    // The commit at the snapshot's version, as the source's log holds it (absent once the log
    // was cleaned past it).
    let source_commit = current
        .log_store()
        .read_commit_entry(version as _)
        .await
        .map_err(|e| cannot_read(e.to_string()))?;
    let at_version = match table::open_dir(source_dir, Some(version)).await {
        Ok(t) => table::describe(&t).await.map(|info| (t, info)),
        Err(e) => Err(e),
    };
    let (source, source_info) = match at_version {
        Ok(found) => found,
        Err(e) if source_commit.is_none() => {
            let reason = format!(
                "{} (the source's log no longer holds this version: its time-travel window is shorter than the snapshot's age)",
                table::explain_log_error(&e)
            );
            return Ok(
                unavailable(job, source_dir, version, reason, sampling, report, queries).await,
            );
        }
        Err(e) => return Err(cannot_read(table::explain_log_error(&e))),
    };
    if let Ok(snap) = &snapshot.table
        && !snap.table_id.is_empty()
        && snap.table_id != source_info.table_id
    {
        return Ok(foreign_history(
            job,
            report,
            format!(
                "the snapshot is a copy of Delta table {} but the source {} is table {}: the backup holds a different table",
                snap.table_id, job.source, source_info.table_id
            ),
        ));
    }
    // A copy holds the source's own commit files: the same bytes at the same version. When they
    // differ, the contents are still compared, so the finding says which rows differ too.
    if !matches!(snapshot.method, RestoreMethod::Rewrite { .. })
        && let Some(source_commit) = &source_commit
        && let Ok(Some(restored_commit)) =
            restored.log_store().read_commit_entry(version as _).await
        && restored_commit != *source_commit
    {
        report.findings.push(Finding {
            check: "source".into(),
            severity: Severity::Fail,
            message: format!(
                "the snapshot's commit {version:020}.json differs from the source's commit of that version (SHA-256 {} against {}): the backup's log was altered, or the backup does not belong to this source's history",
                &crate::primitives::hash::sha256_hex(&restored_commit)[..12],
                &crate::primitives::hash::sha256_hex(source_commit)[..12]
            ),
        });
    }
    let mut plan = verify::plan_source(&job.suite, &source_info.columns);
    let collect = sampling
        .map(|(spec, fraction)| SampleCollector::new(&source_info.columns, &spec.key, fraction));
    if let Some(collector) = &collect {
        plan.add(collector.expr.clone());
    }
    queries.push(Query {
        target: "source".into(),
        sql: plan.sql(),
    });
    match scan::run(&plan, &source).await {
        Ok(values) => Ok(SourceSide {
            sample: collect.and_then(|collector| collector.rows(&values)),
            values: SourceValues::At {
                version,
                values,
                columns: source_info.columns.clone(),
            },
            typed_columns: Some(source_info.typed_columns()),
            mode: DiffMode::Exact,
        }),
        // Data files of the version removed (VACUUM): the window again.
        Err(e) if table::is_not_found(&e.to_string()) => {
            let reason = format!(
                "{e} (the source's files of this version were removed, e.g. by VACUUM: its time-travel window is shorter than the snapshot's age)"
            );
            Ok(unavailable(job, source_dir, version, reason, sampling, report, queries).await)
        }
        Err(e) => Err(cannot_read(e.to_string())),
    }
}

/// The snapshot does not belong to the source's history: a `fail` finding, and no comparison.
fn foreign_history(job: &Job, report: &mut DrillReport, message: String) -> SourceSide {
    tracing::debug!(job = %job.name, "{message}");
    report.findings.push(Finding {
        check: "source".into(),
        severity: Severity::Fail,
        message: message.clone(),
    });
    SourceSide {
        values: SourceValues::Unavailable(message),
        sample: None,
        typed_columns: None,
        mode: DiffMode::Exact,
    }
}

/// The source cannot be read at the snapshot's version: a `warn` finding, and the job's
/// fallback for the sample diff.
async fn unavailable(
    job: &Job,
    source_dir: &ReadOnlyDir,
    version: u64,
    reason: String,
    sampling: Option<(&CompareSpec, f64)>,
    report: &mut DrillReport,
    queries: &mut Vec<Query>,
) -> SourceSide {
    let current = match sampling {
        Some((spec, fraction)) if spec.fallback == Fallback::AppendOnly => {
            current_sample(source_dir, spec, fraction, queries).await
        }
        _ => None,
    };
    let then = if current.is_some() {
        "the sample diff checks that restored rows exist unchanged in the current source (fallback append_only)"
    } else {
        "the comparison with the source was skipped (fallback none)"
    };
    report.findings.push(Finding {
        check: "source".into(),
        severity: Severity::Warn,
        message: format!(
            "the source {} cannot be read at version {version}: {reason}; checks that compare with the source were judged on their bounds only, and {then}",
            job.source
        ),
    });
    SourceSide {
        values: SourceValues::Unavailable(reason),
        sample: current,
        typed_columns: None,
        mode: DiffMode::AppendOnly,
    }
}

/// The keyed sample of the source as it is now, for the append-only fallback.
async fn current_sample(
    source_dir: &ReadOnlyDir,
    spec: &CompareSpec,
    fraction: f64,
    queries: &mut Vec<Query>,
) -> Option<RecordBatch> {
    let current = table::open_dir(source_dir, None).await.ok()?;
    let info = table::describe(&current).await.ok()?;
    let collector = SampleCollector::new(&info.columns, &spec.key, fraction);
    let mut plan = verify::plan::AggregatePlan::default();
    plan.add(collector.expr.clone());
    queries.push(Query {
        target: "source".into(),
        sql: plan.sql(),
    });
    let values = scan::run(&plan, &current).await.ok()?;
    collector.rows(&values)
}

/// Runs each `custom_sql` check's query on its own over the restored table.
async fn custom_queries(
    ctx: &SessionContext,
    job: &Job,
    queries: &mut Vec<Query>,
) -> Vec<(String, Result<ScalarValue, String>)> {
    let mut out = Vec::new();
    for check in &job.suite.checks {
        if let CheckKind::CustomSql { sql, .. } = &check.kind {
            queries.push(Query {
                target: "custom".into(),
                sql: sql.clone(),
            });
            out.push((
                check.id.clone(),
                scan::single_value(ctx, sql)
                    .await
                    .map_err(|e| e.to_string()),
            ));
        }
    }
    out
}

/// Fetches up to 20 example rows for each failed row-level check, after it failed.
async fn add_examples(
    ctx: &SessionContext,
    job: &Job,
    context: &verify::Context,
    results: &mut [CheckResult],
    queries: &mut Vec<Query>,
) {
    for (check, result) in job.suite.checks.iter().zip(results.iter_mut()) {
        if result.outcome != CheckOutcome::Failed {
            continue;
        }
        let Some(filter) = verify::evaluate::example_filter(&check.kind, context) else {
            continue;
        };
        let sql = format!(
            "SELECT * FROM {} WHERE {filter} LIMIT {}",
            verify::plan::TABLE,
            sample::EXAMPLES
        );
        queries.push(Query {
            target: "examples".into(),
            sql: sql.clone(),
        });
        match scan::rows_as_json(ctx, &sql, &job.redact).await {
            Ok(rows) => result.examples = rows,
            Err(e) => {
                tracing::warn!(job = %job.name, check = %check.id, error = %e, "could not fetch example rows")
            }
        }
    }
}

/// Joins the two sides' keyed samples and turns the diff into the `sample` check.
async fn sample_diff(
    job: &Job,
    spec: &CompareSpec,
    fraction: f64,
    (restored, source): (&RecordBatch, &RecordBatch),
    mode: DiffMode,
    report: &mut DrillReport,
    queries: &mut Vec<Query>,
) -> CheckResult {
    let mut check = CheckResult::new("sample", "sample_diff", Severity::Fail);
    let source_columns: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let columns: Vec<String> = restored
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| source_columns.contains(c) && !spec.key.contains(c))
        .collect();
    let q = sample::queries(spec, &columns, fraction, mode, "t", "src");
    queries.push(Query {
        target: "compare".into(),
        sql: q.counts.clone(),
    });
    let result = async {
        let ctx = scan::session();
        for (name, batch) in [(verify::plan::TABLE, restored), ("src", source)] {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
            ctx.register_table(name, std::sync::Arc::new(table))?;
        }
        sample::run(&ctx, spec, &columns, fraction, mode, &job.redact, &q).await
    }
    .await;
    match result {
        Ok(diff) => {
            if !diff.examples.is_empty() {
                queries.push(Query {
                    target: "compare".into(),
                    sql: q.examples.clone(),
                });
            }
            check.observed = json!({
                "restored_rows": diff.restored_rows,
                "source_rows": diff.source_rows,
                "missing": diff.missing,
                "extra": diff.extra,
                "changed": diff.changed,
            });
            check.expected = json!({ "mismatched_rows": 0, "mode": mode });
            if diff.mismatched() > 0 {
                let by_column: Vec<String> = diff
                    .changed_by_column
                    .iter()
                    .map(|(c, n)| format!("{c}: {n}"))
                    .collect();
                let against = match mode {
                    DiffMode::Exact => "the source at the snapshot's version",
                    DiffMode::AppendOnly => "the current source",
                };
                let mut parts = match mode {
                    DiffMode::Exact => vec![
                        format!("{} missing from the restore", diff.missing),
                        format!("{} extra", diff.extra),
                    ],
                    DiffMode::AppendOnly => {
                        vec![format!("{} restored rows not in the source", diff.extra)]
                    }
                };
                let changed = if by_column.is_empty() {
                    format!("{} changed", diff.changed)
                } else {
                    format!("{} changed ({})", diff.changed, by_column.join(", "))
                };
                parts.push(changed);
                check.fail(format!(
                    "a {:.4}% sample by key ({}) of {} restored and {} source rows differs from {against}: {}; up to {} examples are in the report",
                    fraction * 100.0,
                    spec.key.join(", "),
                    diff.restored_rows,
                    diff.source_rows,
                    parts.join(", "),
                    sample::EXAMPLES
                ));
            }
            report.compare = Some(diff);
        }
        Err(e) => {
            check.outcome = CheckOutcome::Skipped;
            check.message = Some(format!("the sample diff could not run: {e}"));
            report.findings.push(Finding {
                check: "sample".into(),
                severity: Severity::Warn,
                message: format!("the sample diff could not run: {e}"),
            });
        }
    }
    check
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    job: &Job,
    snapshot: &Snapshot,
    source_dir: &ReadOnlyDir,
    clock: &dyn Clock,
    rto_seconds: f64,
    restore_seconds: f64,
    verify_seconds: f64,
    report: &mut DrillReport,
) {
    let objectives = job.objectives;
    // RPO: the source's newest commit minus the snapshot's newest commit.
    let snapshot_time = snapshot.commit_timestamp();
    let source_newest = table::newest_commit(source_dir).await;
    let (reference, basis): (DateTime<Utc>, &str) = match &source_newest {
        Ok((_, Some(t))) => (*t, "source_newest_commit"),
        _ => (clock.now(), "now"),
    };
    let mut rpo = CheckResult::new("rpo", "rpo", Severity::Fail);
    rpo.expected = json!({ "max_seconds": objectives.rpo.as_secs_f64() });
    match snapshot_time {
        Some(t) => {
            let seconds = ((reference - t).num_milliseconds().max(0)) as f64 / 1000.0;
            report.rpo_seconds = Some(seconds);
            report.rpo_basis = Some(basis.into());
            rpo.observed = json!({ "seconds": seconds, "basis": basis });
            if basis == "now" {
                let reason = match &source_newest {
                    Err(e) => e.to_string(),
                    Ok(_) => "the source's newest commit has no timestamp".into(),
                };
                report.findings.push(Finding {
                    check: "rpo".into(),
                    severity: Severity::Warn,
                    message: format!(
                        "the source's newest commit could not be read ({reason}); RPO measured as now minus the snapshot's newest commit"
                    ),
                });
            }
            if seconds > objectives.rpo.as_secs_f64() {
                rpo.fail(format!(
                    "a restore of this snapshot would lose {} of data (newest commit {}), above the RPO objective of {}",
                    format_duration(std::time::Duration::from_secs_f64(seconds)),
                    t.format("%Y-%m-%d %H:%M:%S UTC"),
                    format_duration(objectives.rpo)
                ));
            }
        }
        None => {
            rpo.outcome = CheckOutcome::Skipped;
            rpo.message = Some("the snapshot's newest commit time is unknown".into());
        }
    }
    report.checks.push(rpo);

    // RTO: restore plus verification of the restored data.
    let mut rto = CheckResult::new("rto", "rto", Severity::Fail);
    rto.expected = json!({ "max_seconds": objectives.rto.as_secs_f64() });
    rto.observed = json!({ "seconds": rto_seconds, "restore_seconds": restore_seconds, "verify_seconds": verify_seconds });
    report.rto_seconds = Some(rto_seconds);
    if rto_seconds > objectives.rto.as_secs_f64() {
        rto.fail(format!(
            "restore and verification took {}, above the RTO objective of {}",
            format_duration(std::time::Duration::from_secs_f64(rto_seconds)),
            format_duration(objectives.rto)
        ));
    }
    report.checks.push(rto);
}

fn strip_table(mut s: StructureReport) -> StructureReport {
    s.table = None;
    s
}

/// Removes the sandboxes no drill needs any more (see [`SandboxRoot::sweep`]): those of drills
/// whose process died, and failed drills' sandboxes older than `keep_failed_sandbox`. Each is
/// logged; problems are logged and do not stop the caller.
pub async fn sweep_sandboxes(jobs: &[Job], now: DateTime<Utc>) {
    for job in jobs {
        match SandboxRoot::new(&job.sandbox)
            .sweep(&job.name, now, job.keep_failed_sandbox)
            .await
        {
            Ok(removed) => {
                for swept in removed {
                    tracing::info!(job = %job.name, sandbox = %swept.location, reason = swept.reason.as_str(), "removed a sandbox");
                }
            }
            Err(e) => {
                tracing::warn!(job = %job.name, error = %e, "could not sweep the job's sandboxes")
            }
        }
    }
}

/// Logs the end of a drill: one line with its job, run id, outcome and durations.
pub fn log_finished(report: &DrillReport) {
    tracing::info!(
        job = %report.job,
        run_id = %report.run_id,
        outcome = report.outcome.as_str(),
        findings = report.findings.len(),
        restore_seconds = report.restore.as_ref().map(|r| r.seconds),
        verify_seconds = report.verify.as_ref().map(|v| v.seconds),
        rpo_seconds = report.rpo_seconds,
        rto_seconds = report.rto_seconds,
        seconds = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0,
        error = report.error.as_deref(),
        "drill finished"
    );
}

/// Why a drill that outlived its job's `timeout` ended as `error`.
pub fn timeout_reason(job: &Job) -> String {
    format!(
        "the drill did not finish within its timeout of {}; it was cancelled and its sandbox removed (raise the job's `timeout` if drills of this size need longer)",
        format_duration(job.timeout)
    )
}

/// The message a panic carried, for the record of the drill it ended.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
