//! Smoke tests (`[[job.smoke]]`): the team's programs run against the restored data once the
//! suite passed, with the restored data in their environment and nothing else of
//! restore-drill's; a failing, timed-out or missing command is a finding.

use std::path::{Path, PathBuf};

use crate::helpers::{JOB, Lake, SUITE, append, cli, stderr, stdout};

/// A lake with one snapshot and a config whose job ends with `smoke` (`[[job.smoke]]` tables).
async fn lake_with_smoke(smoke: &str) -> (Lake, PathBuf) {
    let lake = Lake::new(2, 300).await;
    lake.snapshot("2026-11-30");
    let config = lake.config(SUITE, "1000d");
    append(&config, smoke);
    (lake, config)
}

/// `run --json` with a secret in restore-drill's own environment; the exit code and report.
fn run(config: &Path) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .args(["run", "--config", config.to_str().unwrap(), JOB, "--json"])
        .env("RUST_LOG", "off")
        .env("RESTORE_DRILL_STATE_DIR", crate::helpers::state_dir())
        .env("RESTORE_DRILL_TEST_SECRET", "hunter2-do-not-leak")
        .output()
        .unwrap();
    let report = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), report)
}

use crate::helpers::check;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_test_sees_the_restored_data_and_nothing_else_and_a_failing_one_fails_the_drill() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().display().to_string();
    let smoke = format!(
        r#"[[job.smoke]]
name = "table-is-there"
command = ["sh", "-c", "test -d \"$RESTORE_DRILL_RESTORED_PATH/_delta_log\" && env > \"$OUT/env.txt\" && echo found the table"]
env = {{ OUT = "{out}" }}
"#
    );
    let (lake, config) = lake_with_smoke(&smoke).await;
    let out_arg = config.to_str().unwrap();
    let plan = cli(&["run", "--config", out_arg, JOB, "--dry-run"]);
    assert!(
        stdout(&plan).contains("smoke      table-is-there: sh -c"),
        "{}",
        stdout(&plan)
    );

    let (code, report) = run(&config);
    assert_eq!(code, 0, "{report:#}");
    let smoke_check = check(&report, "smoke:table-is-there");
    assert_eq!(smoke_check["outcome"], "passed", "{smoke_check:#}");
    assert_eq!(smoke_check["observed"]["exit_code"], 0);
    assert!(
        smoke_check["observed"]["output"]
            .as_str()
            .unwrap()
            .contains("found the table")
    );
    assert!(
        report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["phase"] == "smoke"),
        "{report:#}"
    );
    let env = std::fs::read_to_string(out_dir.path().join("env.txt")).unwrap();
    let sandbox = report["restore"]["sandbox"].as_str().unwrap();
    for expected in [
        format!("RESTORE_DRILL_JOB={JOB}"),
        format!(
            "RESTORE_DRILL_RUN_ID={}",
            report["run_id"].as_str().unwrap()
        ),
        "RESTORE_DRILL_SNAPSHOT=transactions_2026-11-30".to_string(),
        "RESTORE_DRILL_SNAPSHOT_VERSION=1".to_string(),
        format!("RESTORE_DRILL_RESTORED_PATH={sandbox}"),
        "RESTORE_DRILL_RESTORED_URI=file://".to_string(),
        format!("OUT={out}"),
    ] {
        assert!(env.contains(&expected), "{expected} missing:\n{env}");
    }
    for absent in [
        "RESTORE_DRILL_TEST_SECRET",
        "hunter2",
        "RESTORE_DRILL_STATE_DIR",
        "RUST_LOG",
    ] {
        assert!(!env.contains(absent), "{absent} leaked:\n{env}");
    }
    lake.assert_no_run_left();

    // A second one that fails: the drill fails, naming its status and its last words.
    append(
        &config,
        "[[job.smoke]]\nname = \"nightly-report\"\ncommand = \"echo computing; echo the report query failed >&2; exit 3\"\nshell = true\n",
    );
    let (code, report) = run(&config);
    assert_eq!(code, 1, "{report:#}");
    let failed = check(&report, "smoke:nightly-report");
    assert_eq!(failed["outcome"], "failed");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("exited with status 3") && message.contains("the report query failed"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_test_past_its_timeout_is_stopped_with_its_children() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().display().to_string();
    let smoke = format!(
        r#"[[job.smoke]]
name = "hangs"
command = "sleep 300 & echo $! > \"$OUT/child.pid\"; sleep 300"
shell = true
timeout = "1s"
env = {{ OUT = "{out}" }}
"#
    );
    let (_lake, config) = lake_with_smoke(&smoke).await;
    let started = std::time::Instant::now();
    let (code, report) = run(&config);
    assert_eq!(code, 1, "{report:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    let message = check(&report, "smoke:hangs")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("did not finish within its timeout of 1s"),
        "{message}"
    );
    let child: u32 = std::fs::read_to_string(out_dir.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while Path::new(&format!("/proc/{child}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        if state.contains(") Z ") {
            break; // ended, waiting to be reaped by init
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command's child {child} still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_names_a_smoke_command_that_cannot_start() {
    let (lake, config) = lake_with_smoke(
        "[[job.smoke]]\nname = \"report\"\ncommand = [\"no-such-program-restore-drill\"]\n\n[[job.smoke]]\nname = \"script\"\ncommand = [\"checks/not-executable.sh\"]\n",
    )
    .await;
    std::fs::write(lake.root.join("checks/not-executable.sh"), "exit 0\n").unwrap();
    let out = cli(&[
        "validate",
        "--config",
        config.to_str().unwrap(),
        "--offline",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(
        text.contains(
            "job `transactions`: smoke test `report`: `no-such-program-restore-drill` is not found on the PATH"
        ),
        "{text}"
    );
    assert!(
        text.contains("smoke test `script`:") && text.contains("is not executable"),
        "{text}"
    );
    // A command written as one string without `shell = true` is a configuration error.
    append(
        &config,
        "[[job.smoke]]\nname = \"one-string\"\ncommand = \"echo hi\"\n",
    );
    let out = cli(&[
        "validate",
        "--config",
        config.to_str().unwrap(),
        "--offline",
    ]);
    assert!(
        stderr(&out).contains("add `shell = true`"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_serve_mid_smoke_test_stops_the_command_and_records_the_drill_aborted() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().display().to_string();
    let smoke = format!(
        r#"[[job.smoke]]
name = "long-report"
command = "echo $$ > \"$OUT/command.pid\"; sleep 300"
shell = true
env = {{ OUT = "{out}" }}
"#
    );
    let (lake, config) = lake_with_smoke(&smoke).await;
    crate::helpers::prepend(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"0s\"\n\n[history]\njournal = \"journal\"",
    );
    let mut service = crate::serve::Service::start(&config);
    let (status, body) = crate::serve::http(service.address, "POST", &format!("/jobs/{JOB}/run"));
    assert_eq!(status, 202, "{body}");
    let pid_file = out_dir.path().join("command.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&pid_file).map_or(true, |t| t.trim().is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the smoke test never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    service.signal("TERM");
    let (code, log) = service.wait_exit(std::time::Duration::from_secs(60));
    assert_eq!(code, Some(0), "{log}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the smoke command {pid} still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, _) = journal.read(JOB).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record.report["outcome"], "aborted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rto_includes_the_smoke_tests_only_when_the_job_says_so() {
    let smoke = "[[job.smoke]]\nname = \"slow\"\ncommand = [\"sleep\", \"1\"]\n";
    let (_lake, config) = lake_with_smoke(smoke).await;
    let (code, report) = run(&config);
    assert_eq!(code, 0, "{report:#}");
    let rto = check(&report, "rto")["observed"].clone();
    let part = |key: &str, rto: &serde_json::Value| rto[key].as_f64().unwrap();
    assert!(rto.get("smoke_seconds").is_none(), "{rto:#}");
    let without = part("restore_seconds", &rto) + part("verify_seconds", &rto);
    assert!((part("seconds", &rto) - without).abs() < 0.01, "{rto:#}");

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("objectives =", "rto_includes_smoke = true\nobjectives ="),
    )
    .unwrap();
    let (code, report) = run(&config);
    assert_eq!(code, 0, "{report:#}");
    let rto = check(&report, "rto")["observed"].clone();
    assert!(part("smoke_seconds", &rto) >= 1.0, "{rto:#}");
    let with =
        part("restore_seconds", &rto) + part("verify_seconds", &rto) + part("smoke_seconds", &rto);
    assert!((part("seconds", &rto) - with).abs() < 0.01, "{rto:#}");
}
