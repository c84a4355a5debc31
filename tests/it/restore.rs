//! `restore`: a snapshot restored for real into a target, only when a drill passed it with the
//! same configuration and suite; the target verified with the suite and the drill's
//! fingerprint; what the target held moved aside, never deleted; every restore recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::helpers::{JOB, Lake, SUITE, check, cli, files_below, prepend, stderr, stdout};

/// A lake with one snapshot, a journal, and its config.
async fn lake_with_journal(rows: usize) -> (Lake, PathBuf) {
    let lake = Lake::new(2, rows).await;
    lake.snapshot("2026-11-30");
    let config = lake.config(SUITE, "1000d");
    prepend(&config, "[history]\njournal = \"journal\"");
    (lake, config)
}

/// `run --json` of the job; its report.
fn drill(config: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", "--config", config.to_str().unwrap(), JOB, "--json"];
    args.extend_from_slice(extra);
    let out = cli(&args);
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)))
}

/// `restore` of the job into `to` with `extra` arguments.
fn restore(config: &Path, to: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "restore",
        "--config",
        config.to_str().unwrap(),
        JOB,
        "--to",
        to.to_str().unwrap(),
        "--reason",
        "INC-42: table truncated by a bad deploy",
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

/// The `fingerprint` check's observed value in a report.
fn fingerprint(report: &serde_json::Value) -> serde_json::Value {
    check(report, "fingerprint")["observed"].clone()
}

/// Every file below `dir` with its bytes, by path relative to `dir`.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_below(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// The journal's records of the job.
fn records(lake: &Lake) -> Vec<serde_json::Value> {
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, chain) = journal.read(JOB).unwrap();
    assert!(chain.intact(), "{chain:?}");
    records.into_iter().map(|s| s.record.report).collect()
}

#[tokio::test]
async fn a_restore_into_a_fresh_target_passes_and_equals_what_its_drill_verified() {
    let (lake, config) = lake_with_journal(500).await;
    let drilled = drill(&config, &[]);
    assert_eq!(drilled["outcome"], "passed", "{drilled}");
    let target = lake.root.join("restored/transactions");

    // The plan first: nothing written.
    let out = restore(&config, &target, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = stdout(&out);
    assert!(
        plan.contains("snapshot   transactions_2026-11-30"),
        "{plan}"
    );
    assert!(plan.contains(drilled["run_id"].as_str().unwrap()), "{plan}");
    assert!(
        !target.exists() && records(&lake).len() == 1,
        "a dry run wrote"
    );

    let out = restore(&config, &target, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["outcome"], "passed", "{report}");
    assert_eq!(fingerprint(&report), fingerprint(&drilled));
    let fingerprint_check = check(&report, "fingerprint");
    assert_eq!(fingerprint_check["outcome"], "passed");
    assert_eq!(
        fingerprint_check["expected"]["drill_run_id"],
        drilled["run_id"]
    );
    let recovery = &report["recovery"];
    assert_eq!(recovery["target"], target.to_str().unwrap());
    assert_eq!(
        recovery["reason"],
        "INC-42: table truncated by a bad deploy"
    );
    assert_eq!(recovery["forced"], false);
    assert!(recovery["moved_aside"].is_null());
    assert!(!recovery["user"].as_str().unwrap().is_empty());
    assert_eq!(recovery["drill_run_id"], drilled["run_id"]);
    // The target is the snapshot's table, file for file; the sandbox holds nothing of it.
    assert_eq!(
        contents(&target),
        contents(&lake.root.join("backups/daily/transactions_2026-11-30"))
    );
    lake.assert_no_run_left();

    // Recorded as a restore: in the journal, in `history`, in the audit report; not a drill.
    let recorded = records(&lake);
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1]["recovery"], *recovery);
    let config_arg = config.to_str().unwrap();
    let out = cli(&["history", "--config", config_arg]);
    assert!(
        stderr(&out).contains("1 drill and 1 restore from the journal"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!(
            "restore into {} by {}@",
            target.display(),
            recovery["user"].as_str().unwrap()
        )),
        "{}",
        stdout(&out)
    );
    let audit = crate::helpers::audit_of_today(&config);
    assert!(audit.contains("### Restores"), "{audit}");
    assert!(
        audit.contains("INC-42: table truncated by a bad deploy"),
        "{audit}"
    );
    assert!(
        audit.contains("| drills | passed |") && audit.contains("| 1 | 1 | 0 | 0 | 0 |"),
        "the restore is not counted as a drill: {audit}"
    );
}

