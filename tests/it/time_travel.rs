//! `delta_time_travel` on local disk: the version at a point in time is read from the source's
//! own history and written as a new table in the sandbox; a point the log or the data files no
//! longer reach fails the drill with the time-travel window named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use deltalake::protocol::SaveMode;
use restore_drill::demo::data;
use restore_drill::drill::{DrillReport, Outcome};
use restore_drill::storage::directory_url;

use crate::helpers::{JOB, Lake, SUITE, cli, findings, stderr, stdout};

/// A source with three commits of 1,000 rows (versions 0, 1, 2); returns the lake and a time
/// between version 0 and version 1.
async fn three_versions() -> (Lake, String) {
    let mut lake = Lake::new(1, 1000).await;
    std::thread::sleep(Duration::from_millis(30));
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(Duration::from_millis(30));
    lake.append(1000).await;
    lake.append(1000).await;
    (lake, between)
}

/// A config drilling the source's history with these `snapshots` settings.
fn config(lake: &Lake, snapshots: &str) -> PathBuf {
    std::fs::create_dir_all(lake.root.join("checks")).unwrap();
    std::fs::write(lake.root.join("checks/suite.toml"), SUITE).unwrap();
    let path = lake.root.join("time-travel.toml");
    std::fs::write(
        &path,
        format!(
            r#"[[job]]
name = "{JOB}"
source = "lake/transactions"
snapshots = {snapshots}
sandbox = "sandbox"
suite = "checks/suite.toml"
objectives = {{ rpo = "1000d", rto = "1h" }}
compare = {{ key = ["transaction_id"], sample_fraction = 0.5 }}
"#
        ),
    )
    .unwrap();
    path
}

