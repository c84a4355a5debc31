//! Restore throughput on S3: restore-drill's restore of a snapshot of a few thousand objects
//! into a sandbox on the same endpoint (listing, then server-side copies) against the command a
//! runbook would have a person type, `aws s3 cp --recursive` between the same prefixes — both
//! against one S3 server on loopback.
//!
//! `cargo bench --bench restore -- [OBJECTS] [RUNS] [CONCURRENCY...]` (defaults: 3000 objects,
//! 5 runs, concurrency 8 and 32). The server is `moto_server`, or with
//! `RESTORE_DRILL_BENCH_SERVER=s3s-fs` the Rust file-system S3 server `s3s-fs`
//! (`cargo install s3s-fs --version 0.14.1 --features binary`), which answers far faster. Needs
//! the server and `aws` on PATH: scripts/test installs moto in
//! `~/.cache/restore-drill/moto-5.1.22/bin`; awscli with
//! `python3 -m venv ~/.cache/restore-drill/awscli && ~/.cache/restore-drill/awscli/bin/pip install awscli`.
//! The runs alternate between the tools; each copy goes to a fresh prefix that is deleted
//! afterwards. Prints the median seconds, objects/s and MiB/s of each.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use restore_drill::drill::NoProgress;
use restore_drill::kinds::delta::restore;
use restore_drill::kinds::delta::snapshot::{RestoreMethod, Snapshot};
use restore_drill::storage::s3::S3Profile;
use restore_drill::storage::{Location, SandboxRoot, s3_write};

const BUCKET: &str = "bench";

/// The S3 server process and, for s3s-fs, the folder it keeps objects in (removed last).
struct Server {
    child: Child,
    _root: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the S3 server on a free loopback port; returns it, its name and its endpoint.
fn start_server() -> (Server, String, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let name = std::env::var("RESTORE_DRILL_BENCH_SERVER").unwrap_or("moto_server".into());
    let (mut command, root) = match name.as_str() {
        "s3s-fs" => {
            let root = tempfile::tempdir().unwrap();
            let mut command = Command::new("s3s-fs");
            command
                .args(["--host", "127.0.0.1", "--port", &port])
                .args(["--access-key", "bench", "--secret-key", "bench"])
                .arg(root.path());
            (command, Some(root))
        }
        _ => {
            let mut command = Command::new("moto_server");
            command.args(["-H", "127.0.0.1", "-p", &port]);
            (command, None)
        }
    };
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} on PATH (see the top of benches/restore.rs): {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err() {
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let server = Server { child, _root: root };
    (server, name, format!("http://127.0.0.1:{port}"))
}

/// Sizes from 1 KiB to 64 KiB, the same every time.
fn object_size(i: usize) -> usize {
    1024 + (i * 7919) % (63 * 1024)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let objects: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut concurrencies: Vec<usize> =
        args.iter().skip(2).filter_map(|a| a.parse().ok()).collect();
    if concurrencies.is_empty() {
        concurrencies = vec![8, 32];
    }
    // Set before any thread starts: the profile reads its keys from these variables, and the
    // aws command inherits them.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
        std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
    }
    let (_server, name, endpoint) = start_server();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bench(&name, &endpoint, objects, runs, &concurrencies));
}

async fn bench(name: &str, endpoint: &str, objects: usize, runs: usize, concurrencies: &[usize]) {
    let profile = Arc::new(S3Profile::new(
        "bench".into(),
        Some(endpoint.into()),
        Some("us-east-1".into()),
        true,
        Some(("AWS_ACCESS_KEY_ID".into(), "AWS_SECRET_ACCESS_KEY".into())),
    ));
    let client = profile.client().await.unwrap().clone();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut bytes = 0u64;
    let uploads = (0..objects).map(|i| {
        let client = client.clone();
        let size = object_size(i);
        let key = if i % 10 == 0 {
            format!("snapshot/_delta_log/{i:020}.json")
        } else {
            format!(
                "snapshot/date=2026-11-{:02}/part-{i:05}.parquet",
                1 + i % 28
            )
        };
        async move {
            client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from(vec![(i % 251) as u8; size]))
                .send()
                .await
                .unwrap();
        }
    });
    futures::stream::iter(uploads)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    for i in 0..objects {
        bytes += object_size(i) as u64;
    }
    println!(
        "snapshot: {objects} objects, {:.1} MiB, on {name} at {endpoint}; {runs} runs each\n",
        bytes as f64 / 1048576.0
    );

    let location = |prefix: &str| {
        Location::parse(
            &format!("s3://{BUCKET}/{prefix}"),
            std::path::Path::new("/"),
        )
        .unwrap()
        .with_profile(profile.clone())
    };
    let snapshot = Snapshot {
        id: "snapshot".into(),
        location: location("snapshot/"),
        named_time: chrono::Utc::now(),
        table: Err("not read by the benchmark".into()),
        method: RestoreMethod::CopyAll,
    };
    let mut times: Vec<(String, Vec<f64>)> = concurrencies
        .iter()
        .map(|c| (format!("restore-drill, copy_concurrency {c}"), Vec::new()))
        .chain([("aws s3 cp --recursive".to_string(), Vec::new())])
        .collect();
    for run in 0..runs {
        for (i, concurrency) in concurrencies.iter().enumerate() {
            let root = SandboxRoot::new(&location("sandbox/"));
            let sandbox = root
                .create_run("bench", &format!("run-20261129T000000Z-{run:02}{i:04}"))
                .await
                .unwrap();
            let started = Instant::now();
            let restored = restore::restore(&snapshot, &sandbox, *concurrency, &NoProgress)
                .await
                .unwrap();
            times[i].1.push(started.elapsed().as_secs_f64());
            assert_eq!((restored.files, restored.bytes), (objects, bytes));
            sandbox.remove().await.unwrap();
        }
        let target = format!("awscli-{run}/");
        let started = Instant::now();
        let status = Command::new("aws")
            .args([
                "s3",
                "cp",
                "--recursive",
                "--only-show-errors",
                "--endpoint-url",
                endpoint,
                &format!("s3://{BUCKET}/snapshot/"),
                &format!("s3://{BUCKET}/{target}"),
            ])
            .status()
            .expect("aws on PATH (see the comment at the top of benches/restore.rs)");
        let seconds = started.elapsed().as_secs_f64();
        assert!(status.success(), "aws s3 cp failed");
        let copied = restore_drill::storage::s3::list_files(&profile, BUCKET, &target)
            .await
            .unwrap();
        assert_eq!(copied.len(), objects, "aws s3 cp copied every object");
        times.last_mut().unwrap().1.push(seconds);
        s3_write::delete_prefix(&profile, BUCKET, &target)
            .await
            .unwrap();
    }
    let aws = support::median(times.last().unwrap().1.clone());
    println!(
        "{:<40} {:>9} {:>10} {:>8} {:>9}",
        "tool", "median s", "objects/s", "MiB/s", "vs aws"
    );
    for (name, seconds) in &times {
        let m = support::median(seconds.clone());
        println!(
            "{name:<40} {m:>9.3} {:>10.0} {:>8.1} {:>8.1}x",
            objects as f64 / m,
            bytes as f64 / 1048576.0 / m,
            aws / m
        );
    }
}
