//! `selftest`: a passing drill's restored table copied and damaged in each known way, each copy
//! drilled as a backup; the matrix says which damages the job's checks catch, by which checks,
//! and what would catch the ones they miss.

use std::path::Path;

use crate::helpers::{JOB, Lake, SUITE, cli, prepend, stderr, stdout};

/// `selftest --json` of the lake's job with a fixed seed: the exit code and the report.
fn selftest(config: &Path, seed: &str) -> (i32, serde_json::Value) {
    crate::helpers::selftest(config, JOB, seed)
}

/// The matrix's line of `damage`.
fn line<'a>(report: &'a serde_json::Value, damage: &str) -> &'a serde_json::Value {
    report["damages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["damage"] == damage)
        .unwrap_or_else(|| panic!("no {damage} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_that_compares_with_the_source_catches_every_damage() {
    let lake = Lake::new(3, 400).await;
    lake.snapshot("2026-11-30");
    let config = lake.config(SUITE, "26h");
    let (code, report) = selftest(&config, "42");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["status"], "judged");
    assert_eq!(report["seed"], 42);
    assert_eq!(report["applicable"], 11, "{report:#}");
    assert_eq!(report["caught"], 11, "{report:#}");
    for (damage, by) in [
        ("missing_file", "structure"),
        ("truncated_file", "structure"),
        ("missing_commit", "structure"),
        ("rows_lost", "rows"),
        ("rows_duplicated", "ids-unique"),
        ("values_drifted", "fingerprint"),
        ("old_snapshot", "rpo"),
    ] {
        let caught_by = line(&report, damage)["caught_by"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            caught_by.iter().any(|c| c == by),
            "{damage} not caught by {by}: {caught_by:?}"
        );
    }
    // Cleaned like a drill: no run folder is left in the sandbox.
    lake.assert_no_run_left();
    // The same seed inflicts the same damages.
    let (_, again) = selftest(&config, "42");
    for damage in [
        "rows_lost",
        "values_nulled",
        "string_changed",
        "column_dropped",
    ] {
        assert_eq!(
            line(&report, damage)["detail"],
            line(&again, damage)["detail"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_suite_shows_its_misses_with_the_checks_that_would_catch_them() {
    let mut lake = Lake::new(2, 400).await;
    lake.snapshot("2026-11-30");
    // The source moved on and its log no longer reaches the snapshot's version: nothing to
    // compare with, so only the suite and the structure check judge the backup.
    lake.append(100).await;
    lake.append(100).await;
    crate::helpers::clean_up_log(&lake.source(), None).await;
    let config = lake.config(
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1\n",
        "1000d",
    );
    let db = crate::history::Database::new().await;
    prepend(
        &config,
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[history]\njournal = \"journal\"\npostgres = \"{}\"",
            db.url()
        ),
    );
    let (code, report) = selftest(&config, "7");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["status"], "judged");
    for damage in ["missing_file", "truncated_file"] {
        assert_eq!(line(&report, damage)["outcome"], "caught", "{report:#}");
    }
    for (damage, suggestion) in [
        ("rows_lost", "`row_count` with `equals_source = true`"),
        ("values_nulled", "`not_null`"),
        ("values_drifted", "`sum` with `equals_source = true`"),
        ("string_changed", "`in_set`"),
    ] {
        let l = line(&report, damage);
        assert_eq!(l["outcome"], "missed", "{l:#}");
        assert!(
            l["suggestion"].as_str().unwrap().contains(suggestion),
            "{l:#}"
        );
    }
    assert!(report["caught"].as_u64().unwrap() < report["applicable"].as_u64().unwrap());
    // The matrix in words names each miss with its suggestion.
    let out = cli(&[
        "selftest",
        "--config",
        config.to_str().unwrap(),
        JOB,
        "--seed",
        "7",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("MISSED  rows lost, the backup consistent without them")
            && text.contains("add `row_count` with `equals_source = true`"),
        "{text}"
    );
    lake.assert_no_run_left();

    // Recorded, as self-tests of their own kind: `history`, the audit report, and `serve`'s
    // metrics of the newest.
    let config_arg = config.to_str().unwrap();
    let out = cli(&["history", "--config", config_arg]);
    assert!(
        stderr(&out).contains("0 drills and 2 self-tests from PostgreSQL"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("  self-test: caught "),
        "{}",
        stdout(&out)
    );
    let audit = crate::helpers::audit_of_today(&config);
    assert!(
        audit.contains(&format!(
            "- **Drill strength:** {} of {} damages caught by self-test",
            report["caught"], report["applicable"]
        )) && audit.contains("rows_lost missed (add `row_count`"),
        "{audit}"
    );
    let rows = db.kinds_and_outcomes().await;
    let failed = ("selftest".to_string(), "failed".to_string());
    assert_eq!(rows, vec![failed.clone(), failed]);
    let service = crate::serve::Service::start(&config);
    let (_, metrics) = service.get("/metrics");
    let value = |series: &str| {
        crate::serve::sample(&metrics, series)
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert_eq!(
        value(&format!(
            "restore_drill_selftest_caught{{damage=\"rows_lost\",job=\"{JOB}\"}}"
        )),
        0.0
    );
    assert_eq!(
        value(&format!(
            "restore_drill_selftest_caught{{damage=\"missing_file\",job=\"{JOB}\"}}"
        )),
        1.0
    );
    let ratio = value(&format!(
        "restore_drill_selftest_caught_ratio{{job=\"{JOB}\"}}"
    ));
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_drill_fails_is_reported_and_nothing_is_damaged() {
    let lake = Lake::new(2, 300).await;
    let snapshot = lake.snapshot("2026-11-30");
    let file = crate::helpers::data_files(&snapshot).remove(0);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let config = lake.config(SUITE, "26h");
    let (code, report) = selftest(&config, "1");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["status"], "drill_not_passed");
    assert_eq!(report["drill_outcome"], "failed");
    assert_eq!(report["damages"], serde_json::json!([]));
    // Only the failed drill's own folder is there, kept for inspection as a drill keeps it.
    let runs: Vec<_> = std::fs::read_dir(lake.sandbox().join(JOB))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_self_tests_a_job_on_its_selftest_schedule() {
    let lake = Lake::new(2, 300).await;
    lake.snapshot("2026-11-30");
    let config = lake.config(SUITE, "26h");
    crate::helpers::append(&config, "selftest_schedule = \"*/2 * * * * *\"");
    prepend(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"0s\"\n\n[history]\njournal = \"journal\"",
    );
    let mut service = crate::serve::Service::start(&config);
    let series = format!("restore_drill_selftest_caught_ratio{{job=\"{JOB}\"}}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let ratio = loop {
        let (_, metrics) = service.get("/metrics");
        if let Some(ratio) = crate::serve::sample(&metrics, &series) {
            break ratio;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no self-test ran:\n{metrics}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // Each scheduled self-test takes a new seed; a backup missing its newest commit may pass a
    // 26-hour RPO objective (the one damage this suite can miss).
    assert!(ratio >= 10.0 / 11.0 - 1e-9, "{ratio}");
    service.signal("TERM");
    let (code, log) = service.wait_exit(std::time::Duration::from_secs(60));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("self-test finished"), "{log}");
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, _) = journal.read(JOB).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.record.report["record"] == "selftest"
                && r.record.report["status"] == "judged"
                && r.record.report["applicable"] == 11),
        "{records:#?}"
    );
    // The self-test is no drill: the job was never drilled.
    assert!(
        records
            .iter()
            .all(|r| r.record.report["record"] == "selftest")
    );
}
