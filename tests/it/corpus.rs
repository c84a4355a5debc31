//! An outside check: the Delta Acceptance Testing tables, written by Spark, restore and pass,
//! and the rows read at every version equal the expected rows.

use std::path::{Path, PathBuf};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::prelude::{ParquetReadOptions, SessionContext};
use restore_drill::drill::Outcome;

use crate::helpers::findings;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/dat")
}

fn tables() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the corpus ../shared/corpus/dat is beside the repository")
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
            let delta = restore_drill::table::open(&url, version).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_table_restores_from_a_one_snapshot_backup_and_passes() {
    for table in tables() {
        let name = table.file_name().unwrap().to_string_lossy().into_owned();
        let expected = expected_rows(&table.join("expected/latest/table_content.parquet"))
            .await
            .len();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let snapshot = root.join(format!("backups/{name}_2026-11-28"));
        restore_drill::demo::data::copy_folder(&table.join("delta"), &snapshot).unwrap();
        std::fs::write(
            root.join("suite.toml"),
            format!(
                "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = {expected}\nmax = {expected}\nequals_source = true\n"
            ),
        )
        .unwrap();
        let source = table.join("delta").canonicalize().unwrap();
        std::fs::write(
            root.join("config.toml"),
            format!(
                r#"[[job]]
name = "{name}"
source = "{}"
snapshots = {{ kind = "delta_copy", location = "backups", pattern = "{name}_{{date}}" }}
sandbox = "sandbox"
suite = "suite.toml"
objectives = {{ rpo = "1d", rto = "1h" }}
"#,
                source.display()
            ),
        )
        .unwrap();
        let config = restore_drill::config::load(&root.join("config.toml")).unwrap();
        let report = restore_drill::drill::run_drill(
            config.job(&name).unwrap(),
            &Default::default(),
            &restore_drill::clock::SystemClock,
            &restore_drill::drill::NoProgress,
        )
        .await;
        assert_eq!(
            report.outcome,
            Outcome::Passed,
            "{name}: {}",
            findings(&report)
        );
        let rows = report.checks.iter().find(|c| c.id == "rows").unwrap();
        assert_eq!(rows.observed, serde_json::json!(expected), "{name}");
        assert_eq!(
            rows.expected["equals_source"],
            serde_json::json!(expected),
            "{name}"
        );
    }
}
