//! An outside check: the Delta Acceptance Testing tables, written by Spark, restore and pass,
//! and the rows read at every version equal the expected rows; tables with the newer Delta
//! reader features drill clean. The tables are in `tests/data/` (see its README).

use std::path::{Path, PathBuf};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::prelude::{ParquetReadOptions, SessionContext};
use restore_drill::drill::{DrillReport, Outcome};

use crate::helpers::findings;

/// A folder of `tests/data/`.
pub(crate) fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn tables() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(test_data("dat"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("delta").is_dir())
        .collect();
    out.sort();
    assert_eq!(out.len(), 4, "{out:?}");
    out
}

/// Rows as sorted text lines, columns in name order: values compared, not Arrow types.
fn rows_as_text(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    for batch in batches {
        let schema = batch.schema();
        let mut order: Vec<usize> = (0..schema.fields().len()).collect();
        order.sort_by_key(|i| schema.field(*i).name().clone());
        let formatters: Vec<ArrayFormatter> = order
            .iter()
            .map(|i| ArrayFormatter::try_new(batch.column(*i).as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = order
                .iter()
                .zip(&formatters)
                .map(|(i, f)| format!("{}={}", schema.field(*i).name(), f.value(row)))
                .collect();
            rows.push(cells.join(", "));
        }
    }
    rows.sort();
    rows
}

async fn expected_rows(file: &Path) -> Vec<String> {
    let ctx = SessionContext::new();
    let batches = ctx
        .read_parquet(file.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    rows_as_text(&batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_read_at_every_version_equal_the_expected_rows() {
    for table in tables() {
        let url =
            restore_drill::storage::directory_url(&table.join("delta").canonicalize().unwrap());
        let mut versions = 0;
        for entry in std::fs::read_dir(table.join("expected")).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            // `v0`, `v1`, ... or `latest`.
            let version = name.strip_prefix('v').map(|v| v.parse::<u64>().unwrap());
            let delta = restore_drill::kinds::delta::table::open(&url, version)
                .await
                .unwrap();
            let ctx = restore_drill::verify::scan::session();
            ctx.register_table("t", delta.table_provider().await.unwrap())
                .unwrap();
            let actual = ctx
                .sql("SELECT * FROM t")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let expected = expected_rows(&dir.join("table_content.parquet")).await;
            assert_eq!(
                rows_as_text(&actual),
                expected,
                "{} at {name}",
                table.display()
            );
            versions += 1;
        }
        assert!(versions >= 2, "{}", table.display());
    }
}

/// Drills `table` (the source) from a backup that is a copy of it, with a suite whose row count
/// must equal `expected` and the source's.
async fn drill_a_copy(table: &Path, name: &str, expected: usize) -> DrillReport {
    drill_a_copy_of(table, table, name, expected).await
}

/// A job drilling `table` (the source) from one dated backup copied from `backup`, with a suite
/// whose row count must equal `expected` and the source's. Returns the folder and the config.
fn job_with_a_copy(
    table: &Path,
    backup: &Path,
    name: &str,
    expected: usize,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let snapshot = root.join(format!("backups/{name}_2026-11-28"));
    restore_drill::demo::data::copy_folder(backup, &snapshot).unwrap();
    std::fs::write(
        root.join("suite.toml"),
        format!(
            "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = {expected}\nmax = {expected}\nequals_source = true\n"
        ),
    )
    .unwrap();
    let source = table.canonicalize().unwrap();
    std::fs::write(
        root.join("config.toml"),
        format!(
            r#"[[job]]
name = "{name}"
source = "{}"
snapshots = {{ kind = "delta_copy", location = "backups", pattern = "{name}_{{date}}" }}
sandbox = "sandbox"
suite = "suite.toml"
objectives = {{ rpo = "1000d", rto = "1h" }}
"#,
            source.display()
        ),
    )
    .unwrap();
    let config = root.join("config.toml");
    (dir, config)
}

/// Drills `table` from a backup copied from `backup`.
async fn drill_a_copy_of(table: &Path, backup: &Path, name: &str, expected: usize) -> DrillReport {
    let (_dir, config) = job_with_a_copy(table, backup, name, expected);
    let config = restore_drill::config::load(&config).unwrap();
    restore_drill::drill::run_drill(
        config.job(name).unwrap(),
        &Default::default(),
        &restore_drill::clock::SystemClock,
        &restore_drill::drill::NoProgress,
    )
    .await
}

#[test]
fn snapshots_and_the_dry_run_count_deletion_vectors() {
    let name = "with-short-dv";
    let table = test_data("delta-features").join(name);
    let (_dir, config) = job_with_a_copy(&table, &table, name, 7);
    let config = config.to_str().unwrap();
    let out = crate::helpers::cli(&["snapshots", "--config", config, name]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::helpers::stderr(&out)
    );
    let listing = crate::helpers::stdout(&out);
    let row = listing.lines().nth(1).unwrap();
    assert!(
        listing.lines().next().unwrap().ends_with("DVS"),
        "{listing}"
    );
    assert!(row.ends_with(" 1"), "{listing}");
    let out = crate::helpers::cli(&["run", "--config", config, name, "--dry-run"]);
    let plan = crate::helpers::stdout(&out);
    assert!(
        plan.contains("of which 1 deletion vector(s) removing 3 rows"),
        "{plan}"
    );
}

/// The drill passed with `expected` rows, equal to the source's, and the fingerprint held.
fn assert_clean(report: &DrillReport, name: &str, expected: usize) {
    assert_eq!(
        report.outcome,
        Outcome::Passed,
        "{name}: {} {:?}",
        findings(report),
        report.error
    );
    let rows = report.checks.iter().find(|c| c.id == "rows").unwrap();
    assert_eq!(rows.observed, serde_json::json!(expected), "{name}");
    assert_eq!(
        rows.expected["equals_source"],
        serde_json::json!(expected),
        "{name}"
    );
    let fingerprint = report
        .checks
        .iter()
        .find(|c| c.id == "fingerprint")
        .unwrap();
    assert_eq!(
        fingerprint.outcome,
        restore_drill::verify::CheckOutcome::Passed,
        "{name}: {:?}",
        fingerprint.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_table_restores_from_a_one_snapshot_backup_and_passes() {
    for table in tables() {
        let name = table.file_name().unwrap().to_string_lossy().into_owned();
        let expected = expected_rows(&table.join("expected/latest/table_content.parquet"))
            .await
            .len();
        let report = drill_a_copy(&table.join("delta"), &name, expected).await;
        assert_clean(&report, &name, expected);
    }
}

/// The tables of `tests/data/delta-features` and their rows at the latest version.
pub(crate) const FEATURE_TABLES: [(&str, usize); 12] = [
    ("table-with-dv-small", 8),
    ("with-short-dv", 7),
    ("table_with_deletion_logs", 98),
    ("cdf-table-with-cdc-and-dvs", 5),
    ("table_with_liquid_clustering", 10),
    ("table_with_column_mapping", 5),
    ("checkpoint-v2-table", 44),
    ("v2-checkpoints-json-with-sidecars", 1233),
    ("v2-checkpoints-parquet-with-sidecars", 1233),
    ("data-reader-timestamp_ntz", 9),
    ("spark-variant-checkpoint", 102),
    ("type-widening", 2),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_with_newer_delta_features_drill_clean() {
    for (name, expected) in FEATURE_TABLES {
        let table = test_data("delta-features").join(name);
        let report = drill_a_copy(&table, name, expected).await;
        assert_clean(&report, name, expected);
    }
}

/// A deletion-vector table's backup with its vector file changed by `damage`.
async fn drill_damaged_vector(damage: impl Fn(&Path)) -> DrillReport {
    let name = "table-with-dv-small";
    let copy = tempfile::tempdir().unwrap();
    let table = copy.path().join(name);
    restore_drill::demo::data::copy_folder(&test_data("delta-features").join(name), &table)
        .unwrap();
    // The source stays whole; the backup is made from the copy, then damaged.
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    restore_drill::demo::data::copy_folder(&table, &backup).unwrap();
    damage(&backup.join(VECTOR_FILE));
    let report = drill_a_copy_of(&table, &backup, name, 8).await;
    assert_eq!(report.outcome, Outcome::Failed, "{}", findings(&report));
    report
}

const VECTOR_FILE: &str = "deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_vector_missing_or_with_a_flipped_byte_fails_naming_it() {
    let report = drill_damaged_vector(|file| std::fs::remove_file(file).unwrap()).await;
    let message = findings(&report);
    assert!(
        message.contains(&format!("deletion vector(s) referenced by the log are missing or damaged: {VECTOR_FILE} (it is missing)")),
        "{message}"
    );

    let report = drill_damaged_vector(|file| {
        let mut bytes = std::fs::read(file).unwrap();
        let at = bytes.len() - 8;
        bytes[at] ^= 0x01;
        std::fs::write(file, bytes).unwrap();
    })
    .await;
    let message = findings(&report);
    assert!(
        message.contains(VECTOR_FILE) && message.contains("fails its CRC-32 checksum"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_feature_this_version_does_not_know_is_an_error_naming_it() {
    let copy = tempfile::tempdir().unwrap();
    let table = copy.path().join("future");
    restore_drill::demo::data::copy_folder(
        &test_data("delta-features").join("table-with-dv-small"),
        &table,
    )
    .unwrap();
    let commit = table.join(format!("_delta_log/{:020}.json", 0));
    let text = std::fs::read_to_string(&commit).unwrap();
    assert!(
        text.contains("\"readerFeatures\":[\"deletionVectors\"]"),
        "{text}"
    );
    // Declared as a reader-writer feature, as the protocol wants.
    std::fs::write(
        &commit,
        text.replace(
            "[\"deletionVectors\"]",
            "[\"deletionVectors\",\"futureFeature\"]",
        ),
    )
    .unwrap();
    let report = drill_a_copy(&table, "future", 8).await;
    assert_eq!(report.outcome, Outcome::Error, "{}", findings(&report));
    let error = report.error.as_deref().unwrap();
    assert!(error.contains("futureFeature"), "{error}");
}
