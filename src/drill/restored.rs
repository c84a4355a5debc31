//! The verify phases: the restored table's structure (its log replays, its files and deletion
//! vectors are whole), then its data in one scan.

use serde_json::json;

use super::{
    Drill, DrillError, Finding, Scanned, SnapshotEvidence, check_columns, check_features,
    refuse_features, scanned_rows,
};
use crate::config::Job;
use crate::kinds::structure::name_some;
use crate::kinds::{Snapshot, StructureReport, TableColumns};
use crate::verify::plan::{AggregatePlan, newest_seconds};
use crate::verify::sample::{CompareSpec, SampleCollector};
use crate::verify::suite::{Severity, Suite};
use crate::verify::{self, CheckResult, SourceValues, queries, scan};

impl<'a> Drill<'a> {
    /// Verify the structure: the restored log replays to the expected version and every file
    /// and deletion vector it names is there, whole. Becomes the `structure` check.
    pub(super) async fn verify_structure(
        &mut self,
        snapshot: &mut Snapshot,
    ) -> Result<StructureReport, DrillError> {
        let job = self.job;
        let structure = self.kind.verify_structure(snapshot, self.run()).await;
        // The restore may have told more of the snapshot (a versioned bucket's table version).
        self.report.snapshot = Some(SnapshotEvidence::from(&*snapshot));
        if let Some(info) = &structure.table {
            check_features(job, info)?;
        }
        // A log that does not replay because it declares a feature this version does not know
        // is not a broken backup.
        refuse_features(job, structure.unknown_declared_features())?;
        let mut check = CheckResult::new("structure", "structure", Severity::Fail);
        if let Some(database) = &structure.database {
            check.observed = json!({
                "restore_errors": database.restore.error_count,
                "dump_tables": database.restore.dump_tables.len(),
                "missing_tables": database.missing_tables,
                "amcheck_completed": database.amcheck.completed,
                "corrupt_relations": database.amcheck.corrupt.len(),
                "sequences_behind": database.sequences_behind.len(),
            });
            check.expected = json!({ "restore_errors": 0, "missing_tables": [], "corrupt_relations": 0, "sequences_behind": 0 });
            if !structure.is_sound() {
                check.fail(structure.problems.join("; "));
            }
            self.report.checks.push(check);
            self.warn_structure(&structure);
            return Ok(structure);
        }
        check.observed = json!({
            "log_replays": structure.log_replays,
            "version": structure.version,
            "files_checked": structure.files_checked,
            "missing_files": structure.missing_files.len(),
            "wrong_size_files": structure.wrong_size_files.len(),
            "deletion_vectors_checked": structure.deletion_vectors_checked,
            "damaged_deletion_vectors": structure.damaged_deletion_vectors.len(),
        });
        check.expected = json!({ "log_replays": true, "version": structure.expected_version, "missing_files": 0, "wrong_size_files": 0, "damaged_deletion_vectors": 0 });
        if !structure.is_sound() {
            check.fail(structure.problems.join("; "));
        }
        self.report.checks.push(check);
        self.warn_structure(&structure);
        Ok(structure)
    }

    fn warn_structure(&mut self, structure: &StructureReport) {
        self.report
            .findings
            .extend(structure.warnings.iter().map(|message| Finding {
                check: "structure".into(),
                severity: Severity::Warn,
                message: message.clone(),
            }));
    }

