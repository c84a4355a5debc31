//! A drill must catch each kind of damage, and pass a healthy snapshot.

use std::sync::Arc;

use deltalake::arrow::array::{Array, Int64Array, RecordBatch};
use restore_drill::drill::Outcome;
use restore_drill::verify::CheckOutcome;

use crate::helpers::{JOB, Lake, SUITE, data_files, findings};

const DATE: &str = "2026-11-28";

async fn lake_with_snapshot() -> (Lake, std::path::PathBuf) {
    let lake = Lake::new(3, 3_000).await;
    let snapshot = lake.snapshot(DATE);
    (lake, snapshot)
}

fn finding_of<'r>(report: &'r restore_drill::drill::DrillReport, check: &str) -> &'r str {
    report
        .findings
        .iter()
        .find(|f| f.check == check)
        .map(|f| f.message.as_str())
        .unwrap_or_else(|| panic!("no finding for `{check}`; findings:\n{}", findings(report)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_snapshot_passes_and_its_sandbox_is_removed() {
    let (lake, _) = lake_with_snapshot().await;
    let config = lake.config(SUITE, "26h");
    let report = lake.drill(&config, None).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    assert!(report.findings.is_empty(), "{}", findings(&report));
    let rows = report.checks.iter().find(|c| c.id == "rows").unwrap();
    assert_eq!(rows.observed, serde_json::json!(9_000));
    assert_eq!(rows.expected["equals_source"], serde_json::json!(9_000));
    assert_eq!(report.snapshot.as_ref().unwrap().version, Some(2));
    let verify = report.verify.as_ref().unwrap();
    assert_eq!(verify.rows, Some(9_000));
    // One aggregate over the restored table: the column checks, the integer key's
    // uniqueness and the fingerprint.
    let restored: Vec<&str> = verify
        .queries
        .iter()
        .filter(|q| q.target == "restored")
        .map(|q| q.sql.as_str())
        .collect();
    assert_eq!(restored.len(), 1, "{restored:#?}");
    assert!(
        restored[0].contains("restore_drill_fingerprint("),
        "{}",
        restored[0]
    );
    assert!(
        restored[0].contains("restore_drill_key_counts(\"transaction_id\", 1, 9000)"),
        "{}",
        restored[0]
    );
    assert!(report.rto_seconds.unwrap() >= report.restore.as_ref().unwrap().seconds);
    assert_eq!(report.rpo_basis.as_deref(), Some("source_newest_commit"));
    // The job folder may remain; the run's own folder must be gone.
    let left: Vec<_> = lake
        .sandbox_contents()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("run-"))
        .collect();
    assert!(left.is_empty(), "sandbox left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_data_file_fails_the_drill_and_names_the_file() {
    let (lake, snapshot) = lake_with_snapshot().await;
    let victim = data_files(&snapshot).remove(0);
    std::fs::remove_file(&victim).unwrap();
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let message = finding_of(&report, "structure");
    let name = victim.file_name().unwrap().to_string_lossy();
    assert!(
        message.contains("missing") && message.contains(name.as_ref()),
        "{message}"
    );
    let fingerprint = report
        .checks
        .iter()
        .find(|c| c.id == "fingerprint")
        .unwrap();
    assert_eq!(fingerprint.outcome, CheckOutcome::Skipped);
    // A failed run keeps its sandbox for inspection.
    let restore = report.restore.as_ref().unwrap();
    assert!(restore.kept);
    assert!(std::path::Path::new(&restore.sandbox).is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_data_file_fails_the_drill() {
    let (lake, snapshot) = lake_with_snapshot().await;
    let victim = data_files(&snapshot).remove(0);
    let size = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(size - 100)
        .unwrap();
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let message = finding_of(&report, "structure");
    assert!(message.contains("differ in size"), "{message}");
    assert!(
        message.contains(&format!("the log says {size}")),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_flipped_inside_a_data_file_fail_the_drill() {
    let (lake, snapshot) = lake_with_snapshot().await;
    let victim = data_files(&snapshot).remove(0);
    let mut bytes = std::fs::read(&victim).unwrap();
    // The middle of the file is column data pages: far from the header and the footer.
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5A;
    }
    std::fs::write(&victim, &bytes).unwrap();
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    assert!(!report.findings.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_missing_from_the_log_fails_the_drill() {
    let (lake, snapshot) = lake_with_snapshot().await;
    std::fs::remove_file(snapshot.join("_delta_log/00000000000000000001.json")).unwrap();
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    let message = finding_of(&report, "structure");
    assert!(message.contains("log does not replay"), "{message}");
    assert!(
        message.contains("00000000000000000001.json (the log jumps from version 0 to 2)"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_dropped_with_the_log_rewritten_are_caught_by_the_source_comparison() {
    let (lake, snapshot) = lake_with_snapshot().await;
    // Remove the data file of commit 1 and its `add` action, so the log agrees with the files.
    let commit = snapshot.join("_delta_log/00000000000000000001.json");
    let text = std::fs::read_to_string(&commit).unwrap();
    let mut kept = Vec::new();
    for line in text.lines() {
        let action: serde_json::Value = serde_json::from_str(line).unwrap();
        match action.get("add") {
            Some(add) => {
                let path = add["path"].as_str().unwrap();
                std::fs::remove_file(snapshot.join(path)).unwrap();
            }
            None => kept.push(line),
        }
    }
    std::fs::write(&commit, kept.join("\n") + "\n").unwrap();

    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let structure = report.checks.iter().find(|c| c.id == "structure").unwrap();
    assert_eq!(
        structure.outcome,
        CheckOutcome::Passed,
        "the structure is consistent"
    );
    let message = finding_of(&report, "rows");
    assert!(
        message.contains("6000 in the restore but 9000 in the source at version 2"),
        "{message}"
    );
    assert!(finding_of(&report, "amount-total").contains("in the source"));
}

fn with_account_ids(batch: RecordBatch, ids: Int64Array) -> RecordBatch {
    let mut columns = batch.columns().to_vec();
    columns[1] = Arc::new(ids);
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nulls_in_a_not_null_column_fail_the_drill() {
    let lake = Lake::new(2, 1_000).await;
    let batch = restore_drill::demo::data::transactions(50_000, 10, 1_795_000_000_000_000);
    let ids = Int64Array::from(vec![
        Some(1),
        None,
        Some(3),
        None,
        None,
        Some(6),
        Some(7),
        Some(8),
        Some(9),
        Some(10),
    ]);
    assert_eq!(ids.null_count(), 3);
    lake.append_batch(with_account_ids(batch, ids)).await;
    lake.snapshot(DATE);
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let message = finding_of(&report, "ids-present");
    assert!(message.contains("3 in `account_id`"), "{message}");
    assert_eq!(report.findings.len(), 1, "{}", findings(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_fail_the_drill() {
    let lake = Lake::new(2, 1_000).await;
    // Ten transactions written a second time.
    let again = restore_drill::demo::data::transactions(1, 10, 1_795_000_000_000_000);
    lake.append_batch(again).await;
    lake.snapshot(DATE);
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let message = finding_of(&report, "ids-unique");
    assert!(message.starts_with("10 row(s) repeat a key"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_older_than_the_rpo_objective_fails_the_drill() {
    let (mut lake, _) = lake_with_snapshot().await;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    lake.append(100).await;
    let report = lake.drill(&lake.config(SUITE, "1s"), None).await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    assert!(
        report.rpo_seconds.unwrap() >= 2.0,
        "{:?}",
        report.rpo_seconds
    );
    let message = finding_of(&report, "rpo");
    assert!(
        message.contains("above the RPO objective of 1s"),
        "{message}"
    );
    // The comparison still uses the source at the snapshot's version, so the data checks hold.
    assert_eq!(report.findings.len(), 1, "{}", findings(&report));
}

/// The config of `lake` with `rpo_column` set.
fn config_with_rpo_column(lake: &Lake, rpo: &str, column: &str) -> std::path::PathBuf {
    let path = lake.config(SUITE, rpo);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}rpo_column = \"{column}\"\n")).unwrap();
    path
}

/// The newest `booked_at` of a batch of transactions, in milliseconds.
fn newest_booking_millis(batch: &RecordBatch) -> i64 {
    let booked = batch
        .column_by_name("booked_at")
        .unwrap()
        .as_any()
        .downcast_ref::<deltalake::arrow::array::TimestampMicrosecondArray>()
        .unwrap();
    deltalake::arrow::compute::max(booked).unwrap() / 1_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpo_column_measures_the_data_a_restore_would_lose() {
    // Commits seconds apart, but the rows written after the snapshot were booked three days
    // later: a restore loses three days of bookings, which commit times do not show.
    let lake = Lake::new(0, 0).await;
    let day = 86_400_000_000;
    let older = restore_drill::demo::data::transactions(1, 300, 1_795_000_000_000_000);
    let newer = restore_drill::demo::data::transactions(301, 300, 1_795_000_000_000_000 + 3 * day);
    lake.append_batch(older.clone()).await;
    lake.snapshot(DATE);
    lake.append_batch(newer.clone()).await;

    let by_commits = lake.drill(&lake.config(SUITE, "1d"), None).await;
    assert_eq!(
        by_commits.outcome,
        Outcome::Passed,
        "{}",
        findings(&by_commits)
    );
    assert!(by_commits.rpo_seconds.unwrap() < 60.0);

    let report = lake
        .drill(&config_with_rpo_column(&lake, "1d", "booked_at"), None)
        .await;
    assert_eq!(report.rpo_basis.as_deref(), Some("rpo_column"));
    let lost = (newest_booking_millis(&newer) - newest_booking_millis(&older)) as f64 / 1000.0;
    let rpo = report.rpo_seconds.unwrap();
    // Column values are read to the second.
    assert!((rpo - lost).abs() < 1.0, "RPO {rpo} s, lost {lost} s");
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    let message = finding_of(&report, "rpo");
    assert!(
        message.contains("the restored data's newest `booked_at` is")
            && message.contains("above the RPO objective of 1d"),
        "{message}"
    );
    // Only the RPO failed: the data itself is what the source held at the snapshot's version.
    assert_eq!(report.findings.len(), 1, "{}", findings(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpo_column_that_is_not_a_timestamp_is_an_error_before_anything_is_written() {
    let (lake, _) = lake_with_snapshot().await;
    for (column, expected) in [
        (
            "currency",
            "rpo_column needs a timestamp or date column but `currency` is string",
        ),
        (
            "booked",
            "rpo_column names column `booked`, which the table does not have",
        ),
    ] {
        let report = lake
            .drill(&config_with_rpo_column(&lake, "1d", column), None)
            .await;
        assert_eq!(report.outcome, Outcome::Error);
        let error = report.error.unwrap_or_default();
        assert!(error.contains(expected), "{error}");
        assert!(report.restore.is_none(), "nothing is restored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_snapshot_is_the_latest_date_and_older_ones_can_be_pinned() {
    let mut lake = Lake::new(1, 500).await;
    lake.snapshot("2026-11-26");
    lake.append(500).await;
    lake.snapshot("2026-11-28");
    lake.append(500).await;
    lake.snapshot("2026-11-27");
    let config = lake.config(SUITE, "26h");
    let report = lake.drill(&config, None).await;
    let snapshot = report.snapshot.as_ref().unwrap();
    assert_eq!(snapshot.id, "transactions_2026-11-28");
    assert_eq!(snapshot.version, Some(1));
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));

    let report = lake.drill(&config, Some("transactions_2026-11-26")).await;
    assert_eq!(report.snapshot.as_ref().unwrap().version, Some(0));
    assert_eq!(report.job, JOB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_added_twice_in_one_commit_is_a_warning_not_silence() {
    let lake = Lake::new(1, 500).await;
    // Written so by the source's own writer: its backup is a faithful copy.
    let commit = lake.source().join(format!("_delta_log/{:020}.json", 0));
    let text = std::fs::read_to_string(&commit).unwrap();
    let add = text
        .lines()
        .find(|l| l.contains("\"add\""))
        .unwrap()
        .to_string();
    std::fs::write(&commit, format!("{}\n{add}\n", text.trim_end())).unwrap();
    lake.snapshot(DATE);
    let report = lake.drill(&lake.config(SUITE, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    let warning = report
        .findings
        .iter()
        .find(|f| f.check == "structure")
        .unwrap_or_else(|| panic!("no warning: {}", findings(&report)));
    assert_eq!(warning.severity.as_str(), "warn");
    assert!(
        warning
            .message
            .contains("commit 0 adds the same file twice"),
        "{}",
        warning.message
    );
    assert_eq!(report.verify.as_ref().unwrap().rows, Some(500));
}
