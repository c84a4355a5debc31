//! Comparison with the source: the fingerprint in the same scan, and the keyed sample diff.

use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::array::{Array, Decimal128Array, Int64Array, RecordBatch};
use deltalake::arrow::compute::concat_batches;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use restore_drill::drill::{DrillReport, Outcome};
use restore_drill::verify::CheckOutcome;

use crate::helpers::{Lake, SUITE, data_files, findings};

const DATE: &str = "2026-11-28";

/// Writes a config whose job compares a full sample (every key) with the source.
fn config_with_compare(lake: &Lake, compare: &str) -> std::path::PathBuf {
    let path = lake.config(SUITE, "26h");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}compare = {compare}\nredact = [\"account_id\"]\n"),
    )
    .unwrap();
    path
}

const FULL_SAMPLE: &str = "{ key = [\"transaction_id\"], sample_fraction = 1.0 }";
const APPEND_ONLY_FULL_SAMPLE: &str =
    "{ key = [\"transaction_id\"], sample_fraction = 1.0, fallback = \"append_only\" }";

/// Rewrites the data file the newest commit of a snapshot added through `change`, and patches
/// its `add` action's size and row count so the structure stays consistent: only a comparison
/// can tell (and the newest commit is no longer the source's).
fn rewrite_data_file(snapshot: &Path, change: impl Fn(RecordBatch) -> RecordBatch) {
    let commits = std::fs::read_dir(snapshot.join("_delta_log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    let file = added_by(snapshot, commits as u64 - 1);
    rewrite_file(snapshot, &file, change);
}

/// The data file a commit of a table added.
fn added_by(table: &Path, version: u64) -> std::path::PathBuf {
    let commit =
        std::fs::read_to_string(table.join(format!("_delta_log/{version:020}.json"))).unwrap();
    let path = commit
        .lines()
        .find_map(|line| {
            let action: serde_json::Value = serde_json::from_str(line).ok()?;
            Some(action.get("add")?["path"].as_str()?.to_string())
        })
        .unwrap();
    table.join(path)
}

/// Rewrites `file` of a snapshot through `change` and patches the log as [`rewrite_data_file`].
fn rewrite_file(snapshot: &Path, file: &Path, change: impl Fn(RecordBatch) -> RecordBatch) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let batch = change(concat_batches(&batches[0].schema(), &batches).unwrap());
    let rows = batch.num_rows();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(file).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let size = std::fs::metadata(file).unwrap().len();
    for entry in std::fs::read_dir(snapshot.join("_delta_log")).unwrap() {
        let log = entry.unwrap().path();
        if log.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&log).unwrap();
        if !text.contains(&name) {
            continue; // commits that do not add the file keep their bytes
        }
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let mut action: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(add) = action.get_mut("add")
                    && add["path"].as_str() == Some(name.as_str())
                {
                    add["size"] = serde_json::json!(size);
                    let mut stats: serde_json::Value =
                        serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
                    stats["numRecords"] = serde_json::json!(rows);
                    // Min/max/null statistics no longer hold for the new contents.
                    for key in ["minValues", "maxValues", "nullCount"] {
                        stats.as_object_mut().unwrap().remove(key);
                    }
                    add["stats"] = serde_json::json!(stats.to_string());
                }
                action.to_string()
            })
            .collect();
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    }
}

fn replace_column(batch: RecordBatch, index: usize, column: Arc<dyn Array>) -> RecordBatch {
    let mut columns = batch.columns().to_vec();
    columns[index] = column;
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

fn check<'r>(report: &'r DrillReport, id: &str) -> &'r restore_drill::verify::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check `{id}`: {:#?}", report.checks))
}