    /// Verify the data of a restored database: for each table the suite names, its checks in
    /// one scan of it. A table the restored database lacks fails its checks.
    pub(super) async fn verify_tables(
        &mut self,
        snapshot: &Snapshot,
        structure: &StructureReport,
    ) -> Result<(), DrillError> {
        let job = self.job;
        let Some(database) = &structure.database else {
            return Ok(());
        };
        for table in job.suite.tables() {
            let suite = job.suite.for_table(table);
            let Some(found) = TableColumns::find(&database.tables, table) else {
                self.fail_all(
                    &suite,
                    &format!("the restored database has no table {table}"),
                );
                continue;
            };
            let problems = suite.mismatches(&job.suite_path, &found.columns);
            if !problems.is_empty() {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: table {table}: {p}", job.name))
                    .collect();
                return Err(DrillError::SuiteDoesNotFit {
                    job: job.name.clone(),
                    problems: lines.join("\n"),
                });
            }
            let names: Vec<String> = found.columns.iter().map(|(n, _)| n.clone()).collect();
            let mut key_ranges = Vec::new();
            for column in verify::compile::key_columns(&suite) {
                if let Some(range) = self.kind.restored_key_range(&found.name, column).await {
                    key_ranges.push((column.to_string(), range));
                }
            }
            let context = verify::Context {
                commit_time: snapshot.commit_timestamp(),
                logged_rows: None,
                columns: found.columns.clone(),
                source_columns: None,
                key_ranges,
            };
            let plan = verify::plan_restored(&suite, &names, &context);
            for sql in plan.queries() {
                self.query(&format!("restored {}", found.name), sql);
            }
            self.progress
                .scan_started(&format!("verifying the restored table {}", found.name));
            let ctx = scan::session();
            let scanned = match self
                .kind
                .register_restored(self.run(), Some(&found.name), &ctx)
                .await
            {
                Ok(()) => scan::run(&plan, &ctx).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            self.progress.scan_finished();
            let values = match scanned {
                Ok(values) => values,
                Err(e) => {
                    self.fail_all(
                        &suite,
                        &format!("the restored table {} cannot be read: {e}", found.name),
                    );
                    continue;
                }
            };
            let (custom, statements) = queries::custom_queries(&ctx, &suite).await;
            for sql in statements {
                self.query(&format!("custom {}", found.name), sql);
            }
            let compares = suite.checks.iter().any(|c| c.kind.equals_source());
            let (source, source_columns) = if self.options.into.is_some() {
                let reason = "a restore is compared with the drill that passed its snapshot";
                (SourceValues::Unavailable(reason.into()), None)
            } else if compares {
                let (values, columns) = self.live_source(snapshot, found, &suite).await?;
                (values, Some(columns))
            } else {
                (SourceValues::NotNeeded, None)
            };
            let context = verify::Context {
                source_columns,
                ..context
            };
            let mut results = verify::evaluate(&suite, &values, &source, &context, &custom);
            let statements =
                queries::add_examples(&job.name, &ctx, &suite, &context, &mut results, &job.redact)
                    .await;
            for sql in statements {
                self.query(&format!("examples {}", found.name), sql);
            }
            self.report.checks.extend(results);
            let id = format!("fingerprint {}", found.name);
            if let Some(into) = &self.options.into {
                let drilled = into.drilled(&id);
                if compares || drilled.is_some() {
                    self.report
                        .checks
                        .push(verify::compare_with_drill(&id, &values, &names, drilled));
                }
            } else if !matches!(source, SourceValues::NotNeeded) {
                let mut fingerprint = verify::compare_fingerprints(&values, &names, &source);
                fingerprint.id = id;
                self.report.checks.push(fingerprint);
            }
        }
        Ok(())
    }

    /// Every check of `suite` failed with `reason`.
    fn fail_all(&mut self, suite: &Suite, reason: &str) {
        for c in &suite.checks {
            let mut r = CheckResult::new(&c.id, c.kind.name(), c.severity);
            r.fail(reason.to_string());
            self.report.checks.push(r);
        }
    }

    /// What the checks are judged with besides the scan: the log's figures and column types.
    pub(super) fn context(
        &self,
        snapshot: &Snapshot,
        structure: &StructureReport,
    ) -> verify::Context {
        let info = structure.table.as_ref();
        verify::Context {
            commit_time: snapshot.commit_timestamp(),
            logged_rows: info.and_then(|i| i.logged_rows()),
            columns: info.map(|i| i.typed_columns()).unwrap_or_default(),
            source_columns: None,
            key_ranges: info
                .map(|info| {
                    verify::compile::key_columns(&self.job.suite)
                        .into_iter()
                        .filter_map(|c| info.integer_range(c).map(|r| (c.to_string(), r)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The keyed sample of the comparison, when the job has one, and its fraction. A restore
    /// for real is compared with its drill's fingerprint, not the source: it collects none.
    pub(super) fn sampling(&self, context: &verify::Context) -> Option<(&'a CompareSpec, f64)> {
        let job: &'a Job = self.job;
        if self.options.into.is_some() {
            return None;
        }
        job.compare
            .as_ref()
            .map(|spec| (spec, spec.fraction(context.logged_rows)))
    }

    /// Verify the data: the suite's expressions (and the keyed sample) in one scan of the
    /// restored table, when its structure allows reading it. Rows that disagree with the log,
    /// or data that does not decode, fail the `structure` check.
    pub(super) async fn verify_data(
        &mut self,
        structure: &StructureReport,
        context: &verify::Context,
    ) -> Result<Option<Scanned>, DrillError> {
        let job = self.job;
        let Some(info) = &structure.table else {
            return Ok(None);
        };
        if !structure.files_whole() {
            return Ok(None);
        }
        check_columns(job, &info.typed_columns())?;
        let mut plan = verify::plan_restored(&job.suite, &info.columns, context);
        if let Some((spec, fraction)) = self.sampling(context) {
            plan.add(SampleCollector::new(&info.columns, &spec.key, fraction).expr);
        }
        if let Some(column) = &job.rpo_column {
            plan.add(newest_seconds(column));
        }
        for sql in plan.queries() {
            self.query("restored", sql);
        }
        self.progress.scan_started("verifying the restored table");
        let scanned = self.scan_restored(&plan).await;
        self.progress.scan_finished();
        match scanned {
            Ok(scanned) => {
                if let (Some(rows), Some(logged)) =
                    (scanned_rows(&scanned.values), info.logged_rows())
                    && rows != logged
                {
                    self.report.checks[0].fail(format!(
                        "the scan read {rows} rows but the log promises {logged} (its files' numRecords less the rows their deletion vectors remove)"
                    ));
                }
                Ok(Some(scanned))
            }
            Err(message) => {
                let bad = self.kind.locate_damage(self.run(), info).await;
                let detail = if bad.is_empty() {
                    message
                } else {
                    format!(
                        "{} data file(s) do not decode: {}",
                        bad.len(),
                        name_some(bad.iter())
                    )
                };
                self.report.checks[0].fail(format!("the restored data cannot be read: {detail}"));
                Ok(None)
            }
        }
    }

    pub(super) async fn scan_restored(&self, plan: &AggregatePlan) -> Result<Scanned, String> {
        let ctx = scan::session();
        self.kind
            .register_restored(self.run(), None, &ctx)
            .await
            .map_err(|message| {
                DrillError::Restored {
                    job: self.job.name.clone(),
                    message,
                }
                .to_string()
            })?;
        let values = scan::run(plan, &ctx).await.map_err(|e| e.to_string())?;
        Ok(Scanned { ctx, values })
    }
}