#[tokio::test]
async fn a_target_that_holds_data_is_refused_and_replace_moves_it_aside_byte_for_byte() {
    let (lake, config) = lake_with_journal(300).await;
    assert_eq!(drill(&config, &[])["outcome"], "passed");
    let target = lake.root.join("restored");
    std::fs::create_dir_all(target.join("nested")).unwrap();
    std::fs::write(target.join("damaged.parquet"), b"PAR1 what was there").unwrap();
    std::fs::write(target.join("nested/notes.txt"), [0u8, 1, 2, 255, 254]).unwrap();
    let before = contents(&target);

    let out = restore(&config, &target, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("already holds data; nothing was written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(contents(&target), before, "the refusal changed the target");
    assert_eq!(records(&lake).len(), 1, "a refused restore is not recorded");

    let out = restore(&config, &target, &["--replace"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let aside = printed
        .lines()
        .find_map(|l| l.strip_prefix("moved      its previous contents are at "))
        .unwrap_or_else(|| panic!("no moved-aside line: {printed}"));
    assert!(aside.starts_with(&format!("{}.moved-aside-run-", target.display())));
    assert_eq!(contents(Path::new(aside)), before, "not byte for byte");
    assert!(target.join("_delta_log").is_dir(), "{printed}");
    assert_eq!(records(&lake)[1]["recovery"]["moved_aside"], aside);
}

#[tokio::test]
async fn the_parity_gate_refuses_a_snapshot_never_drilled_or_drilled_with_another_suite() {
    let (lake, config) = lake_with_journal(300).await;
    let target = lake.root.join("restored");
    let out = restore(&config, &target, &["--snapshot", "transactions_2026-11-30"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("was never drilled") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists(), "a refused restore wrote");

    let drilled = drill(&config, &[]);
    assert_eq!(drilled["outcome"], "passed");
    // The suite changes: what would be checked now was never drilled.
    let suite = lake.root.join("checks/suite.toml");
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(
        &suite,
        format!("{text}\n[[check]]\nid = \"more\"\nkind = \"row_count\"\nmin = 2\n"),
    )
    .unwrap();
    let out = restore(&config, &target, &["--snapshot", "transactions_2026-11-30"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("with another suite than the current one"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists(), "a refused restore wrote");

    // Forced: it goes ahead, is still compared with the drill's fingerprint, and says so.
    let out = restore(
        &config,
        &target,
        &["--snapshot", "transactions_2026-11-30", "--force", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["recovery"]["forced"], true);
    assert!(
        report["recovery"]["gate"]
            .as_str()
            .unwrap()
            .contains("another suite"),
        "{report}"
    );
    assert_eq!(fingerprint(&report), fingerprint(&drilled));
    let recorded = records(&lake);
    assert_eq!(recorded.last().unwrap()["recovery"]["forced"], true);
}

#[tokio::test]
async fn a_damaged_snapshot_fails_its_verification_and_the_target_may_not_be_used() {
    let (lake, config) = lake_with_journal(2_000).await;
    assert_eq!(drill(&config, &[])["outcome"], "passed");
    // After the drill, a data file of the snapshot is damaged: same size, other bytes.
    let snapshot = lake.root.join("backups/daily/transactions_2026-11-30");
    let file = crate::helpers::data_files(&snapshot).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, bytes).unwrap();

    let target = lake.root.join("restored");
    let out = restore(&config, &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!(
            "outcome    FAILED — {} failed its verification and may NOT be used",
            target.display()
        )),
        "{printed}"
    );
    assert_eq!(records(&lake).last().unwrap()["outcome"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_restore_keeps_the_moved_aside_data_and_says_where_it_is() {
    let (lake, config) = crate::helpers::slow_drill("[history]\njournal = \"journal\"").await;
    assert_eq!(drill(&config, &[])["outcome"], "passed");
    let target = lake.root.join("restored");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("precious.bin"), vec![7u8; 100_000]).unwrap();
    let before = contents(&target);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .args([
            "restore",
            "--config",
            config.to_str().unwrap(),
            JOB,
            "--to",
            target.to_str().unwrap(),
            "--reason",
            "INC-43",
            "--replace",
            "--json",
        ])
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the restore writes into the target, its old contents are already aside.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !target.join("_delta_log").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the restore never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["outcome"], "aborted", "{report}");
    let aside = report["recovery"]["moved_aside"].as_str().unwrap();
    assert_eq!(contents(Path::new(aside)), before);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("must not be used") && error.contains(aside),
        "{error}"
    );
    let recorded = records(&lake);
    assert_eq!(recorded.last().unwrap()["outcome"], "aborted");
    assert_eq!(recorded.last().unwrap()["recovery"]["moved_aside"], aside);
}

#[test]
fn a_pg_dump_job_restores_into_a_database_and_a_folder_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::unreachable_database_job(dir.path());
    let out = cli(&[
        "restore",
        "--config",
        config.to_str().unwrap(),
        "app",
        "--to",
        dir.path().join("restored").to_str().unwrap(),
        "--reason",
        "INC-1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("restores dumps into a database: give --to postgres://"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("restored").exists());
}

#[tokio::test]
async fn on_a_machine_without_the_journal_the_gate_reads_postgresql() {
    let lake = Lake::new(2, 300).await;
    lake.snapshot("2026-11-30");
    let db = crate::history::Database::new().await;
    let config = lake.config(SUITE, "1000d");
    prepend(
        &config,
        &format!(
            "[history]\njournal = \"journal\"\npostgres = \"{}\"",
            db.url()
        ),
    );
    let drilled = drill(&config, &[]);
    assert_eq!(drilled["outcome"], "passed", "{drilled}");
    // Another machine: the same configuration, no journal.
    std::fs::remove_dir_all(lake.root.join("journal")).unwrap();
    let target = lake.root.join("restored");
    let out = restore(&config, &target, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["recovery"]["drill_run_id"], drilled["run_id"]);
    assert_eq!(report["recovery"]["forced"], false);
    assert_eq!(
        db.kinds_and_outcomes().await.last().unwrap(),
        &("restore".to_string(), "passed".to_string())
    );
}