async fn drill_damaged(change: impl Fn(RecordBatch) -> RecordBatch) -> DrillReport {
    let lake = Lake::new(2, 2_000).await;
    let snapshot = lake.snapshot(DATE);
    rewrite_data_file(&snapshot, change);
    let config = config_with_compare(&lake, FULL_SAMPLE);
    lake.drill(&config, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_snapshot_matches_its_source_exactly() {
    let lake = Lake::new(2, 2_000).await;
    lake.snapshot(DATE);
    let config = config_with_compare(&lake, "{ key = [\"transaction_id\"], sample_rows = 500 }");
    let report = lake.drill(&config, None).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    let fingerprint = check(&report, "fingerprint");
    assert_eq!(fingerprint.outcome, CheckOutcome::Passed);
    assert_eq!(fingerprint.observed["rows"], 4_000);
    assert_eq!(fingerprint.observed, fingerprint.expected["equals_source"]);
    let diff = report
        .compare
        .as_ref()
        .unwrap_or_else(|| panic!("no diff: {}", findings(&report)));
    assert_eq!(diff.mismatched(), 0);
    assert!(
        diff.restored_rows > 300 && diff.restored_rows < 700,
        "{}",
        diff.restored_rows
    );
    assert_eq!(diff.restored_rows, diff.source_rows);
    // The fingerprint is computed in the one scan of the restored table.
    let queries = &report.verify.as_ref().unwrap().queries;
    let restored: Vec<_> = queries
        .iter()
        .filter(|q| q.target == "restored" && !q.sql.contains("GROUP BY"))
        .collect();
    assert_eq!(restored.len(), 1);
    assert!(
        restored[0].sql.contains("restore_drill_fingerprint("),
        "{}",
        restored[0].sql
    );
    // Each side is read once: the sample is collected in the same scans, then joined in memory.
    assert!(
        restored[0].sql.contains("restore_drill_sample("),
        "{}",
        restored[0].sql
    );
    assert_eq!(queries.iter().filter(|q| q.target == "restored").count(), 1);
    // Every file of the copy is the source's byte for byte: the source is not decoded at all,
    // its values and sample are the restored scan's.
    assert_eq!(queries.iter().filter(|q| q.target == "source").count(), 0);
    let files = data_files(&lake.source());
    assert_eq!(
        serde_json::to_value(&report.source_equality).unwrap(),
        serde_json::json!([{
            "established_by": "identical_bytes",
            "files": files.len(),
            "bytes": files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum::<u64>(),
        }])
    );
}

/// The shared suite without its check comparing a sum with the source: what remains (row
/// count, fingerprint) merges from parts.
fn mergeable_suite() -> String {
    let suite = SUITE.replace(
        "column = \"amount\"\nequals_source = true",
        "column = \"amount\"\nmin = -1e15",
    );
    assert_ne!(suite, SUITE);
    suite
}

/// Rewrites the file the first commit added in a snapshot (the newest commit, which must be
/// the source's own, stays as it is) through `change` and drills it with `suite`. Returns the
/// report, and the fingerprint a full decode of the same source version gives (a drill of an
/// untouched snapshot, whose files are the source's).
async fn drill_partly_rewritten(
    suite: &str,
    change: impl Fn(RecordBatch) -> RecordBatch,
) -> (DrillReport, serde_json::Value) {
    let lake = Lake::new(3, 1_000).await;
    lake.snapshot("2026-11-27");
    let snapshot = lake.snapshot(DATE);
    rewrite_file(&snapshot, &added_by(&snapshot, 0), change);
    let config = lake.config(suite, "26h");
    let whole = lake.drill(&config, Some("transactions_2026-11-27")).await;
    assert_eq!(whole.outcome, Outcome::Passed, "{}", findings(&whole));
    let full_decode = check(&whole, "fingerprint").observed.clone();
    let report = lake.drill(&config, Some("transactions_2026-11-28")).await;
    (report, full_decode)
}

fn groups(report: &DrillReport) -> Vec<(String, usize)> {
    report
        .source_equality
        .iter()
        .map(|g| (g.established_by.clone(), g.files))
        .collect()
}

fn reverse_rows(batch: RecordBatch) -> RecordBatch {
    let n = batch.num_rows() as u32;
    let reversed = deltalake::arrow::array::UInt32Array::from_iter_values((0..n).rev());
    deltalake::arrow::compute::take_record_batch(&batch, &reversed).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_identical_copy_merges_proven_and_decoded_parts_into_the_full_fingerprint() {
    // The same rows in another order and layout: equal, and the merged fingerprint of the source
    // is a full decode's.
    let (report, full_decode) = drill_partly_rewritten(&mergeable_suite(), reverse_rows).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    assert_eq!(
        groups(&report),
        [
            ("identical_bytes".to_string(), 2),
            ("decoded".to_string(), 1)
        ],
        "{:?}",
        report.source_equality
    );
    let why = report.source_equality[1].why.clone().unwrap();
    assert!(why.contains("recorded differently in the logs"), "{why}");
    let fingerprint = check(&report, "fingerprint");
    assert_eq!(fingerprint.expected["equals_source"], full_decode);
    let queries = &report.verify.as_ref().unwrap().queries;
    assert_eq!(queries.iter().filter(|q| q.target == "source").count(), 1);
    // One changed value in the rewritten file: the restored side differs, the source's merged
    // fingerprint is still a full decode's, and the column is named.
    let (report, full_decode) = drill_partly_rewritten(&mergeable_suite(), |batch| {
        let amounts = batch
            .column(2)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        let mut values: Vec<Option<i128>> = amounts.iter().collect();
        values[10] = values[10].map(|v| v + 1);
        let changed = Decimal128Array::from(values)
            .with_precision_and_scale(amounts.precision(), amounts.scale())
            .unwrap();
        replace_column(batch, 2, Arc::new(changed))
    })
    .await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    let fingerprint = check(&report, "fingerprint");
    assert_eq!(fingerprint.expected["equals_source"], full_decode);
    assert_ne!(fingerprint.observed, full_decode);
    let message = fingerprint.message.clone().unwrap();
    assert!(
        message.contains("columns whose values differ: amount"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sum_compared_with_the_source_decodes_the_whole_source_when_a_file_differs() {
    let (report, full_decode) = drill_partly_rewritten(SUITE, reverse_rows).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    assert_eq!(groups(&report), [("decoded".to_string(), 3)]);
    let why = report.source_equality[0].why.clone().unwrap();
    assert!(why.contains("does not merge from parts"), "{why}");
    assert_eq!(
        check(&report, "fingerprint").expected["equals_source"],
        full_decode
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_byte_in_a_file_of_the_same_size_is_never_taken_for_the_source_s() {
    let lake = Lake::new(2, 2_000).await;
    let snapshot = lake.snapshot(DATE);
    let file = data_files(&snapshot).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let report = lake
        .drill(&config_with_compare(&lake, FULL_SAMPLE), None)
        .await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    let decoded = report
        .source_equality
        .iter()
        .find(|g| g.established_by == "decoded")
        .unwrap_or_else(|| panic!("{:?}", report.source_equality));
    let why = decoded.why.clone().unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        why.contains(&format!("{name}: the bytes differ from offset {middle}")),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_value_is_named_by_row_and_column() {
    let report = drill_damaged(|batch| {
        let amounts = batch
            .column(2)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        let mut values: Vec<i128> = amounts.values().to_vec();
        values[7] += 1;
        let changed = Decimal128Array::from(values)
            .with_precision_and_scale(18, 2)
            .unwrap();
        replace_column(batch, 2, Arc::new(changed))
    })
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    let fingerprint = check(&report, "fingerprint");
    let message = fingerprint.message.as_deref().unwrap();
    assert!(
        message.contains("columns whose values differ: amount"),
        "{message}"
    );
    let sample = check(&report, "sample");
    assert_eq!(sample.outcome, CheckOutcome::Failed);
    assert!(
        sample
            .message
            .as_deref()
            .unwrap()
            .contains("1 changed (amount: 1)"),
        "{sample:?}"
    );
    let diff = report.compare.as_ref().unwrap();
    assert_eq!(diff.examples.len(), 1);
    let example = &diff.examples[0];
    assert_eq!(example.kind, "changed");
    assert_eq!(example.differing, vec!["amount"]);
    assert!(example.key.contains_key("transaction_id"));
    // The amount-total check also sees it.
    assert_eq!(check(&report, "amount-total").outcome, CheckOutcome::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_introduced_is_named_and_redacted_columns_are_masked() {
    let report = drill_damaged(|batch| {
        let accounts = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let values: Vec<Option<i64>> = (0..accounts.len())
            .map(|i| (i != 3).then(|| accounts.value(i)))
            .collect();
        replace_column(batch, 1, Arc::new(Int64Array::from(values)))
    })
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(
        check(&report, "fingerprint")
            .message
            .as_deref()
            .unwrap()
            .contains("account_id")
    );
    let diff = report.compare.as_ref().unwrap();
    assert_eq!(diff.changed_by_column.get("account_id"), Some(&1));
    let example = &diff.examples[0];
    assert_eq!(example.differing, vec!["account_id"]);
    assert_eq!(example.restored.as_ref().unwrap()["account_id"], "***");
    assert_eq!(example.source.as_ref().unwrap()["account_id"], "***");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_row_is_named_as_missing() {
    let report = drill_damaged(|batch| {
        let n = batch.num_rows();
        concat_batches(
            &batch.schema(),
            &[batch.slice(0, 10), batch.slice(11, n - 11)],
        )
        .unwrap()
    })
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    let message = check(&report, "fingerprint").message.clone().unwrap();
    assert!(
        message.contains("3999 rows restored, 4000 in the source"),
        "{message}"
    );
    let diff = report.compare.as_ref().unwrap();
    assert_eq!((diff.missing, diff.extra, diff.changed), (1, 0, 0));
    assert_eq!(diff.examples[0].kind, "missing");
    assert!(diff.examples[0].source.is_some() && diff.examples[0].restored.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_row_is_caught() {
    let report = drill_damaged(|batch| {
        concat_batches(&batch.schema(), &[batch.clone(), batch.slice(5, 1)]).unwrap()
    })
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(
        check(&report, "fingerprint")
            .message
            .clone()
            .unwrap()
            .contains("4001 rows restored")
    );
    assert_eq!(check(&report, "ids-unique").outcome, CheckOutcome::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_a_different_table_says_so() {
    let lake = Lake::new(1, 500).await;
    // A table with the same rows, written separately: a different Delta table id.
    let other = lake.root.join("other");
    restore_drill::demo::data::append(
        &other,
        vec![restore_drill::demo::data::transactions(
            1,
            500,
            1_795_000_000_000_000,
        )],
    )
    .await
    .unwrap();
    restore_drill::demo::data::copy_folder(
        &other,
        &lake.root.join(format!("backups/daily/transactions_{DATE}")),
    )
    .unwrap();
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let finding = report
        .findings
        .iter()
        .find(|f| f.check == "source")
        .unwrap();
    assert!(
        finding
            .message
            .contains("the backup holds a different table"),
        "{}",
        finding.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_source_version_is_a_warning_and_append_only_is_the_fallback() {
    let mut lake = Lake::new(2, 1_000).await;
    lake.snapshot(DATE);
    lake.append(500).await;
    crate::helpers::clean_up_log(&lake.source(), Some(1)).await;

    let config = config_with_compare(&lake, APPEND_ONLY_FULL_SAMPLE);
    let report = lake.drill(&config, None).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    let warning = report
        .findings
        .iter()
        .find(|f| f.check == "source")
        .unwrap();
    assert_eq!(warning.severity.as_str(), "warn");
    assert!(
        warning.message.contains("cannot be read at version 1"),
        "{}",
        warning.message
    );
    assert!(
        warning.message.contains("fallback append_only"),
        "{}",
        warning.message
    );
    assert_eq!(check(&report, "fingerprint").outcome, CheckOutcome::Skipped);
    let diff = report.compare.as_ref().unwrap();
    assert_eq!((diff.extra, diff.changed), (0, 0));
    assert_eq!(
        diff.missing, 500,
        "rows added to the source since are not mismatches"
    );
    assert_eq!(diff.mismatched(), 0);

    // With fallback `none`, the comparison is skipped and the drill still passes with a warning.
    let config = config_with_compare(&lake, FULL_SAMPLE);
    let report = lake.drill(&config, None).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    assert!(report.compare.is_none());
    assert!(
        findings(&report).contains("fallback none"),
        "{}",
        findings(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_append_only_fallback_still_catches_a_changed_row() {
    let mut lake = Lake::new(2, 1_000).await;
    let snapshot = lake.snapshot(DATE);
    rewrite_data_file(&snapshot, |batch| {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let mut values: Vec<i64> = ids.values().to_vec();
        values[0] = 9_999_999;
        replace_column(batch, 0, Arc::new(Int64Array::from(values)))
    });
    lake.append(500).await;
    crate::helpers::clean_up_log(&lake.source(), Some(1)).await;
    let config = config_with_compare(&lake, APPEND_ONLY_FULL_SAMPLE);
    let report = lake.drill(&config, None).await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    let sample = check(&report, "sample").message.clone().unwrap();
    assert!(
        sample.contains("1 restored rows not in the source"),
        "{sample}"
    );
    let diff = report.compare.as_ref().unwrap();
    assert_eq!(diff.examples[0].key["transaction_id"], "9999999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_contents_in_another_row_order_and_layout_compare_equal() {
    let lake = Lake::new(2, 2_000).await;
    let snapshot = lake.snapshot(DATE);
    rewrite_data_file(&snapshot, |batch| {
        // Reversed rows, written as two row groups of different sizes.
        let n = batch.num_rows();
        let reversed = deltalake::arrow::compute::take_record_batch(
            &batch,
            &deltalake::arrow::array::UInt32Array::from_iter_values((0..n as u32).rev()),
        )
        .unwrap();
        concat_batches(
            &batch.schema(),
            &[reversed.slice(700, n - 700), reversed.slice(0, 700)],
        )
        .unwrap()
    });
    let report = lake
        .drill(&config_with_compare(&lake, FULL_SAMPLE), None)
        .await;
    assert_eq!(check(&report, "fingerprint").outcome, CheckOutcome::Passed);
    assert_eq!(report.compare.as_ref().unwrap().mismatched(), 0);
    // The contents are equal, but the copy's log is not the source's: its commit was rewritten.
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.findings.len(), 1, "{}", findings(&report));
    assert!(
        report.findings[0]
            .message
            .contains("the snapshot's commit 00000000000000000001.json differs from the source's"),
        "{}",
        findings(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_retyped_in_the_snapshot_log_is_named_by_the_fingerprint() {
    let lake = Lake::new(2, 1_000).await;
    let snapshot = lake.snapshot(DATE);
    let first = snapshot.join("_delta_log/00000000000000000000.json");
    let text = std::fs::read_to_string(&first).unwrap();
    let retyped = text.replace(
        r#"{\"name\":\"account_id\",\"type\":\"long\""#,
        r#"{\"name\":\"account_id\",\"type\":\"integer\""#,
    );
    assert_ne!(text, retyped, "the schema names account_id as long");
    std::fs::write(&first, retyped).unwrap();
    let report = lake
        .drill(&config_with_compare(&lake, FULL_SAMPLE), None)
        .await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    let message = check(&report, "fingerprint").message.clone().unwrap();
    assert!(
        message.contains("columns whose values differ: account_id"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_be_read_is_an_error_not_a_pass() {
    let lake = Lake::new(1, 500).await;
    let snapshot = lake.snapshot(DATE);
    // Values drifted in the backup: only the comparison with the source can tell.
    rewrite_data_file(&snapshot, |batch| {
        let amounts = batch
            .column(2)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap()
            .iter()
            .map(|v| v.map(|v| v + 1))
            .collect::<Decimal128Array>()
            .with_precision_and_scale(18, 2)
            .unwrap();
        replace_column(batch, 2, Arc::new(amounts))
    });
    let config = config_with_compare(&lake, FULL_SAMPLE);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"lake/transactions\"", "\"lake/transactions-typo\""),
    )
    .unwrap();
    let report = lake.drill(&config, None).await;
    assert_eq!(report.outcome, Outcome::Error, "{}", findings(&report));
    let error = report.error.as_deref().unwrap();
    assert!(
        error.contains(&format!(
            "the source {} cannot be read",
            lake.root.join("lake/transactions-typo").display()
        )),
        "{error}"
    );
    assert!(
        lake.sandbox_contents()
            .iter()
            .all(|p| !p.ends_with("_delta_log"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_ahead_of_its_source_does_not_belong_to_its_history() {
    let lake = Lake::new(2, 500).await;
    lake.snapshot(DATE);
    // The source as it was before its second commit: version 0, same table.
    std::fs::remove_file(lake.source().join(format!("_delta_log/{:020}.json", 1))).unwrap();
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    let finding = report
        .findings
        .iter()
        .find(|f| f.check == "source")
        .unwrap();
    assert!(
        finding
            .message
            .contains("the snapshot holds version 1 of the table but the source")
            && finding
                .message
                .contains("is at version 0: the backup does not belong to this source's history"),
        "{}",
        finding.message
    );
    assert!(
        !findings(&report).contains("time-travel window"),
        "{}",
        findings(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_whose_commit_differs_from_the_source_does_not_belong_to_its_history() {
    let lake = Lake::new(1, 500).await;
    let snapshot = lake.snapshot(DATE);
    // The same table went on in two directions: the copy and the source each got a version 1.
    restore_drill::demo::data::append(
        &snapshot,
        vec![restore_drill::demo::data::transactions(
            10_000,
            100,
            1_795_000_000_000_000,
        )],
    )
    .await
    .unwrap();
    let mut lake = lake;
    lake.append(100).await;
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    let finding = report
        .findings
        .iter()
        .find(|f| f.check == "source")
        .unwrap();
    assert!(
        finding.message.contains(&format!(
            "the snapshot's commit {:020}.json differs from the source's commit of that version",
            1
        )),
        "{}",
        finding.message
    );
}
