//! Sandboxes on S3: restores copied on the server, cleanup by batched deletes below the run's
//! own prefix, failed sandboxes kept and swept, runs of dead processes swept by their lease,
//! and the copy and upload paths for large objects.

use restore_drill::storage::s3_write::{self, CopyLimits, CopySource};

use super::{Moto, SNAPSHOT_PREFIX, check, edit_config, lake_on_s3, run_json, snapshot_data_file};
use crate::helpers::JOB;

const SANDBOX: &str = "s3://lake/restore-drill/";

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_in_the_source_bucket_restores_verifies_and_leaves_nothing() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto, SANDBOX).await;
    let source_before = moto.keys("lake", "transactions/").await;

    let report = run_json(&config, &[], 0);
    assert_eq!(report["outcome"], "passed", "{report:#}");
    let sandbox = report["restore"]["sandbox"].as_str().unwrap();
    assert!(
        sandbox.starts_with(&format!("{SANDBOX}{JOB}/run-")),
        "{sandbox}"
    );
    assert_eq!(report["verify"]["rows"], 4000);
    assert_eq!(
        report["verify"]["structure"]["missing_files"],
        serde_json::json!([])
    );
    // Both sides S3 objects copied on the server: their ETags prove them the source's; the
    // source is not decoded.
    let groups = report["source_equality"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:#?}");
    assert_eq!(groups[0]["established_by"], "identical_etag");
    let queries = report["verify"]["queries"].as_array().unwrap();
    assert!(
        queries.iter().all(|q| q["target"] != "source"),
        "{queries:#?}"
    );
    // Cleaned up: the run's objects and its lease marker are gone; the source is untouched.
    assert_eq!(
        moto.keys("lake", "restore-drill/").await,
        Vec::<String>::new()
    );
    assert_eq!(moto.keys("lake", "transactions/").await, source_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_drill_keeps_its_s3_sandbox_until_a_later_sweep() {
    let moto = Moto::start();
    let (lake, config) = lake_on_s3(&moto, SANDBOX).await;
    let victim = snapshot_data_file(&lake);
    let name = moto
        .put_truncated("backups", SNAPSHOT_PREFIX, &victim)
        .await;

    let report = run_json(&config, &[], 1);
    assert!(report["findings"].to_string().contains(&name), "{report:#}");
    assert_eq!(report["restore"]["kept"], true);
    let run_prefix = report["restore"]["sandbox"]
        .as_str()
        .unwrap()
        .trim_start_matches("s3://lake/")
        .to_string();
    let kept = moto.keys("lake", "restore-drill/").await;
    assert!(
        kept.iter().any(|k| k == &format!("{run_prefix}{name}")),
        "the damaged file is kept for inspection: {kept:?}"
    );
    assert!(
        kept.iter().all(|k| !k.ends_with(".lock")),
        "a kept sandbox holds no lease: {kept:?}"
    );

    // Kept for a second only: the next drill's sweep removes it (and that drill cleans up
    // after itself).
    edit_config(
        &config,
        "compare =",
        "keep_failed_sandbox = \"1s\"\ncompare =",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run_json(&config, &[], 1);
    let left = moto.keys("lake", "restore-drill/").await;
    assert!(
        left.iter().all(|k| !k.starts_with(&run_prefix)),
        "the first run's sandbox was swept: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_missing_from_the_snapshot_is_named_by_the_structure_check() {
    let moto = Moto::start();
    let (lake, config) = lake_on_s3(&moto, SANDBOX).await;
    let victim = snapshot_data_file(&lake);
    let name = victim.file_name().unwrap().to_str().unwrap().to_string();
    moto.client()
        .delete_object()
        .bucket("backups")
        .key(format!("{SNAPSHOT_PREFIX}{name}"))
        .send()
        .await
        .unwrap();
    let report = run_json(&config, &[], 1);
    let structure = &report["verify"]["structure"];
    assert_eq!(
        structure["missing_files"],
        serde_json::json!([name]),
        "{report:#}"
    );
    assert!(
        report["findings"].to_string().contains("missing"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_lease_expired_is_swept_and_a_live_one_is_not() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto, SANDBOX).await;
    let now = chrono::Utc::now();
    let runs = [
        (
            "run-20261129T010000Z-aaaaaa",
            now - chrono::Duration::minutes(1),
        ),
        (
            "run-20261129T020000Z-bbbbbb",
            now + chrono::Duration::minutes(9),
        ),
    ];
    for (run_id, expires) in runs {
        let lease = serde_json::json!({ "run_id": run_id, "pid": 1, "expires": expires });
        moto.put(
            "lake",
            &format!("restore-drill/{JOB}/{run_id}.lock"),
            lease.to_string().into_bytes(),
        )
        .await;
        let inside = format!("restore-drill/{JOB}/{run_id}/_delta_log/x.json");
        moto.put("lake", &inside, b"{}".to_vec()).await;
    }
    // Not a run folder: never touched.
    let notes = format!("restore-drill/{JOB}/notes/readme.txt");
    moto.put("lake", &notes, b"keep".to_vec()).await;

    run_json(&config, &[], 0);
    assert_eq!(
        moto.keys("lake", "restore-drill/").await,
        vec![
            format!("restore-drill/{JOB}/notes/readme.txt"),
            format!("restore-drill/{JOB}/run-20261129T020000Z-bbbbbb.lock"),
            format!("restore-drill/{JOB}/run-20261129T020000Z-bbbbbb/_delta_log/x.json"),
        ]
    );
}

/// Objects above the single-copy limit are copied in parts on the server.
#[tokio::test(flavor = "multi_thread")]
async fn large_objects_are_copied_in_parts_on_the_server() {
    let moto = Moto::start();
    moto.client()
        .create_bucket()
        .bucket("big")
        .send()
        .await
        .unwrap();
    let data: Vec<u8> = (0..11 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    moto.put("big", "backups/big file=1.parquet", data.clone())
        .await;
    let limits = CopyLimits {
        single_copy_max: 5 * 1024 * 1024,
        part_size: 5 * 1024 * 1024,
    };
    let source = CopySource {
        bucket: "big",
        key: "backups/big file=1.parquet",
        version_id: None,
        etag: None,
    };
    let size = data.len() as u64;
    s3_write::copy_object(&moto.profile(), source, size, "big", "sandbox/big", limits)
        .await
        .unwrap();
    let (etag, copied) = moto.get("big", "sandbox/big").await;
    assert!(etag.ends_with("-3\""), "three parts: {etag}");
    assert!(copied == data);
}

/// Streamed uploads (a snapshot on another service or on local disk) go up in parts of
/// 16 MiB, so memory stays bounded; the bytes arrive unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn large_streamed_uploads_go_up_in_parts() {
    let moto = Moto::start();
    moto.client()
        .create_bucket()
        .bucket("big")
        .send()
        .await
        .unwrap();
    let profile = moto.profile();
    let data: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let read = s3_write::upload(&profile, &data[..], data.len() as u64, "big", "up/big")
        .await
        .unwrap();
    assert_eq!(read, data.len() as u64);
    let (etag, uploaded) = moto.get("big", "up/big").await;
    assert!(etag.ends_with("-2\""), "two parts: {etag}");
    assert!(uploaded == data);

    let small = b"small object".to_vec();
    let read = s3_write::upload(&profile, &small[..], 12, "big", "up/small")
        .await
        .unwrap();
    assert_eq!(read, 12);
    assert_eq!(moto.get("big", "up/small").await.1, small);
}

/// The sandbox is written with `sandbox_storage` while the source and the backups are read with
/// the job's `storage`: without the sandbox profile's keys the drill stops when it would write,
/// naming that profile.
#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_is_written_with_its_own_profile() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto, SANDBOX).await;
    let text = std::fs::read_to_string(&config).unwrap();
    let writer = text[..text.find("[[job]]").unwrap()]
        .replace("[storage.moto]", "[storage.writer]")
        .replace("RD_TEST_KEY_ID", "RD_TEST_WRITER_KEY_ID")
        .replace("RD_TEST_SECRET", "RD_TEST_WRITER_SECRET");
    edit_config(&config, "[[job]]", &format!("{writer}[[job]]"));
    edit_config(
        &config,
        "storage = \"moto\"",
        "storage = \"moto\"\nsandbox_storage = \"writer\"",
    );
    let report = run_json(&config, &[], 2);
    assert!(
        report["snapshot"]["id"].is_string(),
        "the backups were read: {report:#}"
    );
    assert!(
        report["error"].as_str().unwrap().contains(
            "storage profile `writer`: environment variable `RD_TEST_WRITER_KEY_ID` is not set"
        ),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_test_with_its_sandbox_on_s3_catches_every_damage_and_leaves_nothing() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto, SANDBOX).await;
    let out = super::cli_s3(
        &[
            "selftest",
            "--config",
            config.to_str().unwrap(),
            JOB,
            "--seed",
            "11",
            "--json",
        ],
        true,
    );
    let report: serde_json::Value = serde_json::from_str(&crate::helpers::stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}", crate::helpers::stderr(&out)));
    assert!(matches!(out.status.code(), Some(0 | 1)), "{report:#}");
    assert_eq!(report["status"], "judged");
    assert_eq!(report["applicable"], 11, "{report:#}");
    // Every damage is caught, except that a backup missing its newest commit looks like an
    // older, complete one: only an RPO objective tighter than the gap between the two commits
    // (this job's is 1000 days) would notice.
    for damage in report["damages"].as_array().unwrap() {
        let expected =
            if damage["damage"] == "missing_commit" && damage["detail"] == "commit 1 removed" {
                "missed"
            } else {
                "caught"
            };
        assert_eq!(damage["outcome"], expected, "{damage:#}");
    }
    assert_eq!(
        moto.keys("lake", "restore-drill/").await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_smoke_test_sees_the_sandboxs_keys_only_with_smoke_credentials() {
    let moto = Moto::start();
    let (lake, config) = lake_on_s3(&moto, SANDBOX).await;
    let out = lake.root.join("smoke-env.txt");
    crate::helpers::append(
        &config,
        &format!(
            "[[job.smoke]]\nname = \"env\"\ncommand = [\"sh\", \"-c\", \"env > {}\"]\n",
            out.display()
        ),
    );
    run_json(&config, &[], 0);
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(
        env.contains(&format!("AWS_ENDPOINT_URL={}", moto.endpoint)),
        "{env}"
    );
    assert!(
        env.contains("RESTORE_DRILL_RESTORED_URI=s3://lake/restore-drill/"),
        "{env}"
    );
    assert!(!env.contains("AWS_ACCESS_KEY_ID"), "{env}");
    assert!(!env.contains("AWS_SECRET_ACCESS_KEY"), "{env}");

    edit_config(
        &config,
        "objectives =",
        "smoke_credentials = true\nobjectives =",
    );
    let report = run_json(&config, &[], 0);
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(env.contains("AWS_ACCESS_KEY_ID=test"), "{env}");
    assert!(env.contains("AWS_SECRET_ACCESS_KEY=test"), "{env}");
    assert_eq!(
        check(&report, "smoke:env")["outcome"],
        "passed",
        "{report:#}"
    );
}
