//! The compare phase: the source opened at the snapshot's version, checked to be the same table
//! with the same history, and scanned once for the suite's source values and the keyed sample
//! (or, when that version is gone, the job's fallback); then the suite judged against its bounds
//! and the source, the fingerprints compared and the keyed samples diffed.

use deltalake::arrow::array::RecordBatch;

use super::{Drill, DrillError, Finding, Scanned};
use crate::kinds::equality::{Equality, EqualityGroup};
use crate::kinds::{Snapshot, SourceAt, StructureReport, TableColumns, TableInfo};
use crate::verify::plan::{AggregatePlan, ScanValues};
use crate::verify::sample::{CompareSpec, DiffMode, Fallback, SampleCollector, SampleSize};
use crate::verify::suite::{Severity, Suite};
use crate::verify::{self, CheckOutcome, CheckResult, SourceValues, diff, queries, sample, scan};

/// How long before a dump's time a row's change may still be in flight: rows changed then are
/// not compared.
const IN_FLIGHT: chrono::Duration = chrono::Duration::seconds(60);

/// The source of `job` could not be read: an error, never a pass.
fn source_error(job: &crate::config::Job, reason: String) -> DrillError {
    DrillError::Source {
        job: job.name.clone(),
        location: job.source.to_string(),
        reason,
    }
}

/// The time, in Unix seconds, as of which a dump taken at `taken` holds every row: rows changed
/// later may be missing from it.
fn cutoff(taken: chrono::DateTime<chrono::Utc>) -> f64 {
    (taken - IN_FLIGHT).timestamp_millis() as f64 / 1000.0
}

/// What was read of the source: values for the checks, and the table a sample diff joins with.
pub(super) struct SourceSide {
    pub(super) values: SourceValues,
    /// The source's rows in the keyed sample (at the snapshot's version, or current for the
    /// append-only fallback), collected during its one scan.
    pub(super) sample: Option<RecordBatch>,
    /// The source's columns with their Delta types at the snapshot's version.
    pub(super) typed_columns: Option<Vec<(String, String)>>,
    pub(super) mode: DiffMode,
}

impl SourceSide {
    pub(super) fn not_read() -> Self {
        SourceSide {
            values: SourceValues::NotNeeded,
            sample: None,
            typed_columns: None,
            mode: DiffMode::Exact,
        }
    }
}

