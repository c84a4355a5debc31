//! Runbooks: written from a job's configuration and its drills — the incident keys, the RTO and
//! RPO measured, the verified snapshots — the same for the same inputs, and every restore-drill
//! command they print runs.

use std::path::Path;

use crate::helpers::{JOB, Lake, SUITE, cli, stderr, stdout};

/// `runbook` of the lake's job in `format`; its text.
fn runbook(config: &Path, format: &str) -> String {
    let out = cli(&[
        "runbook",
        "--config",
        config.to_str().unwrap(),
        JOB,
        "--format",
        format,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

/// The restore-drill commands of a Markdown runbook's code blocks.
fn commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if in_code && line.starts_with("restore-drill ") {
            out.push(line.to_string());
        }
    }
    out
}

#[tokio::test]
async fn a_runbook_holds_the_figures_measured_the_verified_snapshot_and_commands_that_run() {
    let lake = Lake::new(2, 500).await;
    lake.snapshot("2026-11-30");
    let config = lake.config(SUITE, "1000d");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "[history]\njournal = \"journal\"\n\n{text}severity = \"SEV2\"\naffects = [\"billing dashboards\"]\ndependents = [\"nightly-billing-export\"]\nincident_channel = \"#inc-payments\"\nowner = \"payments-team\"\n"
        ),
    )
    .unwrap();

    // Before any drill: the runbook says nothing proves the backups.
    let before = runbook(&config, "md");
    assert!(
        before.contains("No drill of this job is on record"),
        "{before}"
    );
    for words in [
        "SEV2",
        "billing dashboards",
        "nightly-billing-export",
        "`#inc-payments`",
        "payments-team",
    ] {
        assert!(before.contains(words), "{words} missing:\n{before}");
    }

    // Two passed drills: their figures and the snapshot they verified.
    let mut run_ids = Vec::new();
    for _ in 0..2 {
        let out = cli(&["run", "--config", config.to_str().unwrap(), JOB, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        run_ids.push(report["run_id"].as_str().unwrap().to_string());
    }
    let after = runbook(&config, "md");
    assert!(!after.contains("Warning"), "{after}");
    assert!(
        after.contains("| `transactions_2026-11-30` | version 1 |"),
        "{after}"
    );
    assert!(
        after.contains(&run_ids[1]),
        "the newest passed drill is named"
    );
    let rto = after.lines().find(|l| l.starts_with("| RTO |")).unwrap();
    assert!(!rto.contains("—"), "median, p95 and last measured: {rto}");
    assert!(after.contains("Measured by the last 2 drill(s)"), "{after}");
    assert_eq!(
        after,
        runbook(&config, "md"),
        "the same inputs, the same runbook"
    );

    // Every restore-drill command it prints runs, from another folder.
    let printed = commands(&after);
    assert!(printed.len() >= 4, "{printed:?}");
    for command in &printed {
        let line = command.replacen("restore-drill", env!("CARGO_BIN_EXE_restore-drill"), 1);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .current_dir(std::env::temp_dir())
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{command}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    assert!(
        printed
            .iter()
            .any(|c| c.contains("--snapshot transactions_2026-11-30")),
        "the verified snapshot is drilled before it is restored: {printed:?}"
    );
    // The recovery with restore-drill comes first: its plan, then the restore into the
    // table's place, which moved the table aside and restored the verified snapshot there.
    let restores: Vec<&String> = printed
        .iter()
        .filter(|c| c.starts_with("restore-drill restore "))
        .collect();
    assert_eq!(restores.len(), 2, "{printed:?}");
    assert!(restores[0].ends_with(" --dry-run"), "{printed:?}");
    assert!(
        restores[1].contains(&format!("--to {} --replace", lake.source().display())),
        "{printed:?}"
    );
    let moved: Vec<_> = std::fs::read_dir(lake.source().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("transactions.moved-aside-run-"))
        .collect();
    assert_eq!(moved.len(), 1, "the restore did not run: {moved:?}");
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, _) = journal.read(JOB).unwrap();
    assert!(
        records.iter().any(|r| r.record.report["recovery"]["target"]
            == lake.source().to_str().unwrap()
            && r.record.report["outcome"] == "passed"),
        "no passed restore recorded"
    );
    // The recovery without restore-drill names the snapshot's folder and the table's.
    assert!(after.contains(&format!(
        "cp -a {} {}",
        lake.root.join("backups/daily/transactions_2026-11-30").display(),
        lake.source().display()
    )));

    // The last drill failed: a warning first, and the verified snapshot is still the passed one.
    std::fs::write(
        lake.root.join("checks/suite.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1000000\n",
    )
    .unwrap();
    let out = cli(&["run", "--config", config.to_str().unwrap(), JOB]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed = runbook(&config, "md");
    assert!(
        failed.starts_with("# Runbook: restore `transactions`\n\n> **Warning:** The last drill"),
        "{failed}"
    );
    assert!(failed.contains("| `transactions_2026-11-30` |"), "{failed}");

    // As one HTML page.
    let page = runbook(&config, "html");
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("<h1>Runbook: restore transactions</h1>"));
    assert!(page.contains("<code>#inc-payments</code>"), "{page}");
}

#[test]
fn a_database_jobs_runbook_restores_into_a_new_database_with_the_jobs_owners_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::unreachable_database_job(dir.path());
    let out = cli(&["runbook", "--config", config.to_str().unwrap(), "app"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let backups = dir.path().canonicalize().unwrap().join("backups/SNAPSHOT");
    for expected in [
        "No drill of this job is on record".to_string(),
        "createdb -h db.internal -p 5433 -U reader app_restored".to_string(),
        format!(
            "pg_restore -h db.internal -p 5433 -U reader --no-owner --no-privileges -d app_restored {}",
            backups.display()
        ),
        "(password in the variable APP_DB_PASSWORD)".to_string(),
        "restore-drill restore --config".to_string(),
        " app --snapshot SNAPSHOT --to postgres://reader@db.internal:5433/app_restored --password-env APP_DB_PASSWORD --reason 'INCIDENT-ID: what was lost' --dry-run".to_string(),
        "- `orders-rows`: row_count of public.orders (fail)".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected} missing:\n{text}");
    }
}

#[test]
fn the_recovery_commands_of_every_delta_kind_are_shell_that_parses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("suite.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1\n",
    )
    .unwrap();
    let config = dir.path().join("restore-drill.toml");
    std::fs::write(
        &config,
        r#"[history]
journal = "journal"

[storage.lake]
endpoint = "http://minio:9000"
region = "us-east-1"
path_style = true
access_key_id_env = "LAKE_KEY_ID"
secret_access_key_env = "LAKE_SECRET"

[[job]]
name = "versions"
source = "s3://lake/orders/"
storage = "lake"
snapshots = { kind = "s3_versions", location = "s3://lake/orders/", lag = "1h" }
sandbox = "sandbox"
suite = "suite.toml"
objectives = { rpo = "26h", rto = "1h" }

[[job]]
name = "copies"
source = "s3://lake/orders/"
storage = "lake"
snapshots = { kind = "delta_copy", location = "s3://backups/orders/", pattern = "orders_{date}" }
sandbox = "sandbox"
suite = "suite.toml"
objectives = { rpo = "26h", rto = "1h" }

[[job]]
name = "history"
source = "lake/orders"
snapshots = { kind = "delta_time_travel", lag = "1h" }
sandbox = "sandbox"
suite = "suite.toml"
objectives = { rpo = "26h", rto = "1h" }
"#,
    )
    .unwrap();
    for (job, expected) in [
        (
            "versions",
            "aws s3api copy-object --endpoint-url http://minio:9000 --bucket lake",
        ),
        (
            "copies",
            "aws s3 sync --endpoint-url http://minio:9000 s3://backups/orders/SNAPSHOT/ s3://lake/orders/",
        ),
        ("history", ".restore(SNAPSHOT)"),
    ] {
        let out = cli(&["runbook", "--config", config.to_str().unwrap(), job]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(expected),
            "{job}: {expected} missing:\n{text}"
        );
        if job != "history" {
            assert!(
                text.contains("keys in the variables LAKE_KEY_ID and LAKE_SECRET"),
                "{job}: the key variables are named:
{text}"
            );
        }
        let mut script = String::new();
        let mut in_code = false;
        for line in text.lines() {
            if line.starts_with("```") {
                in_code = !in_code;
            } else if in_code {
                script.push_str(line);
                script.push('\n');
            }
        }
        let checked = std::process::Command::new("sh")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{job}: {}\n{script}",
            stderr(&checked)
        );
    }
}
