//! `s3_versions`: the state of a prefix in a versioned bucket at a point in time, and
//! `delta_time_travel` of a source on S3, each restored into an S3 sandbox in the same bucket.

use std::time::Duration;

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

use super::{Moto, check, cli_s3, edit_config, run_json, write_config};
use crate::helpers::{JOB, Lake, data_files, stderr, stdout};

/// A source table uploaded to the versioned bucket `lake` under `transactions/` as version 0
/// (2,000 rows), then — after `at`, the time returned — its version 1 (2,000 more rows). Before
/// `at`, a stray object is written and deleted again. Returns the lake, the config and `at`.
async fn versioned_lake(moto: &Moto, snapshots: &str) -> (Lake, std::path::PathBuf, String) {
    let client = moto.client();
    client.create_bucket().bucket("lake").send().await.unwrap();
    client
        .put_bucket_versioning()
        .bucket("lake")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut lake = Lake::new(1, 2000).await;
    moto.upload("lake", "transactions/", &lake.source()).await;
    let stray = "transactions/_tmp/stray.txt";
    moto.put("lake", stray, b"x".to_vec()).await;
    client
        .delete_object()
        .bucket("lake")
        .key(stray)
        .send()
        .await
        .unwrap();
    // Object times have a resolution of a second.
    std::thread::sleep(Duration::from_millis(1500));
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::thread::sleep(Duration::from_millis(1500));
    lake.append(2000).await;
    moto.upload("lake", "transactions/", &lake.source()).await;
    let config = write_config(moto, &lake, snapshots, "s3://lake/restore-drill/");
    (lake, config, at)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_of_a_versioned_prefix_at_a_time_is_restored_and_verified() {
    let moto = Moto::start();
    let snapshots = r#"{ kind = "s3_versions", location = "s3://lake/transactions/", lag = "0s" }"#;
    let (_lake, config, at) = versioned_lake(&moto, snapshots).await;

    // `snapshots` shows the state at the job's point in time.
    let out = cli_s3(
        &["snapshots", "--config", config.to_str().unwrap(), JOB],
        true,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(read once restored)"),
        "{}",
        stdout(&out)
    );

    // Now: version 1, 4,000 rows.
    let report = run_json(&config, &[], 0);
    assert_eq!(report["outcome"], "passed", "{report:#}");
    assert_eq!(report["snapshot"]["version"], 1);
    assert_eq!(report["verify"]["rows"], 4000);

    // At `at`: version 0, 2,000 rows, without the stray object deleted before then; compared
    // with the source read at version 0.
    let report = run_json(&config, &["--snapshot", &at], 0);
    assert_eq!(report["outcome"], "passed", "{report:#}");
    assert_eq!(report["snapshot"]["id"], at.as_str());
    assert_eq!(report["snapshot"]["version"], 0);
    assert_eq!(report["verify"]["rows"], 2000);
    assert_eq!(check(&report, "fingerprint")["outcome"], "passed");
    assert_eq!(check(&report, "sample")["outcome"], "passed");
    assert_eq!(
        check(&report, "rows")["expected"]["equals_source"],
        2000,
        "{report:#}"
    );
    let table_files = report["snapshot"]["files"].as_u64().unwrap();
    assert_eq!(
        report["restore"]["files"].as_u64().unwrap(),
        table_files + 1,
        "the data files and the one commit; no stray object"
    );
    assert_eq!(
        moto.keys("lake", "restore-drill/").await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_version_fails_and_an_unversioned_bucket_is_an_error() {
    let moto = Moto::start();
    let snapshots = r#"{ kind = "s3_versions", location = "s3://lake/transactions/", lag = "0s" }"#;
    let (lake, config, _) = versioned_lake(&moto, snapshots).await;
    // The newest version of one data file is truncated.
    let victim = data_files(&lake.source()).remove(0);
    let name = moto.put_truncated("lake", "transactions/", &victim).await;
    let report = run_json(&config, &[], 1);
    assert!(report["findings"].to_string().contains(&name), "{report:#}");

    moto.client()
        .create_bucket()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    edit_config(
        &config,
        "location = \"s3://lake/transactions/\"",
        "location = \"s3://plain/transactions/\"",
    );
    let report = run_json(&config, &[], 2);
    assert!(
        report["error"].as_str().unwrap().contains("s3://plain/transactions/: the bucket `plain` does not keep object versions (versioning is never enabled)"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn time_travel_on_s3_rewrites_the_version_into_an_s3_sandbox() {
    let moto = Moto::start();
    let snapshots = r#"{ kind = "delta_time_travel", lag = "0s" }"#;
    let (_lake, config, at) = versioned_lake(&moto, snapshots).await;
    let report = run_json(&config, &["--snapshot", &at], 0);
    assert_eq!(report["outcome"], "passed", "{report:#}");
    assert_eq!(report["snapshot"]["id"], "v0");
    assert_eq!(report["verify"]["rows"], 2000);
    assert_eq!(check(&report, "fingerprint")["outcome"], "passed");
    assert_eq!(
        moto.keys("lake", "restore-drill/").await,
        Vec::<String>::new()
    );
}