impl Drill<'_> {
    /// Compare: read the source at the snapshot's version, then judge the suite against its
    /// bounds and the source, compare the fingerprints and diff the keyed samples. Without a
    /// scan of the restored table every check is skipped. Returns whether the source was read.
    pub(super) async fn compare(
        &mut self,
        snapshot: &Snapshot,
        structure: &StructureReport,
        scanned: Option<&Scanned>,
        context: &mut verify::Context,
    ) -> Result<bool, DrillError> {
        let job = self.job;
        let (Some(scanned), Some(info)) = (scanned, &structure.table) else {
            self.skip_checks();
            return Ok(false);
        };
        let sampling = self.sampling(context);
        let source = match &self.options.into {
            Some(_) => SourceSide {
                values: SourceValues::Unavailable(
                    "a restore is compared with the drill that passed its snapshot".into(),
                ),
                ..SourceSide::not_read()
            },
            None => {
                self.source_side(snapshot, sampling, &scanned.values)
                    .await?
            }
        };
        context.source_columns = source.typed_columns.clone();
        let ctx = &scanned.ctx;
        let (custom, statements) = queries::custom_queries(ctx, &job.suite).await;
        for sql in statements {
            self.query("custom", sql);
        }
        let mut results = verify::evaluate(
            &job.suite,
            &scanned.values,
            &source.values,
            context,
            &custom,
        );
        let statements = queries::add_examples(
            &job.name,
            ctx,
            &job.suite,
            context,
            &mut results,
            &job.redact,
        )
        .await;
        for sql in statements {
            self.query("examples", sql);
        }
        self.report.checks.extend(results);
        self.report.checks.push(match &self.options.into {
            Some(into) => verify::compare_with_drill(
                "fingerprint",
                &scanned.values,
                &info.columns,
                into.drilled("fingerprint"),
            ),
            None => verify::compare_fingerprints(&scanned.values, &info.columns, &source.values),
        });
        self.diff_samples(sampling, &scanned.values, &info.columns, &source)
            .await;
        Ok(self.options.into.is_none() && !matches!(source.values, SourceValues::NotNeeded))
    }

    /// The `sample` check, when the job compares a keyed sample and both sides collected one.
    pub(super) async fn diff_samples(
        &mut self,
        sampling: Option<(&CompareSpec, f64)>,
        values: &ScanValues,
        columns: &[String],
        source: &SourceSide,
    ) {
        let Some((spec, fraction)) = sampling else {
            return;
        };
        let restored = SampleCollector::new(columns, &spec.key, fraction).rows(values);
        let (Some(restored), Some(source_sample)) = (&restored, &source.sample) else {
            return;
        };
        let outcome = diff::sample_check(
            spec,
            fraction,
            (restored, source_sample),
            source.mode,
            &self.job.redact,
        )
        .await;
        self.record_sample(outcome);
    }

    /// Records the `sample` check: its statements, its diff, and why it could not run.
    fn record_sample(&mut self, outcome: diff::SampleCheck) {
        for sql in outcome.queries {
            self.query("compare", sql);
        }
        if let Some(message) = outcome.warning {
            self.report.findings.push(Finding {
                check: "sample".into(),
                severity: Severity::Warn,
                message,
            });
        }
        if outcome.diff.is_some() {
            self.report.compare = outcome.diff;
        }
        self.report.checks.push(outcome.check);
    }

    /// Every check of the suite, the fingerprint and the sample diff, skipped: the restored
    /// table could not be scanned.
    pub(super) fn skip_checks(&mut self) {
        let job = self.job;
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
            self.report.checks.push(r);
        }
    }

    /// Compare a restored database's structure with the source's as it is now: the `source`
    /// check fails on each difference of severity `fail`; those of severity `warn` are warnings.
    /// A source that cannot be read is an error: never a pass.
    pub(super) async fn compare_structure(
        &mut self,
        snapshot: &Snapshot,
    ) -> Result<(), DrillError> {
        let job = self.job;
        let differences = self
            .kind
            .compare_structure(snapshot)
            .await
            .map_err(|reason| source_error(job, reason))?;
        let mut check = CheckResult::new("source", "source_schema", Severity::Fail);
        let failing: Vec<&str> = differences
            .iter()
            .filter(|(s, _)| *s == Severity::Fail)
            .map(|(_, m)| m.as_str())
            .collect();
        check.observed = serde_json::json!({ "differences": differences.len() });
        check.expected = serde_json::json!({ "differences": 0 });
        if !failing.is_empty() {
            check.fail(failing.join("; "));
        }
        self.report.checks.push(check);
        self.report.findings.extend(
            differences
                .into_iter()
                .filter(|(s, _)| *s == Severity::Warn)
                .map(|(_, message)| Finding {
                    check: "source".into(),
                    severity: Severity::Warn,
                    message,
                }),
        );
        Ok(())
    }

    /// Compare a keyed sample of the job's `compare.table` with the live source's rows as of
    /// the snapshot's time (`compare.as_of`): the `sample` check. Rows whose `as_of` is within
    /// [`IN_FLIGHT`] before the snapshot's time are taken as changed after it: a transaction
    /// that began before the dump may commit after its snapshot. A source that cannot be read
    /// is an error.
    pub(super) async fn compare_rows(&mut self, snapshot: &Snapshot) -> Result<(), DrillError> {
        let job = self.job;
        let Some(spec) = &job.compare else {
            return Ok(());
        };
        let (Some(table), Some(as_of), Some(taken)) = (
            spec.table.as_deref(),
            spec.as_of.as_deref(),
            snapshot.commit_timestamp(),
        ) else {
            return Ok(());
        };
        let ctx = scan::session();
        if let Err(reason) = self
            .kind
            .register_restored(self.run(), Some(table), &ctx)
            .await
        {
            let mut check = CheckResult::new("sample", "sample_diff", Severity::Fail);
            check.fail(format!("the restored table cannot be compared: {reason}"));
            self.report.checks.push(check);
            return Ok(());
        }
        let source_columns: Vec<String> = self
            .kind
            .register_source(table, crate::verify::diff::SOURCE, &ctx)
            .await
            .map(|columns| columns.into_iter().map(|(name, _)| name).collect())
            .map_err(|reason| source_error(job, reason))?;
        let restored_columns: Vec<String> = match ctx.table(crate::verify::plan::TABLE).await {
            Ok(t) => t
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        let columns: Vec<String> = restored_columns
            .iter()
            .filter(|c| source_columns.contains(c) && !spec.key.contains(c))
            .cloned()
            .collect();
        // A sample sized in rows needs the table's row count: one more read of the restored
        // table, only then.
        let rows = match spec.sample {
            SampleSize::Rows(_) => scan::single_value(
                &ctx,
                &format!("SELECT count(*) FROM {}", crate::verify::plan::TABLE),
            )
            .await
            .ok()
            .and_then(|v| crate::verify::values::as_f64(&v))
            .map(|n| n as u64),
            SampleSize::Fraction(_) => None,
        };
        let fraction = spec.fraction(rows);
        let cutoff = cutoff(taken);
        let outcome =
            diff::live_check(&ctx, spec, as_of, cutoff, &columns, fraction, &job.redact).await;
        self.record_sample(outcome);
        Ok(())
    }

    /// The live source's values for the checks of one restored table of a database that
    /// compare with the source (`equals_source`), and its fingerprint: the source's table read
    /// once, read-only, as it is now. When the job's `compare` gives this table's `as_of` and
    /// rows of the source changed after the dump, an exact comparison cannot hold: the checks
    /// are judged on their bounds only, with a warning. A source that cannot be read is an
    /// error. Returns the values and the source table's columns (name, type).
    pub(super) async fn live_source(
        &mut self,
        snapshot: &Snapshot,
        table: &TableColumns,
        suite: &Suite,
    ) -> Result<(SourceValues, Vec<(String, String)>), DrillError> {
        let job = self.job;
        let cannot_read = |reason| source_error(job, reason);
        let ctx = scan::session();
        let columns = self
            .kind
            .register_source(&table.name, crate::verify::plan::TABLE, &ctx)
            .await
            .map_err(cannot_read)?;
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        let mut plan = verify::plan_source(suite, &names);
        let as_of = job.compare.as_ref().and_then(|spec| {
            let named = TableColumns::find(std::slice::from_ref(table), spec.table.as_deref()?);
            named.and(spec.as_of.as_deref())
        });
        let changed = match (as_of, snapshot.commit_timestamp()) {
            (Some(as_of), Some(taken)) if names.iter().any(|n| n == as_of) => Some((
                as_of,
                plan.add(format!(
                    "sum(CAST({} AS BIGINT))",
                    sample::changed_after(as_of, cutoff(taken))
                )),
            )),
            _ => None,
        };
        self.query(&format!("source {}", table.name), plan.sql());
        let values = scan::run(&plan, &ctx)
            .await
            .map_err(|e| cannot_read(e.to_string()))?;
        let later = changed
            .as_ref()
            .and_then(|(_, expr)| values.get(expr))
            .and_then(crate::verify::values::as_f64)
            .unwrap_or(0.0);
        if let Some((as_of, _)) = changed
            && later > 0.0
        {
            let reason = format!(
                "{later} rows of the source's table {} have `{as_of}` later than the dump (less a minute in flight): the table changed since, so checks comparing with the source were judged on their bounds only and the rows are compared as of the dump by the `sample` check",
                table.name
            );
            self.report.findings.push(Finding {
                check: "source".into(),
                severity: Severity::Warn,
                message: reason.clone(),
            });
            return Ok((SourceValues::Unavailable(reason), columns));
        }
        Ok((
            SourceValues::At {
                version: None,
                values,
                columns: names,
            },
            columns,
        ))
    }

    /// Opens the source at the snapshot's version through the job's kind and runs the
    /// source-side scan. A source that cannot be read at all is an error; a version it no
    /// longer holds is a `warn` finding and the job's fallback; a snapshot that does not belong
    /// to the source's history, or whose record of the version was altered, is a `fail` finding.
    pub(super) async fn source_side(
        &mut self,
        snapshot: &Snapshot,
        sampling: Option<(&CompareSpec, f64)>,
        restored: &ScanValues,
    ) -> Result<SourceSide, DrillError> {
        let job = self.job;
        let cannot_read = |reason| source_error(job, reason);
        let ctx = scan::session();
        let opened = self
            .kind
            .open_source(snapshot, self.run(), &ctx)
            .await
            .map_err(cannot_read)?;
        let (version, info, equality) = match opened {
            SourceAt::NoVersion => return Ok(SourceSide::not_read()),
            SourceAt::Foreign(message) => return Ok(self.foreign_history(message)),
            SourceAt::Gone { version, reason } => {
                return Ok(self.unavailable(version, reason, sampling).await);
            }
            SourceAt::Open {
                version,
                info,
                altered,
                equality,
            } => {
                if let Some(message) = altered {
                    self.report.findings.push(Finding {
                        check: "source".into(),
                        severity: Severity::Fail,
                        message,
                    });
                }
                (version, info, equality)
            }
        };
        let mut plan = verify::plan_source(&job.suite, &info.columns);
        let collect = sampling
            .map(|(spec, fraction)| SampleCollector::new(&info.columns, &spec.key, fraction));
        if let Some(collector) = &collect {
            plan.add(collector.expr.clone());
        }
        let proven = match equality {
            Some(equality) => self.proven_values(*equality, &plan, restored, &info).await,
            None => None,
        };
        let values = match proven {
            Some(values) => values,
            None => {
                self.query("source", plan.sql());
                match scan::run(&plan, &ctx).await {
                    Ok(values) => values,
                    Err(e) => {
                        return match self.kind.gone(&e.to_string()) {
                            Some(reason) => Ok(self.unavailable(version, reason, sampling).await),
                            None => Err(cannot_read(e.to_string())),
                        };
                    }
                }
            }
        };
        Ok(SourceSide {
            sample: collect.and_then(|collector| collector.rows(&values)),
            values: SourceValues::At {
                version: Some(version),
                values,
                columns: info.columns.clone(),
            },
            typed_columns: Some(info.typed_columns()),
            mode: DiffMode::Exact,
        })
    }

    /// The source's values of `plan` without decoding what the bytes proved, and the report's
    /// account of it: the restored scan's own values when every file of the copy is identical
    /// to the source's; else, when the plan merges from parts, the restored values with the
    /// part not proven replaced by the source's (both parts decoded, nothing else). `None`:
    /// the whole source is to be decoded (the report says why).
    async fn proven_values(
        &mut self,
        equality: Equality,
        plan: &AggregatePlan,
        restored: &ScanValues,
        info: &TableInfo,
    ) -> Option<ScanValues> {
        let whole = |why: String| vec![EqualityGroup::decoded(info.files.len(), info.bytes(), why)];
        let proven_files = equality.proven_files();
        let Some(unproven) = equality.unproven else {
            let values = verify::compile::taken_from(plan, restored);
            self.report.source_equality = match values {
                Some(_) => equality.proven,
                None => {
                    whole("the restored scan did not compute every value the source's does".into())
                }
            };
            return values;
        };
        let why = unproven.group.why.clone().unwrap_or_default();
        let (ours, theirs) = match &unproven.parts {
            Some(parts) if verify::compile::merges_from_parts(plan) => parts,
            Some(_) => {
                self.report.source_equality = whole(format!(
                    "{why}; a check comparing a statistic with the source, or the keyed sample, does not merge from parts"
                ));
                return None;
            }
            None => {
                self.report.source_equality = if proven_files == 0 {
                    vec![EqualityGroup {
                        files: info.files.len(),
                        bytes: info.bytes(),
                        ..unproven.group
                    }]
                } else {
                    whole(format!("{why}; the table cannot be read in parts"))
                };
                return None;
            }
        };
        self.query("source", plan.sql());
        let parts = futures::try_join!(scan::run(plan, ours), scan::run(plan, theirs));
        let merged = parts.map_err(|e| e.to_string()).and_then(|(out, into)| {
            verify::compile::replace_part(plan, restored, &out, &into)
                .ok_or_else(|| "the parts' values do not merge".to_string())
        });
        match merged {
            Ok(values) => {
                self.report.source_equality = equality.proven;
                self.report.source_equality.push(unproven.group);
                Some(values)
            }
            Err(e) => {
                self.report.source_equality =
                    whole(format!("{why}; reading them apart failed: {e}"));
                None
            }
        }
    }

    /// The snapshot does not belong to the source's history: a `fail` finding, and no comparison.
    pub(super) fn foreign_history(&mut self, message: String) -> SourceSide {
        tracing::debug!(job = %self.job.name, "{message}");
        self.report.findings.push(Finding {
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
    pub(super) async fn unavailable(
        &mut self,
        version: u64,
        reason: String,
        sampling: Option<(&CompareSpec, f64)>,
    ) -> SourceSide {
        let current = match sampling {
            Some((spec, fraction)) if spec.fallback == Fallback::AppendOnly => {
                self.current_sample(spec, fraction).await
            }
            _ => None,
        };
        let then = if current.is_some() {
            "the sample diff checks that restored rows exist unchanged in the current source (fallback append_only)"
        } else {
            "the comparison with the source was skipped (fallback none)"
        };
        self.report.findings.push(Finding {
            check: "source".into(),
            severity: Severity::Warn,
            message: format!(
                "the source {} cannot be read at version {version}: {reason}; checks that compare with the source were judged on their bounds only, and {then}",
                self.job.source
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
    pub(super) async fn current_sample(
        &mut self,
        spec: &CompareSpec,
        fraction: f64,
    ) -> Option<RecordBatch> {
        let ctx = scan::session();
        let columns = self.kind.open_current_source(&ctx).await?;
        let collector = SampleCollector::new(&columns, &spec.key, fraction);
        let mut plan = AggregatePlan::default();
        plan.add(collector.expr.clone());
        self.query("source", plan.sql());
        let values = scan::run(&plan, &ctx).await.ok()?;
        collector.rows(&values)
    }
}
