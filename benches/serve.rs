//! `serve` with many jobs: the idle service's memory, and how late drills start when every job
//! comes due in the same second.
//!
//! `cargo bench --bench serve -- [JOBS] [MAX_CONCURRENT] [JITTER]` (defaults: 1000 jobs, 4 drills
//! at once, no jitter). With `idle` as the fourth argument no drill comes due; it measures how
//! long `validate` takes, how long `serve` takes until `/readyz` answers, its resident memory
//! idling, and how long `/metrics` takes to answer (median of 20), e.g.
//! `cargo bench --bench serve -- 10000 4 0s idle`. With `replicas` as the fourth argument three
//! replicas (`[server] replicas = "postgres"`) share the jobs through a new database on the
//! PostgreSQL of `RESTORE_DRILL_BENCH_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! dropped afterwards); it prints how long after the due time each occurrence was claimed
//! (p50, p99, max, from the claims' rows), how the drills spread over the replicas, and when the
//! last one ended, e.g. `cargo bench --bench serve -- 1000 4 0s replicas`; each replica's log is
//! `<folder>/<replica>.log`, and `RESTORE_DRILL_BENCH_KEEP=1` keeps the folder. Writes a small Delta table (1,000 rows) and one snapshot of it, and a
//! configuration of JOBS jobs on it, all scheduled for the same second about 20 s after start;
//! starts the built `restore-drill serve` and reads its resident memory from /proc while it
//! idles, then the `drill started` log lines of every job. Prints, from the due time:
//! - fired: until the scheduler asked for the drill (its delay minus the time it waited for a
//!   free drill slot) — the scheduler's own lateness, plus the jitter;
//! - started: until the drill began, which includes waiting behind the other drills.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use restore_drill::demo::data;

fn main() {
    let args = support::args();
    let jobs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let concurrent: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let jitter = args.get(2).cloned().unwrap_or_else(|| "0s".into());
    let idle = args.get(3).is_some_and(|a| a == "idle");
    let replicas = args.get(3).is_some_and(|a| a == "replicas");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let root = root.as_path();
    if std::env::var_os("RESTORE_DRILL_BENCH_KEEP").is_some() {
        // The folder stays for a look at the logs and files afterwards.
        eprintln!("keeping {}", dir.keep().display());
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let source = root.join("lake/transactions");
    runtime.block_on(async {
        let batch = data::transactions(1, 1000, chrono::Utc::now().timestamp_micros());
        data::append(&source, vec![batch]).await.unwrap();
    });
    data::copy_folder(&source, &root.join("backups/transactions_2026-01-01")).unwrap();
    std::fs::write(
        root.join("suite.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1\n",
    )
    .unwrap();

    let due = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 20, 0).unwrap();
    let schedule = if idle {
        // Once a year, on a day months away: nothing comes due while it is measured.
        "0 0 0 1 1 *".to_string()
    } else {
        due.format("%S %M %H * * *").to_string()
    };
    let mut job_tables = String::new();
    for i in 0..jobs {
        job_tables.push_str(&format!(
            "\n[[job]]\nname = \"job-{i:04}\"\nsource = \"lake/transactions\"\nsnapshots = {{ kind = \"delta_copy\", location = \"backups\", pattern = \"transactions_{{date}}\" }}\nsandbox = \"sandbox\"\nsuite = \"suite.toml\"\nobjectives = {{ rpo = \"1000d\", rto = \"1h\" }}\nschedule = \"{schedule}\"\njitter = \"{jitter}\"\n"
        ));
    }
    if replicas {
        return runtime.block_on(measure_replicas(root, &job_tables, jobs, concurrent, due));
    }
    let config = format!(
        "[history]\njournal = \"journal\"\n\n[server]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_drills = {concurrent}\nshutdown_grace = \"0s\"\n{job_tables}"
    );
    let config_file = root.join("restore-drill.toml");
    std::fs::write(&config_file, config).unwrap();
    if idle {
        return measure_idle(&config_file, jobs);
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .args(["serve", "--config"])
        .arg(&config_file)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut idle_kib = Vec::new();
    let mut delays = Vec::new();
    let mut fired = Vec::new();
    let mut finished = 0;
    while finished < jobs {
        let line = match receive.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if chrono::Utc::now() < due - chrono::Duration::seconds(1) {
                    idle_kib.push(status_kib(pid, "VmRSS"));
                }
                assert!(
                    started.elapsed() < Duration::from_secs(600),
                    "drills did not finish"
                );
                continue;
            }
            Err(e) => panic!("serve ended: {e}"),
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let fields = &value["fields"];
        match fields["message"].as_str() {
            Some("drill started") => {
                let delay = fields["delay_seconds"].as_f64().unwrap();
                let waited = fields["waited_seconds"].as_f64().unwrap();
                delays.push(delay);
                fired.push(delay - waited);
            }
            Some("drill finished") => {
                finished += 1;
                assert_eq!(fields["outcome"], "passed", "{line}");
            }
            _ => {}
        }
    }
    let all_done = chrono::Utc::now();
    let peak_kib = status_kib(pid, "VmHWM");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();

    idle_kib.sort_unstable();
    let idle = idle_kib[idle_kib.len() / 2] as f64 / 1024.0;
    println!(
        "{jobs} jobs, max_concurrent_drills = {concurrent}, jitter = {jitter}, all due at {}",
        due.format("%H:%M:%S")
    );
    println!(
        "idle resident memory: {idle:.1} MiB (median of {} readings)",
        idle_kib.len()
    );
    println!(
        "fired   (due → the scheduler asks for the drill): p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        quantile(&mut fired, 0.50),
        quantile(&mut fired, 0.99),
        quantile(&mut fired, 1.0)
    );
    println!(
        "started (due → the drill begins, after waiting for a slot): p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        quantile(&mut delays, 0.50),
        quantile(&mut delays, 0.99),
        quantile(&mut delays, 1.0)
    );
    println!(
        "all {jobs} drills passed {:.1} s after the due time; peak resident memory {:.1} MiB",
        (all_done - due).num_milliseconds() as f64 / 1000.0,
        peak_kib as f64 / 1024.0
    );
}

/// A `/proc/<pid>/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[index]
}

