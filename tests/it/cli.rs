//! The commands as a user runs them: exit codes, the summary, the JSON report, listings.

use crate::helpers::{JOB, Lake, SUITE, cli, data_files, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_0_for_a_passed_drill_and_prints_a_summary() {
    let lake = Lake::new(2, 1_000).await;
    lake.snapshot("2026-11-28");
    let config = lake.config(SUITE, "26h");
    let out = cli(&["run", "--config", config.to_str().unwrap(), JOB]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("snapshot   transactions_2026-11-28 (version 1"),
        "{text}"
    );
    assert!(text.contains("ok   rows"), "{text}");
    assert!(
        text.contains("outcome    PASSED — sandbox removed"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_1_for_a_failed_drill_and_the_json_report_keeps_its_contract() {
    let lake = Lake::new(2, 1_000).await;
    let snapshot = lake.snapshot("2026-11-28");
    std::fs::remove_file(data_files(&snapshot).remove(0)).unwrap();
    let config = lake.config(SUITE, "26h");
    let out = cli(&["run", "--config", config.to_str().unwrap(), JOB, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "job",
        "run_id",
        "started_at",
        "outcome",
        "error",
        "snapshot",
        "restore",
        "checks",
        "rpo_seconds",
        "rto_seconds",
        "objectives",
        "findings",
    ] {
        assert!(
            report.get(field).is_some(),
            "missing `{field}` in {report:#}"
        );
    }
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["job"], JOB);
    for field in ["id", "location", "version", "commit_timestamp"] {
        assert!(report["snapshot"].get(field).is_some(), "snapshot.{field}");
    }
    for field in ["sandbox", "files", "bytes", "seconds"] {
        assert!(report["restore"].get(field).is_some(), "restore.{field}");
    }
    for field in ["id", "kind", "severity", "outcome", "observed", "expected"] {
        assert!(report["checks"][0].get(field).is_some(), "checks[].{field}");
    }
    assert_eq!(report["objectives"]["rpo_seconds"], 93_600.0);
    assert_eq!(report["findings"][0]["check"], "structure");
    assert_eq!(report["findings"][0]["severity"], "fail");
    // The kept sandbox is where the report says.
    let sandbox = report["restore"]["sandbox"].as_str().unwrap();
    assert!(sandbox.starts_with(lake.sandbox().to_str().unwrap()));
    assert!(std::path::Path::new(sandbox).join("_delta_log").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_2_when_no_snapshot_matches_and_names_location_and_pattern() {
    let lake = Lake::new(1, 100).await;
    std::fs::create_dir_all(lake.root.join("backups/daily/other_2026-11-28")).unwrap();
    let config = lake.config(SUITE, "26h");
    let out = cli(&["run", "--config", config.to_str().unwrap(), JOB]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(text.contains("no snapshot in"), "{text}");
    assert!(
        text.contains(lake.root.join("backups/daily").to_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("`transactions_{date}`"), "{text}");
    assert!(lake.sandbox_contents().is_empty(), "nothing may be written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_lists_newest_first_with_version_files_and_bytes() {
    let mut lake = Lake::new(1, 500).await;
    lake.snapshot("2026-11-26");
    lake.append(500).await;
    lake.snapshot("2026-11-27");
    let config = lake.config(SUITE, "26h");
    let out = cli(&["snapshots", "--config", config.to_str().unwrap(), JOB]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SNAPSHOT"), "{text}");
    assert!(lines[1].starts_with("transactions_2026-11-27"), "{text}");
    assert!(lines[2].starts_with("transactions_2026-11-26"), "{text}");
    let fields: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(fields[1], "1", "version: {text}");
    assert!(lines[1].contains("KiB"), "{text}");
}

#[test]
fn an_unknown_job_names_the_jobs_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("suite.toml"), SUITE).unwrap();
    std::fs::write(
        root.join("c.toml"),
        r#"[[job]]
name = "orders"
source = "lake"
snapshots = { kind = "delta_copy", location = "backups", pattern = "o_{date}" }
sandbox = "sandbox"
suite = "suite.toml"
objectives = { rpo = "1d", rto = "1h" }
"#,
    )
    .unwrap();
    let out = cli(&[
        "run",
        "--config",
        root.join("c.toml").to_str().unwrap(),
        "order",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no job named `order`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("its jobs are: orders"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_demo_drills_a_healthy_and_a_damaged_snapshot_and_prints_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&[
        "demo",
        "--dir",
        dir.path().to_str().unwrap(),
        "--rows",
        "20000",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("outcome    PASSED — sandbox removed"),
        "{text}"
    );
    assert!(
        text.contains("outcome    FAILED — sandbox kept for inspection"),
        "{text}"
    );
    assert!(
        text.contains("differ in size from the log (truncated or replaced)"),
        "{text}"
    );
    assert!(
        text.contains(
            "restore_drill_runs_total{job=\"financial_transactions\",outcome=\"failed\"} 1"
        ),
        "{text}"
    );
    // The PostgreSQL part (this machine has server binaries): a dump drilled and passing, one
    // cut in half failing on pg_restore's error.
    assert!(
        text.contains("== Drill 3: the newest dump of a PostgreSQL database"),
        "{text}"
    );
    assert!(
        text.contains("(custom dump of database app, made "),
        "{text}"
    );
    assert!(
        text.contains("pg_restore reported 1 error: could not read from input file"),
        "{text}"
    );
    assert_eq!(text.matches("outcome    PASSED").count(), 2, "{text}");
    assert_eq!(text.matches("outcome    FAILED").count(), 2, "{text}");
    assert!(
        text.contains("restore_drill_phase_seconds{job=\"app_db\",phase=\"fetch\"}"),
        "{text}"
    );
    // Its smoke test ran against the restored table of the healthy snapshot.
    assert!(
        text.contains("ok   smoke:ledger-export") && text.contains("output=ledger export input: "),
        "{text}"
    );
    // The self-test of its job: every damage caught, in the matrix and the metrics.
    assert!(
        text.contains("caught     11 of 11 damages that apply (100%)"),
        "{text}"
    );
    assert!(
        text.contains(
            "restore_drill_selftest_caught{damage=\"rows_lost\",job=\"financial_transactions\"} 1"
        ),
        "{text}"
    );
    assert!(dir.path().join("config.toml").is_file());
    assert!(
        dir.path()
            .join("checks/financial_transactions.toml")
            .is_file()
    );
    // Its drills are recorded: the job's runbook warns of the failed one and lists the
    // snapshot that passed.
    let config = dir.path().join("config.toml");
    let out = cli(&[
        "runbook",
        "--config",
        config.to_str().unwrap(),
        "financial_transactions",
    ]);
    let runbook = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        runbook.contains("**Warning:** The last drill") && runbook.contains("failed"),
        "{runbook}"
    );
    assert!(
        runbook.contains("Measured by the last 2 drill(s)"),
        "{runbook}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let lake = Lake::new(2, 1000).await;
    lake.snapshot("2026-11-01");
    lake.snapshot("2026-11-02");
    let config = lake.config(SUITE, "1000d");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[history]\njournal = \"journal\"\n\n{text}"),
    )
    .unwrap();
    let snapshot = lake.root.join("backups/daily/transactions_2026-11-02");
    let files = crate::helpers::files_below(&snapshot);
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();

    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        JOB,
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "nothing was written".to_string(),
        "snapshot   transactions_2026-11-02 (version 1,".to_string(),
        format!("restore    copy every object: {} files,", files.len()),
        format!("from {}", snapshot.display()),
        format!("to   {}/{JOB}/<run-id>/", lake.sandbox().display()),
        "ids-unique                   unique".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected:?} not in:\n{text}");
    }
    let out = cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        JOB,
        "--dry-run",
        "--json",
        "--snapshot",
        "transactions_2026-11-01",
    ]);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["snapshot"]["id"], "transactions_2026-11-01");
    assert_eq!(plan["checks"].as_array().unwrap().len(), 4);
    let newest: serde_json::Value = serde_json::from_str(&stdout(&cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        JOB,
        "--dry-run",
        "--json",
    ])))
    .unwrap();
    assert_eq!(newest["bytes"], bytes);
    assert!(!lake.sandbox().exists(), "the dry run made the sandbox");
    assert!(
        !lake.root.join("journal").exists(),
        "the dry run wrote a record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_drill_removes_the_sandbox_records_the_drill_as_aborted_and_exits_130() {
    let (lake, config) = crate::helpers::slow_drill("[history]\njournal = \"journal\"").await;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .args(["run", "--config", config.to_str().unwrap(), JOB, "--json"])
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let job_dir = lake.sandbox().join(JOB);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_dir(&job_dir).is_ok_and(|mut d| d.any(|e| e.unwrap().path().is_dir())) {
        assert!(
            std::time::Instant::now() < deadline,
            "the drill never made its sandbox"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["outcome"], "aborted");
    assert_eq!(
        std::fs::read_dir(&job_dir).unwrap().count(),
        0,
        "sandbox left behind"
    );
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, _) = journal.read(JOB).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record.report["outcome"], "aborted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_carry_no_backtrace_even_with_rust_backtrace_set() {
    let lake = Lake::new(1, 100).await;
    let snapshot = lake.snapshot("2026-11-28");
    let commit = snapshot.join(format!("_delta_log/{:020}.json", 0));
    let mut text = std::fs::read_to_string(&commit).unwrap();
    text.push_str("{\"add\": not json}\n");
    std::fs::write(&commit, text).unwrap();
    let config = lake.config(SUITE, "26h");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .args(["run", "--config", config.to_str().unwrap(), JOB, "--json"])
        .env("RUST_LOG", "off")
        .env("RUST_BACKTRACE", "1")
        .env("RESTORE_DRILL_STATE_DIR", crate::helpers::state_dir())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("\"outcome\""), "{report}{}", stderr(&out));
    assert!(
        !report.contains("std::backtrace") && !report.contains("   0: "),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_cancels_a_drill_that_outlives_the_jobs_timeout() {
    let lake = Lake::new(1, 1_000).await;
    lake.snapshot("2026-11-28");
    let config = lake.config(&crate::helpers::many_checks(5_000), "26h");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "[history]\njournal = \"journal\"\n\n{}",
            text.replace("objectives =", "timeout = \"1s\"\nobjectives =")
        ),
    )
    .unwrap();
    let out = cli(&["run", "--config", config.to_str().unwrap(), JOB, "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["outcome"], "error");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("did not finish within its timeout of 1s"),
        "{report:#}"
    );
    lake.assert_no_run_left();
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, _) = journal.read(JOB).unwrap();
    assert_eq!(records[0].record.report["outcome"], "error");
}
