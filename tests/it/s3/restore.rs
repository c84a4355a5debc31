//! `restore` into S3: the table's own prefix replaced by the verified snapshot, its objects
//! first moved aside on the server, every one of them kept byte for byte.

use super::{Moto, SNAPSHOT_PREFIX, cli_s3, edit_config, lake_on_s3, run_json};
use crate::helpers::{JOB, stderr, stdout};

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_over_the_source_on_s3_moves_its_objects_aside_and_verifies() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto, "s3://lake/restore-drill/").await;
    edit_config(
        &config,
        "[storage.moto]",
        "[history]\njournal = \"journal\"\n\n[storage.moto]",
    );
    let drilled = run_json(&config, &[], 0);
    let mut before = Vec::new();
    for key in moto.keys("lake", "transactions/").await {
        before.push((key.clone(), moto.get("lake", &key).await.1));
    }

    let out = cli_s3(
        &[
            "restore",
            "--config",
            config.to_str().unwrap(),
            JOB,
            "--to",
            "s3://lake/transactions/",
            "--reason",
            "INC-7",
            "--replace",
            "--json",
        ],
        true,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stderr(&out),
        stdout(&out)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        super::check(&report, "fingerprint")["observed"],
        super::check(&drilled, "fingerprint")["observed"]
    );
    let aside = report["recovery"]["moved_aside"].as_str().unwrap();
    let aside_prefix = aside.strip_prefix("s3://lake/").unwrap();
    assert!(
        aside_prefix.starts_with("transactions.moved-aside-run-"),
        "{aside}"
    );
    for (key, bytes) in &before {
        let moved = key.replacen("transactions/", aside_prefix, 1);
        assert_eq!(&moto.get("lake", &moved).await.1, bytes, "{moved}");
    }
    // The table's prefix now holds exactly the snapshot's objects.
    let restored: Vec<String> = moto
        .keys("lake", "transactions/")
        .await
        .into_iter()
        .map(|k| k.trim_start_matches("transactions/").to_string())
        .collect();
    let snapshot: Vec<String> = moto
        .keys("backups", SNAPSHOT_PREFIX)
        .await
        .into_iter()
        .map(|k| k.trim_start_matches(SNAPSHOT_PREFIX).to_string())
        .collect();
    assert_eq!(restored, snapshot);
    // The backups are never a target.
    let out = cli_s3(
        &[
            "restore",
            "--config",
            config.to_str().unwrap(),
            JOB,
            "--to",
            "s3://backups/daily/elsewhere/",
            "--reason",
            "INC-7",
        ],
        true,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("overlaps the job's backups"),
        "{}",
        stderr(&out)
    );
}