fn outcome_of(report: &DrillReport, check: &str) -> String {
    report
        .checks
        .iter()
        .find(|c| c.id == check)
        .map(|c| format!("{:?}", c.outcome))
        .unwrap_or_else(|| panic!("no check {check}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_at_a_point_in_time_is_rewritten_and_verified() {
    let (lake, between) = three_versions().await;

    // The newest version (lag 0s): 3,000 rows, written as a new table's first version.
    let newest = config(&lake, r#"{ kind = "delta_time_travel", lag = "0s" }"#);
    let report = lake.drill(&newest, None).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    let snapshot = report.snapshot.as_ref().unwrap();
    assert_eq!((snapshot.id.as_str(), snapshot.version), ("v2", Some(2)));
    assert_eq!(report.verify.as_ref().unwrap().rows, Some(3000));
    assert_eq!(report.verify.as_ref().unwrap().structure.version, Some(0));
    assert!(report.restore.as_ref().unwrap().bytes > 0);
    assert_eq!(outcome_of(&report, "fingerprint"), "Passed");
    assert_eq!(outcome_of(&report, "sample"), "Passed");

    // A configured timestamp between versions 0 and 1: version 0.
    let at = config(
        &lake,
        &format!(r#"{{ kind = "delta_time_travel", timestamp = "{between}" }}"#),
    );
    let report = lake.drill(&at, None).await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    assert_eq!(report.snapshot.as_ref().unwrap().version, Some(0));
    assert_eq!(report.verify.as_ref().unwrap().rows, Some(1000));
    assert_eq!(outcome_of(&report, "fingerprint"), "Passed");
    // The RPO of that point: the newest commit of the source minus version 0's.
    assert!(report.rpo_seconds.unwrap() > 0.0);

    // Pinned on the command line: a version, or a time.
    for (pin, rows) in [("v1", 2000), ("1", 2000), (between.as_str(), 1000)] {
        let report = lake.drill(&newest, Some(pin)).await;
        assert_eq!(
            report.outcome,
            Outcome::Passed,
            "{pin}: {}",
            findings(&report)
        );
        assert_eq!(report.verify.as_ref().unwrap().rows, Some(rows), "{pin}");
    }
    let report = lake.drill(&newest, Some("v9")).await;
    assert_eq!(report.outcome, Outcome::Error);
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .contains("`v9` names no snapshot of this kind: the newest version of"),
        "{:?}",
        report.error
    );
    // Every sandbox was removed.
    assert!(
        lake.sandbox_contents().iter().all(|p| p.is_dir()),
        "{:?}",
        lake.sandbox_contents()
    );

    // `snapshots` lists the versions, newest first.
    let out = cli(&["snapshots", "--config", newest.to_str().unwrap(), JOB]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let positions: Vec<usize> = ["v2 ", "v1 ", "v0 "]
        .iter()
        .map(|v| text.find(v).unwrap_or_else(|| panic!("{v} not in {text}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_older_than_the_log_keeps_fails_naming_the_window() {
    let (lake, between) = three_versions().await;
    crate::helpers::clean_up_log(&lake.source(), None).await;
    let at = config(
        &lake,
        &format!(r#"{{ kind = "delta_time_travel", timestamp = "{between}" }}"#),
    );
    let report = lake.drill(&at, None).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    let text = findings(&report);
    assert!(
        text.contains("the table's time-travel window is shorter than the job expects: the oldest version still in the log of"),
        "{text}"
    );
    assert!(text.contains("is 2, committed at"), "{text}");
    // The same through the CLI: exit 1, and a pinned version before the window too.
    let out = cli(&[
        "run",
        "--config",
        at.to_str().unwrap(),
        JOB,
        "--snapshot",
        "v0",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("time-travel window is shorter than the job expects"),
        "{}",
        stdout(&out)
    );
    // The newest version is still there.
    let newest = config(&lake, r#"{ kind = "delta_time_travel", lag = "0s" }"#);
    assert_eq!(lake.drill(&newest, None).await.outcome, Outcome::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_whose_files_were_vacuumed_fails_naming_the_window() {
    let lake = Lake::new(1, 1000).await;
    let source = lake.source();
    let v0_files: Vec<String> = {
        let table = restore_drill::kinds::delta::table::open(&directory_url(&source), None)
            .await
            .unwrap();
        let info = restore_drill::kinds::delta::table::describe(&table)
            .await
            .unwrap();
        info.files.iter().map(|f| f.path.clone()).collect()
    };
    // Version 1 replaces every row; VACUUM then removes the files only version 0 used.
    let table = restore_drill::kinds::delta::table::open(&directory_url(&source), None)
        .await
        .unwrap();
    table
        .write(vec![data::transactions(5000, 500, 1_795_000_000_000_000)])
        .with_save_mode(SaveMode::Overwrite)
        .await
        .unwrap();
    for file in &v0_files {
        std::fs::remove_file(source.join(file)).unwrap();
    }
    let config = config(&lake, r#"{ kind = "delta_time_travel", version = 0 }"#);
    let report = lake.drill(&config, None).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    let text = findings(&report);
    assert!(
        text.contains("the table's time-travel window is shorter than the job expects")
            && text.contains("a data file of this version is gone (removed by VACUUM?)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_for_real_makes_the_drilled_version_the_tables_newest_and_keeps_its_history() {
    let (mut lake, _) = three_versions().await;
    let path = config(&lake, r#"{ kind = "delta_time_travel", lag = "0s" }"#);
    crate::helpers::prepend(&path, "[history]\njournal = \"journal\"");
    let config = path.to_str().unwrap();
    let out = cli(&["run", "--config", config, JOB, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let drilled: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(drilled["snapshot"]["id"], "v2");
    // A bad write after the drill: version 3 holds 500 rows too many.
    lake.append(500).await;
    let source = lake.source();
    let restore = |to: &Path, extra: &[&str]| {
        let mut args = vec![
            "restore",
            "--config",
            config,
            JOB,
            "--to",
            to.to_str().unwrap(),
            "--reason",
            "INC-3: a bad write",
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    // Inside the table's folder is not the table: refused.
    let out = restore(&source.join("part"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("overlaps the source"),
        "{}",
        stderr(&out)
    );

    let out = restore(&source, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(report["recovery"]["moved_aside"].is_null(), "{report:#}");
    assert_eq!(report["verify"]["rows"], 3000);
    let fingerprint = |r| crate::helpers::check(r, "fingerprint")["observed"].clone();
    assert_eq!(fingerprint(&report), fingerprint(&drilled));
    // The table's newest version is a new commit with version 2's rows (the 3,000 the restore
    // scanned there); the bad version 3 is still in the history.
    let table = deltalake::open_table(directory_url(&source)).await.unwrap();
    assert_eq!(table.version(), Some(4));
    assert!(source.join("_delta_log/00000000000000000003.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_test_judges_damaged_copies_of_a_rewritten_version() {
    let (lake, _) = three_versions().await;
    let config = config(&lake, r#"{ kind = "delta_time_travel", lag = "0s" }"#);
    let (code, report) = crate::helpers::selftest(&config, JOB, "5");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["status"], "judged");
    assert_eq!(report["caught"], report["applicable"], "{report:#}");
    assert_eq!(report["applicable"], 10, "{report:#}");
    let old = report["damages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["damage"] == "old_snapshot")
        .unwrap();
    assert_eq!(old["outcome"], "n/a");
    lake.assert_no_run_left();
}
