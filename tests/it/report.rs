//! `restore-drill report` over a period with passes, a failure, an error and a day without
//! any drill, in all four formats; the HTML rendered by headless Chromium; a journal with an
//! edited and a removed record named in the report.

use std::path::{Path, PathBuf};
use std::process::Command;

use restore_drill::history::journal::{Journal, Record};
use serde_json::{Value, json};

use crate::helpers::{JOB, Lake, SUITE, cli, stderr, stdout};

/// A lake whose journal holds drills on 1, 2, 4 and 5 November 2026 (none on the 3rd):
/// passed, failed, error, passed. Returns the lake and its config.
async fn period_with_drills() -> (Lake, PathBuf) {
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-10-31");
    let config = lake.config(SUITE, "26h");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[history]\njournal = \"journal\"\n\n{text}"),
    )
    .unwrap();
    // A real drill's report as the model of the others.
    let out = cli(&["run", "--config", config.to_str().unwrap(), JOB, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let model: Value = serde_json::from_str(&stdout(&out)).unwrap();
    std::fs::remove_dir_all(lake.root.join("journal")).unwrap();

    let journal = Journal::new(lake.root.join("journal"));
    let drills = [
        ("2026-11-01T02:30:00Z", "passed", 3600.0, 60.0),
        ("2026-11-02T02:30:00Z", "failed", 7200.0, 90.0),
        ("2026-11-04T02:30:00Z", "error", 0.0, 0.0),
        ("2026-11-05T02:30:00Z", "passed", 100_000.0, 30.0),
    ];
    for (i, (at, outcome, rpo, rto)) in drills.into_iter().enumerate() {
        let mut report = model.clone();
        let run_id = format!("run-{}-{i:06x}", &at[..10]);
        report["run_id"] = json!(run_id);
        report["started_at"] = json!(at);
        report["finished_at"] = json!(at.replace(":00Z", ":59Z"));
        report["outcome"] = json!(outcome);
        report["rpo_seconds"] = json!(rpo);
        report["rto_seconds"] = json!(rto);
        report["snapshot"]["id"] = json!(format!("transactions_{}", &at[..10]));
        match outcome {
            "failed" => {
                report["findings"] = json!([{ "check": "rows", "severity": "fail", "message": "row count 90 is below the source's 100 <at version 1>" }]);
            }
            "error" => {
                report["error"] = json!("no snapshot in backups/daily matches transactions_{date}");
                report["rpo_seconds"] = Value::Null;
                report["rto_seconds"] = Value::Null;
                report["findings"] = json!([]);
            }
            _ => {}
        }
        journal
            .append(Record {
                seq: 0,
                prev: None,
                job: JOB.into(),
                run_id,
                recorded_at: at.parse().unwrap(),
                tool_version: "0.1.0".into(),
                config_sha256: "c".repeat(64),
                suite_sha256: "s".repeat(64),
                report,
            })
            .unwrap();
    }
    (lake, config)
}

fn report(config: &Path, format: &str) -> String {
    let out = cli(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-05",
        "--format",
        format,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_period_with_passes_failures_and_a_missing_day_in_all_four_formats() {
    let (lake, config) = period_with_drills().await;

    let data: Value = serde_json::from_str(&report(&config, "json")).unwrap();
    let job = &data["jobs"][0];
    assert_eq!(job["job"], JOB);
    assert_eq!(
        [
            &job["drills"],
            &job["passed"],
            &job["failed"],
            &job["error"]
        ],
        [&json!(4), &json!(2), &json!(1), &json!(1)]
    );
    assert_eq!(
        job["days_without_verified_restore"],
        json!(["2026-11-02", "2026-11-03", "2026-11-04"])
    );
    assert_eq!(job["days"].as_array().unwrap().len(), 5);
    assert_eq!(job["failures"].as_array().unwrap().len(), 2);
    assert_eq!(job["failures"][0]["findings"][0]["check"], "rows");
    assert_eq!(
        job["failures"][1]["error"],
        "no snapshot in backups/daily matches transactions_{date}"
    );
    assert_eq!(job["rpo"]["max"], 100_000.0);
    assert_eq!(job["rpo"]["p95"], 100_000.0);
    assert_eq!(job["rpo"]["last"], 100_000.0);
    assert_eq!(job["rpo"]["objective"], 26.0 * 3600.0);
    assert_eq!(job["rpo"]["breaches"], 1);
    assert_eq!(job["rto"]["max"], 90.0);
    assert_eq!(
        job["newest_verified_snapshot"]["id"],
        "transactions_2026-11-05"
    );
    assert_eq!(job["chain"]["records"], 4);
    assert_eq!(job["chain"]["problems"], json!([]));

    let md = report(&config, "md");
    for expected in [
        "# Restore drills 2026-11-01 to 2026-11-05",
        "| 4 | 2 | 1 | 1 | 0 |",
        "3 of 5 days had none: 2026-11-02, 2026-11-03, 2026-11-04",
        "**Journal chain:** intact (4 records)",
        "fail `rows`: row count 90 is below the source's 100 <at version 1>",
        "**error**: no snapshot in backups/daily matches transactions_{date}",
        "| RPO | 1d2h | 1d3h46m40s | 1d3h46m40s | 1d3h46m40s | 1 |",
        "`transactions_2026-11-05`",
    ] {
        assert!(md.contains(expected), "{expected:?} not in:\n{md}");
    }

    let junit = report(&config, "junit");
    let file = lake.root.join("report.xml");
    std::fs::write(&file, &junit).unwrap();
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "not well-formed XML: {}\n{junit}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    assert!(
        junit.contains(&format!(
            "<testsuite name=\"{JOB}\" tests=\"6\" failures=\"2\" errors=\"1\" skipped=\"0\">"
        )),
        "{junit}"
    );
    assert!(junit.contains("<failure message=\"fail rows: row count 90 is below the source&#39;s 100 &lt;at version 1&gt;\">"), "{junit}");
    assert!(
        junit.contains(
            "<error message=\"no snapshot in backups/daily matches transactions_{date}\">"
        ),
        "{junit}"
    );
    assert!(
        junit.contains(
            "name=\"verified restore every day\"><failure message=\"3 of 5 days had none"
        ),
        "{junit}"
    );
    assert!(junit.contains("name=\"journal chain intact\"/>"), "{junit}");

    let html = report(&config, "html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("row count 90 is below the source&#39;s 100 &lt;at version 1&gt;"));
    assert!(html.contains("@media print"));
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the page is not self-contained: {external}"
        );
    }
    render_in_chromium(&lake.root, &html);
}

/// Renders the page headless and checks Chromium made a screenshot without errors.
fn render_in_chromium(dir: &Path, html: &str) {
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let png = dir.join("report.png");
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("Chromium is not installed: scripts/test installs Debian's `chromium` package");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,1600",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert!(
        image.starts_with(b"\x89PNG") && image.len() > 10_000,
        "{} bytes",
        image.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_with_an_edited_and_a_removed_record_is_named_in_the_report() {
    let (lake, config) = period_with_drills().await;
    let file = lake.root.join(format!("journal/{JOB}.jsonl"));
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // Turn the failure into a pass, and remove the error.
    lines[1] = lines[1].replace("\"outcome\":\"failed\"", "\"outcome\":\"passed\"");
    lines.remove(2);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let data: Value = serde_json::from_str(&report(&config, "json")).unwrap();
    let problems: Vec<String> = data["jobs"][0]["chain"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains(&format!(
            "{JOB}.jsonl:2: record 2 (run run-2026-11-02-000001) was altered"
        )),
        "{problems:?}"
    );
    assert!(
        problems[1].contains(&format!(
            "{JOB}.jsonl:3: record 3 is missing (before record 4"
        )),
        "{problems:?}"
    );
    let md = report(&config, "md");
    assert!(md.contains("**Journal chain:** BROKEN: "), "{md}");
    let junit = report(&config, "junit");
    assert!(
        junit.contains("name=\"journal chain intact\"><failure message=\"BROKEN: "),
        "{junit}"
    );
}