/// `validate`, then `serve` until `/readyz` answers, idle memory and `/metrics` latency.
fn measure_idle(config_file: &std::path::Path, jobs: usize) {
    let exe = env!("CARGO_BIN_EXE_restore-drill");
    let started = Instant::now();
    let out = Command::new(exe)
        .args(["validate", "--config"])
        .arg(config_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let validate = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(config_file)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(&line).ok()?;
            let fields = &value["fields"];
            (fields["message"] == "serving").then(|| fields["listen"].as_str().unwrap().to_string())
        })
        .expect("serve said where it listens");
    std::thread::spawn(move || lines.for_each(drop));
    while get(&address, "/readyz").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(600), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5));
    let idle_mib = status_kib(pid, "VmRSS") as f64 / 1024.0;
    let mut scrapes = Vec::new();
    let mut size = 0;
    for _ in 0..20 {
        let asked = Instant::now();
        let (status, body) = get(&address, "/metrics");
        assert_eq!(status, 200);
        scrapes.push(asked.elapsed().as_secs_f64());
        size = body.len();
    }
    let scraped_mib = status_kib(pid, "VmRSS") as f64 / 1024.0;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    println!("{jobs} jobs, none due");
    println!("validate (reads each source's log): {validate:.2} s");
    println!("serve until /readyz answers: {ready:.2} s");
    println!("idle resident memory 5 s later: {idle_mib:.1} MiB");
    println!(
        "/metrics ({} KiB): median {:.3} s, max {:.3} s of 20 (the first renders, the rest find nothing changed)",
        size / 1024,
        support::median(scrapes.clone()),
        scrapes.iter().cloned().fold(0.0, f64::max)
    );
    println!("resident memory after the scrapes: {scraped_mib:.1} MiB");
}

/// Three replicas sharing `jobs` (the `[[job]]` tables), every one due at `due`: when each
/// occurrence was claimed, by which replica, and when the last drill ended.
async fn measure_replicas(
    root: &std::path::Path,
    job_tables: &str,
    jobs: usize,
    concurrent: usize,
    due: chrono::DateTime<chrono::Utc>,
) {
    let admin_url = std::env::var("RESTORE_DRILL_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let connect = async |url: &str| {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at RESTORE_DRILL_BENCH_POSTGRES: {e}"));
        tokio::spawn(connection);
        client
    };
    let admin = connect(&admin_url).await;
    let database = format!("restore_drill_bench_{:08x}", rand::random::<u32>());
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let (server, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{server}/{database}");
    let names = ["r1", "r2", "r3"];
    let mut children = Vec::new();
    for name in names {
        let config = format!(
            "[history]\njournal = \"journal-{name}\"\npostgres = \"{url}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\nreplicas = \"postgres\"\nmax_concurrent_drills = {concurrent}\nshutdown_grace = \"0s\"\n{job_tables}"
        );
        let file = root.join(format!("{name}.toml"));
        std::fs::write(&file, config).unwrap();
        children.push(
            Command::new(env!("CARGO_BIN_EXE_restore-drill"))
                .args(["serve", "--config"])
                .arg(&file)
                .env_remove("RUST_LOG")
                .env("RESTORE_DRILL_REPLICA", name)
                // Each replica's log beside its configuration (kept with RESTORE_DRILL_BENCH_KEEP).
                .stderr(std::fs::File::create(root.join(format!("{name}.log"))).unwrap())
                .spawn()
                .unwrap(),
        );
    }
    let client = connect(&url).await;
    let count = async |state: Option<&str>| -> usize {
        client
            .query_one(
                "SELECT count(*) FROM restore_drill_claims
                 WHERE due_at = $1 AND ($2::text IS NULL OR state = $2)",
                &[&due, &state],
            )
            .await
            .map_or(0, |r| r.get::<_, i64>(0) as usize)
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    while count(None).await < jobs {
        assert!(
            Instant::now() < deadline,
            "not every occurrence was claimed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while count(Some("finished")).await < jobs {
        assert!(Instant::now() < deadline, "drills did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = client
        .query(
            "SELECT extract(epoch FROM claimed_at - due_at)::float8,
                    extract(epoch FROM ended_at - due_at)::float8, replica
             FROM restore_drill_claims WHERE due_at = $1",
            &[&due],
        )
        .await
        .unwrap();
    for child in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    drop(client);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .await;
    let mut claimed: Vec<f64> = rows.iter().map(|r| r.get(0)).collect();
    let last_end = rows.iter().map(|r| r.get::<_, f64>(1)).fold(0.0, f64::max);
    let mut by_replica = std::collections::BTreeMap::<String, usize>::new();
    for row in &rows {
        *by_replica.entry(row.get(2)).or_default() += 1;
    }
    println!(
        "{jobs} jobs due at {} on 3 replicas, max_concurrent_drills = {concurrent} each",
        due.format("%H:%M:%S")
    );
    println!(
        "claimed (due → the claim's row, on PostgreSQL's clock): p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        quantile(&mut claimed, 0.50),
        quantile(&mut claimed, 0.99),
        quantile(&mut claimed, 1.0)
    );
    println!("drilled by: {by_replica:?}");
    println!("the last drill ended {last_end:.1} s after the due time");
}

/// A plain HTTP GET: the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}
