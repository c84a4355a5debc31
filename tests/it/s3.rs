//! Drills of `delta_copy` backups and sources on S3, against a real S3 endpoint: `moto_server`
//! (PyPI `moto[server]`, installed by scripts/test) on a free loopback port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

use crate::helpers::{JOB, Lake, SUITE, data_files, state_dir, stderr, stdout};

/// A moto S3 server; stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (PyPI moto[server]; scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn client(&self) -> Client {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }

    /// Creates `bucket` and uploads every file below `dir` under `prefix`.
    async fn upload(&self, bucket: &str, prefix: &str, dir: &Path) {
        let client = self.client();
        let _ = client.create_bucket().bucket(bucket).send().await;
        for file in crate::helpers::files_below(dir) {
            let relative = file.strip_prefix(dir).unwrap().display().to_string();
            client
                .put_object()
                .bucket(bucket)
                .key(format!("{prefix}{relative}"))
                .body(ByteStream::from(std::fs::read(&file).unwrap()))
                .send()
                .await
                .unwrap();
        }
    }
}

/// A lake whose source and one dated snapshot are uploaded to moto, and a config reading both
/// from S3 with the profile `moto` and restoring into the lake's local sandbox.
async fn lake_on_s3(moto: &Moto) -> (Lake, PathBuf) {
    let lake = Lake::new(2, 2000).await;
    let snapshot = lake.snapshot("2026-11-01");
    moto.upload("lake", "transactions/", &lake.source()).await;
    moto.upload("backups", "daily/transactions_2026-11-01/", &snapshot)
        .await;
    std::fs::create_dir_all(lake.root.join("checks")).unwrap();
    std::fs::write(lake.root.join("checks/suite.toml"), SUITE).unwrap();
    let config = lake.root.join("s3.toml");
    std::fs::write(
        &config,
        format!(
            r#"[storage.moto]
endpoint = "{}"
region = "us-east-1"
path_style = true
access_key_id_env = "RD_TEST_KEY_ID"
secret_access_key_env = "RD_TEST_SECRET"

[[job]]
name = "{JOB}"
storage = "moto"
source = "s3://lake/transactions/"
snapshots = {{ kind = "delta_copy", location = "s3://backups/daily/", pattern = "transactions_{{date}}" }}
sandbox = "sandbox"
suite = "checks/suite.toml"
objectives = {{ rpo = "1000d", rto = "1h" }}
compare = {{ key = ["transaction_id"], sample_fraction = 0.5 }}
"#,
            moto.endpoint
        ),
    )
    .unwrap();
    (lake, config)
}

/// Runs the binary with the test keys in the environment (unless `keys` is false).
fn cli_s3(args: &[&str], keys: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_restore-drill"));
    command
        .args(args)
        .env("RUST_LOG", "off")
        .env("RESTORE_DRILL_STATE_DIR", state_dir())
        .env_remove("RD_TEST_KEY_ID")
        .env_remove("RD_TEST_SECRET");
    if keys {
        command
            .env("RD_TEST_KEY_ID", "test")
            .env("RD_TEST_SECRET", "test");
    }
    command.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_and_source_on_s3_restore_into_a_local_sandbox_and_pass() {
    let moto = Moto::start();
    let (lake, config) = lake_on_s3(&moto).await;
    let config = config.to_str().unwrap();

    let out = cli_s3(&["snapshots", "--config", config, JOB], true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("transactions_2026-11-01"),
        "{}",
        stdout(&out)
    );

    let out = cli_s3(&["run", "--config", config, JOB, "--json"], true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["outcome"], "passed", "{report:#}");
    assert_eq!(
        report["snapshot"]["location"],
        "s3://backups/daily/transactions_2026-11-01/"
    );
    assert_eq!(report["verify"]["rows"], 4000);
    let check = |id: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}"))["outcome"]
            .clone()
    };
    assert_eq!(check("fingerprint"), "passed");
    assert_eq!(check("sample"), "passed");
    assert_eq!(check("rows"), "passed");
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
    let (lake, config) = lake_on_s3(&moto).await;
    let snapshot = lake.root.join("backups/daily/transactions_2026-11-01");
    let victim = data_files(&snapshot).remove(0);
    let name = victim.file_name().unwrap().to_str().unwrap().to_string();
    let bytes = std::fs::read(&victim).unwrap();
    moto.client()
        .put_object()
        .bucket("backups")
        .key(format!("daily/transactions_2026-11-01/{name}"))
        .body(ByteStream::from(bytes[..bytes.len() / 2].to_vec()))
        .send()
        .await
        .unwrap();
    let out = cli_s3(
        &["run", "--config", config.to_str().unwrap(), JOB, "--json"],
        true,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let findings = report["findings"].to_string();
    assert!(findings.contains(&name), "{findings}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_are_an_error_naming_the_variable() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto).await;
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
    let (lake, config) = lake_on_s3(&moto).await;
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

/// A TCP proxy to moto that answers its first `refuse` connections with `503 SlowDown`, as S3
/// does when it throttles, and forwards the rest.
struct ThrottlingProxy {
    endpoint: String,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ThrottlingProxy {
    fn start(target: &str, refuse: usize) -> ThrottlingProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = refused.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut client) = stream else { continue };
                if counter.load(Ordering::SeqCst) < refuse {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    let _ = write!(
                        client,
                        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let Ok(mut upstream) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let (mut client_reader, mut upstream_writer) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_reader, &mut upstream_writer);
                    let _ = upstream_writer.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut upstream, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        ThrottlingProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            refused,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_requests_are_retried() {
    let moto = Moto::start();
    let (_lake, config) = lake_on_s3(&moto).await;
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
    let (_lake, config) = lake_on_s3(&moto).await;
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("s3://backups/daily/", "s3://no-such-backups/daily/");
    std::fs::write(&config, text).unwrap();
    let out = cli_s3(&["run", "--config", config.to_str().unwrap(), JOB], true);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("s3://no-such-backups/daily/: NoSuchBucket (HTTP 404): The specified bucket does not exist"),
        "{text}"
    );
}
