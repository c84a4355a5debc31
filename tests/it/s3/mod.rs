//! Tests against a real S3 endpoint: `moto_server` (PyPI `moto[server]`, installed by
//! scripts/test) on a free loopback port.

mod deletion_vectors;
mod delta_copy;
mod restore;
mod sandbox;
mod versions;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

use crate::helpers::{JOB, Lake, SUITE, state_dir, stderr, stdout};

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

    /// The keys below `prefix` in `bucket`, sorted.
    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut pages = self
            .client()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            keys.extend(
                page.unwrap()
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
        }
        keys.sort();
        keys
    }

    /// A storage profile for this server, for calls into the library. moto accepts any keys;
    /// these come from `HOME`, which every test process has.
    fn profile(&self) -> std::sync::Arc<restore_drill::storage::s3::S3Profile> {
        std::sync::Arc::new(restore_drill::storage::s3::S3Profile::new(
            "moto".into(),
            Some(self.endpoint.clone()),
            Some("us-east-1".into()),
            true,
            Some(("HOME".into(), "HOME".into())),
        ))
    }

    /// Writes one object.
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }

    /// Replaces the object `key` with the first half of the local file `from`, as a backup
    /// cut short would leave it. Returns the file's name.
    async fn put_truncated(&self, bucket: &str, key_prefix: &str, from: &Path) -> String {
        let name = from.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(from).unwrap();
        self.put(
            bucket,
            &format!("{key_prefix}{name}"),
            bytes[..bytes.len() / 2].to_vec(),
        )
        .await;
        name
    }

    /// An object's ETag and content.
    async fn get(&self, bucket: &str, key: &str) -> (String, Vec<u8>) {
        let object = self
            .client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let etag = object.e_tag().unwrap_or_default().to_string();
        (
            etag,
            object.body.collect().await.unwrap().into_bytes().to_vec(),
        )
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

/// The key prefix of the one snapshot `lake_on_s3` uploads to the bucket `backups`.
const SNAPSHOT_PREFIX: &str = "daily/transactions_2026-11-01/";

/// A lake whose source and one dated snapshot are uploaded to moto, and a config reading both
/// from S3 with the profile `moto` and restoring into `sandbox` (the lake's local `sandbox`
/// folder, or an s3:// prefix).
async fn lake_on_s3(moto: &Moto, sandbox: &str) -> (Lake, PathBuf) {
    let lake = Lake::new(2, 2000).await;
    let snapshot = lake.snapshot("2026-11-01");
    moto.upload("lake", "transactions/", &lake.source()).await;
    moto.upload("backups", SNAPSHOT_PREFIX, &snapshot).await;
    let snapshots = r#"{ kind = "delta_copy", location = "s3://backups/daily/", pattern = "transactions_{date}" }"#;
    let config = write_config(moto, &lake, snapshots, sandbox);
    (lake, config)
}

/// Writes the suite and a config whose job reads `s3://lake/transactions/` with the profile
/// `moto` (keys from RD_TEST_KEY_ID and RD_TEST_SECRET), with these snapshots and sandbox.
fn write_config(moto: &Moto, lake: &Lake, snapshots: &str, sandbox: &str) -> PathBuf {
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
snapshots = {snapshots}
sandbox = "{sandbox}"
suite = "checks/suite.toml"
objectives = {{ rpo = "1000d", rto = "1h" }}
compare = {{ key = ["transaction_id"], sample_fraction = 0.5 }}
"#,
            moto.endpoint
        ),
    )
    .unwrap();
    config
}

/// Runs `run --json` with these further arguments and the test keys, expects the exit code and
/// returns the report.
fn run_json(config: &Path, more: &[&str], code: i32) -> serde_json::Value {
    let mut args = vec!["run", "--config", config.to_str().unwrap(), JOB, "--json"];
    args.extend_from_slice(more);
    let out = cli_s3(&args, true);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stderr(&out),
        stdout(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap()
}

pub(crate) use crate::helpers::check;

/// The local copy of one data file of the uploaded snapshot.
fn snapshot_data_file(lake: &Lake) -> PathBuf {
    crate::helpers::data_files(&lake.root.join("backups/daily/transactions_2026-11-01")).remove(0)
}

/// Replaces `from` with `to` in a config file.
fn edit_config(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from:?} not in the config");
    std::fs::write(config, text.replace(from, to)).unwrap();
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
