//! Drills of `delta_copy` backups and sources on S3, restored into a local sandbox.

use aws_sdk_s3::primitives::ByteStream;

use std::path::Path;

use super::{
    Moto, SNAPSHOT_PREFIX, ThrottlingProxy, check, cli_s3, lake_on_s3, run_json, snapshot_data_file,
};
use crate::helpers::{JOB, stderr, stdout};

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_and_source_on_s3_restore_into_a_local_sandbox_and_pass() {
    let moto = Moto::start();
    let (lake, config) = lake_on_s3(&moto, "sandbox").await;
    let config = config.to_str().unwrap();

    let out = cli_s3(&["snapshots", "--config", config, JOB], true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("transactions_2026-11-01"),
        "{}",
        stdout(&out)
    );

    let report = run_json(Path::new(config), &[], 0);
    assert_eq!(report["outcome"], "passed", "{report:#}");
    assert_eq!(
        report["snapshot"]["location"],
        "s3://backups/daily/transactions_2026-11-01/"
    );
    assert_eq!(report["verify"]["rows"], 4000);
    for id in ["fingerprint", "sample", "rows"] {
        assert_eq!(check(&report, id)["outcome"], "passed", "{id}");
    }
    // Restored on local disk, the source on S3: each file read from both and compared.
    let groups = report["source_equality"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:#?}");
    assert_eq!(groups[0]["established_by"], "identical_bytes");
    // Restored locally, then removed.
    assert!(
        lake.sandbox_contents().iter().all(|p| p.is_dir()),
        "{:?}",
        lake.sandbox_contents()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_object_in_an_s3_snapshot_fails_the_drill_naming_the_file() {
    let moto = Moto::start();
    let (lake, config) = lake_on_s3(&moto, "sandbox").await;
    let victim = snapshot_data_file(&lake);
    let name = moto
        .put_truncated("backups", SNAPSHOT_PREFIX, &victim)
        .await;
    let report = run_json(&config, &[], 1);
    let findings = report["findings"].to_string();
    assert!(findings.contains(&name), "{findings}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_are_an_error_naming_the_variable() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto, "sandbox").await;
    let out = cli_s3(&["run", "--config", config.to_str().unwrap(), JOB], false);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("storage profile `moto`: environment variable `RD_TEST_KEY_ID` is not set"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_goes_past_a_thousand_objects() {
    let moto = Moto::start();
    let (lake, config) = lake_on_s3(&moto, "sandbox").await;
    let snapshot = lake.root.join("backups/daily/transactions_2026-11-01");
    let in_table = crate::helpers::files_below(&snapshot).len();
    let client = moto.client();
    for i in 0..1001 {
        client
            .put_object()
            .bucket("backups")
            .key(format!("daily/transactions_2026-11-01/_extra/f-{i:05}"))
            .body(ByteStream::from(vec![b'x'; 3]))
            .send()
            .await
            .unwrap();
    }
    let out = cli_s3(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            JOB,
            "--dry-run",
            "--json",
        ],
        true,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["files"], in_table + 1001);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_requests_are_retried() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto, "sandbox").await;
    let proxy = ThrottlingProxy::start(&moto.endpoint, 2);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&moto.endpoint, &proxy.endpoint);
    std::fs::write(&config, text).unwrap();
    let out = cli_s3(
        &["snapshots", "--config", config.to_str().unwrap(), JOB],
        true,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("transactions_2026-11-01"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        proxy.refused.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the throttled requests were not the ones retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bucket_is_an_error_in_the_services_words() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto, "sandbox").await;
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("s3://backups/daily/", "s3://no-such-backups/daily/");
    std::fs::write(&config, text).unwrap();
    let out = cli_s3(&["run", "--config", config.to_str().unwrap(), JOB], true);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("s3://no-such-backups/daily/: NoSuchBucket (HTTP 404)"),
        "{text}"
    );
}
