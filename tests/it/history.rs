//! Evidence: `run` records each drill in the journal (hash-chained) and in PostgreSQL, which
//! gets every record exactly once and in order, also after it was unreachable; `history` reads
//! them back. Against the real PostgreSQL on 127.0.0.1:5432.

use std::path::{Path, PathBuf};

use restore_drill::history::postgres::PostgresStore;
use tokio_postgres::NoTls;

use crate::helpers::{JOB, Lake, SUITE, cli, stderr, stdout};

pub(crate) const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped when this is dropped.
pub(crate) struct Database {
    pub(crate) name: String,
}

impl Database {
    /// A connection to the server's `postgres` database.
    pub(crate) async fn admin() -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(ADMIN_URL, NoTls)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (trust auth) is needed for these tests");
        tokio::spawn(connection);
        client
    }

    pub(crate) async fn new() -> Database {
        let name = format!("restore_drill_test_{:016x}", rand::random::<u64>());
        Database::admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Database { name }
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Each stored record's kind (`drill`, `restore`, `selftest`) and outcome, in journal order.
    pub(crate) async fn kinds_and_outcomes(&self) -> Vec<(String, String)> {
        self.client()
            .await
            .query(
                "SELECT record_kind, outcome FROM restore_drill_runs ORDER BY seq",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::process::Command::new("psql")
            .args([
                ADMIN_URL,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ])
            .output();
    }
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The database's URL on a port where nothing listens: PostgreSQL unreachable.
fn unreachable(db: &Database) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        closed_port(),
        db.name
    )
}

/// The lake's config with `[history]` added.
fn config_with_history(lake: &Lake, postgres: Option<&str>) -> PathBuf {
    let path = lake.config(SUITE, "1000d");
    let text = std::fs::read_to_string(&path).unwrap();
    let postgres = postgres
        .map(|url| format!("postgres = \"{url}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!("[history]\njournal = \"journal\"\n{postgres}\n{text}"),
    )
    .unwrap();
    path
}

fn run(config: &Path) -> std::process::Output {
    cli(&["run", "--config", config.to_str().unwrap(), JOB, "--json"])
}

#[tokio::test(flavor = "multi_thread")]
async fn run_records_every_drill_in_a_hash_chained_journal_and_history_lists_them() {
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-01");
    let config = config_with_history(&lake, None);
    let mut run_ids = Vec::new();
    for _ in 0..3 {
        let out = run(&config);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        run_ids.push(report["run_id"].as_str().unwrap().to_string());
    }
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, check) = journal.read(JOB).unwrap();
    assert!(check.intact(), "{:?}", check.problems);
    let recorded: Vec<&str> = records.iter().map(|s| s.record.run_id.as_str()).collect();
    assert_eq!(recorded, run_ids);
    let first = &records[0].record;
    assert_eq!(first.report["outcome"], "passed");
    assert_eq!(first.config_sha256.len(), 64);
    assert_eq!(
        first.suite_sha256,
        restore_drill::primitives::hash::sha256_hex(SUITE.as_bytes())
    );
    assert!(
        !first.report["verify"]["queries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The copy's files are the source's byte for byte, and the record says so.
    assert_eq!(
        first.report["source_equality"][0]["established_by"],
        "identical_bytes"
    );

    let out = cli(&["history", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        stderr(&out).contains("3 drills from the journal"),
        "{}",
        stderr(&out)
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    // Newest first.
    assert!(
        lines[1].contains(&run_ids[2]) && lines[3].contains(&run_ids[0]),
        "{table}"
    );
    assert!(
        lines[1].contains(JOB) && lines[1].contains("passed"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_reach_postgres_with_their_fields_and_checks() {
    let db = Database::new().await;
    let lake = Lake::new(2, 100).await;
    lake.snapshot("2026-11-01");
    let config = config_with_history(&lake, Some(&db.url()));
    let out = run(&config);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();

    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT job, seq, outcome, restored_rows, rpo_seconds, rto_seconds, snapshot_id,
                    snapshot_version, findings, rpo_objective_seconds, report->>'run_id'
             FROM restore_drill_runs WHERE run_id = $1",
            &[&report["run_id"].as_str().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), JOB);
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(row.get::<_, String>(2), "passed");
    assert_eq!(row.get::<_, Option<i64>>(3), Some(200));
    assert_eq!(row.get::<_, Option<f64>>(4), report["rpo_seconds"].as_f64());
    assert_eq!(row.get::<_, Option<f64>>(5), report["rto_seconds"].as_f64());
    assert_eq!(
        row.get::<_, Option<String>>(6).as_deref(),
        Some("transactions_2026-11-01")
    );
    assert_eq!(row.get::<_, Option<i64>>(7), Some(1));
    assert_eq!(row.get::<_, i32>(8), 0);
    assert_eq!(row.get::<_, f64>(9), 1000.0 * 86400.0);
    let checks = client
        .query(
            "SELECT check_id, outcome FROM restore_drill_check_results WHERE run_id = $1 ORDER BY check_id",
            &[&report["run_id"].as_str().unwrap()],
        )
        .await
        .unwrap();
    let ids: Vec<String> = checks.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids.len(), report["checks"].as_array().unwrap().len());
    assert!(ids.contains(&"rows".to_string()) && ids.contains(&"structure".to_string()));
    assert!(checks.iter().all(|r| r.get::<_, String>(1) == "passed"));

    // `history` reads from PostgreSQL when it is configured.
    let out = cli(&[
        "history",
        "--config",
        config.to_str().unwrap(),
        "--job",
        JOB,
    ]);
    assert!(
        stderr(&out).contains("1 drill from PostgreSQL at 127.0.0.1:5432/"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains(report["run_id"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn records_made_while_postgres_is_unreachable_arrive_once_and_in_order_when_it_is_back() {
    let db = Database::new().await;
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-01");
    let down = unreachable(&db);
    let config = config_with_history(&lake, Some(&down));
    let mut run_ids = Vec::new();
    for _ in 0..3 {
        let out = run(&config);
        // The drill's outcome stands; the record waits.
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("the record waits in the journal"),
            "{}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("postgres://"),
            "the URL leaked: {}",
            stderr(&out)
        );
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        run_ids.push(report["run_id"].as_str().unwrap().to_string());
    }

    // PostgreSQL is back: the next run sends the three waiting records and its own.
    let config = config_with_history(&lake, Some(&db.url()));
    let out = run(&config);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("waits"), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    run_ids.push(report["run_id"].as_str().unwrap().to_string());

    // A second sync (here: `history` reading through a fresh connection, then a sync) adds nothing.
    let settings = restore_drill::config::load(&config).unwrap().history;
    let history = restore_drill::history::History::new(&settings);
    assert_eq!(history.sync().await.unwrap().sent, 0);

    let client = db.client().await;
    let rows = client
        .query(
            "SELECT run_id, seq FROM restore_drill_runs ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(String, i64)> = run_ids.iter().cloned().zip(1..).collect();
    assert_eq!(stored, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_connections_migrating_at_once_apply_each_migration_once() {
    let db = Database::new().await;
    let url = db.url();
    let a = tokio::spawn({
        let url = url.clone();
        async move { PostgresStore::connect(&url, None, std::time::Duration::from_secs(10)).await }
    });
    let b = tokio::spawn({
        let url = url.clone();
        async move { PostgresStore::connect(&url, None, std::time::Duration::from_secs(10)).await }
    });
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    let client = db.client().await;
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM restore_drill_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_drops_old_records_from_journal_and_postgres_and_the_chain_stays_checkable() {
    use restore_drill::history::journal::{Journal, Record};
    let db = Database::new().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path().join("journal"));
    let now = chrono::Utc::now();
    for (i, age_days) in [400, 60, 1].into_iter().enumerate() {
        let started = now - chrono::Duration::days(age_days);
        journal
            .append(Record {
                seq: 0,
                prev: None,
                job: JOB.into(),
                run_id: format!("run-old-{i}"),
                recorded_at: started,
                tool_version: "0.1.0".into(),
                config_sha256: "c".repeat(64),
                suite_sha256: "s".repeat(64),
                report: serde_json::json!({
                    "job": JOB, "run_id": format!("run-old-{i}"), "outcome": "passed",
                    "started_at": started.to_rfc3339(), "finished_at": started.to_rfc3339(),
                }),
            })
            .unwrap();
    }
    let settings = restore_drill::config::HistorySettings {
        journal: dir.path().join("journal"),
        postgres: Some(db.url()),
        postgres_ca_file: None,
        keep: Some(std::time::Duration::from_secs(30 * 86_400)),
    };
    let history = restore_drill::history::History::new(&settings);
    assert_eq!(history.sync().await.unwrap().sent, 3);
    assert_eq!(history.prune(now).await.unwrap(), (2, 2));

    let (records, check) = journal.read(JOB).unwrap();
    assert!(check.intact(), "{:?}", check.problems);
    assert_eq!(
        records
            .iter()
            .map(|s| s.record.run_id.as_str())
            .collect::<Vec<_>>(),
        vec!["run-old-2"]
    );
    assert_eq!(journal.anchor(JOB).unwrap().unwrap().seq, 2);
    let client = db.client().await;
    let left: Vec<String> = client
        .query("SELECT run_id FROM restore_drill_runs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["run-old-2"]);
    // Nothing pruned comes back, nothing kept is sent twice.
    assert_eq!(history.sync().await.unwrap().sent, 0);
}

/// The certificate the machine's PostgreSQL serves (Debian's snakeoil: `localhost`).
const SERVER_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

#[tokio::test(flavor = "multi_thread")]
async fn with_sslmode_require_records_go_over_verified_tls() {
    let db = Database::new().await;
    let client = db.client().await;
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the PostgreSQL on 127.0.0.1:5432 must serve TLS (scripts/test turns it on for its throwaway cluster)"
    );
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-01");
    let url = format!(
        "postgres://postgres@localhost:5432/{}?sslmode=require",
        db.name
    );

    // The system's CAs are left out (Debian trusts its snakeoil certificate system-wide), so
    // only `postgres_ca_file` can make the server trusted.
    let run = |config: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .args(["run", "--config", config.to_str().unwrap(), JOB, "--json"])
            .env("RUST_LOG", "off")
            .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
            .env("SSL_CERT_DIR", "/nonexistent")
            .output()
            .unwrap()
    };
    // Without the server's certificate among the trusted ones, nothing is sent in the clear.
    let config = config_with_history(&lake, Some(&url));
    let out = run(&config);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid peer certificate"),
        "{}",
        stderr(&out)
    );
    let count = |client: tokio_postgres::Client| async move {
        client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE tablename = 'restore_drill_runs'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count(db.client().await).await, 0);

    // Trusting it, the waiting record and the new one go over TLS.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[history]\n",
        &format!("[history]\npostgres_ca_file = \"{SERVER_CERT}\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let out = run(&config);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("waits"), "{}", stderr(&out));
    let client = db.client().await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM restore_drill_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2);
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

/// The audit report as JSON, checked to have exited 0.
fn json_report(config: &Path) -> serde_json::Value {
    let out = cli(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--from",
        &today(),
        "--to",
        &today(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn chain_problems(report: &serde_json::Value) -> String {
    report["jobs"][0]["chain"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_id_of(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let report: serde_json::Value = serde_json::from_str(&stdout(out)).unwrap();
    report["run_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn report_and_history_read_postgres_after_sending_what_waits_in_the_journal() {
    let db = Database::new().await;
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-01");
    let down = unreachable(&db);
    let waiting = config_with_history(&lake, Some(&down));
    let first = run_id_of(&run(&waiting));
    let config = config_with_history(&lake, Some(&db.url()));
    let second = run_id_of(&run(&config));
    let third = run_id_of(&run(&waiting));

    // The largest limit there is, and the drill that waited in the journal is there too.
    let out = cli(&[
        "history",
        "--config",
        config.to_str().unwrap(),
        "--limit",
        &usize::MAX.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 drills from PostgreSQL at 127.0.0.1:5432/"),
        "{}",
        stderr(&out)
    );
    for run in [&first, &second, &third] {
        assert!(stdout(&out).contains(run.as_str()), "{}", stdout(&out));
    }
    assert!(!stdout(&out).contains(" ! "), "{}", stdout(&out));

    let report = json_report(&config);
    assert_eq!(report["jobs"][0]["drills"], 3, "{report:#}");
    assert_eq!(report["jobs"][0]["passed"], 3);
    assert!(
        chain_problems(&report).is_empty(),
        "{}",
        chain_problems(&report)
    );
    let client = db.client().await;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM restore_drill_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_journal_still_reaches_postgres_and_is_flagged() {
    let db = Database::new().await;
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-01");
    let config = config_with_history(&lake, Some(&db.url()));
    let file = lake.root.join(format!("journal/{JOB}.jsonl"));
    let first = run_id_of(&run(&config));
    let state_after_first = std::fs::read(&file).unwrap();
    let second = run_id_of(&run(&config));
    // The state folder is restored from a backup taken after the first drill.
    std::fs::write(&file, &state_after_first).unwrap();
    let out = run(&config);
    let third = run_id_of(&out);
    assert!(
        stderr(&out).contains("sequence number 2 was used twice"),
        "{}",
        stderr(&out)
    );

    let client = db.client().await;
    let rows: Vec<(String, i64)> = client
        .query(
            "SELECT run_id, seq FROM restore_drill_runs ORDER BY seq, recorded_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![(first, 1), (second.clone(), 2), (third.clone(), 2)]
    );

    let problems = chain_problems(&json_report(&config));
    assert!(
        problems.contains(&format!(
            "sequence number 2 was used twice: PostgreSQL holds run {second}"
        )) && problems.contains(&format!("the journal now holds run {third}")),
        "{problems}"
    );
    let out = cli(&["history", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let flagged = |run: &str| {
        lines
            .iter()
            .position(|l| !l.starts_with("  ! ") && l.contains(run))
            .is_some_and(|i| {
                lines
                    .get(i + 1)
                    .is_some_and(|next| next.starts_with("  ! "))
            })
    };
    assert!(flagged(&second) && flagged(&third), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_or_removed_newest_record_is_named_by_report_against_postgres() {
    let db = Database::new().await;
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-01");
    let config = config_with_history(&lake, Some(&db.url()));
    run_id_of(&run(&config));
    let newest = run_id_of(&run(&config));
    let file = lake.root.join(format!("journal/{JOB}.jsonl"));
    let original = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = original.lines().collect();

    // The newest record edited and rehashed: the journal's own chain stays intact.
    let body = lines[1]
        .strip_prefix(&lines[1][..9 + 64 + 11])
        .unwrap()
        .strip_suffix('}')
        .unwrap()
        .replace("\"outcome\":\"passed\"", "\"outcome\":\"failed\"");
    let hash = restore_drill::primitives::hash::sha256_hex(body.as_bytes());
    let edited = format!("{}\n{{\"hash\":\"{hash}\",\"record\":{body}}}\n", lines[0]);
    std::fs::write(&file, edited).unwrap();
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    assert!(journal.read(JOB).unwrap().1.intact());
    let problems = chain_problems(&json_report(&config));
    assert!(
        problems.contains(&format!(
            "record 2 (run {newest}) differs from its copy in PostgreSQL"
        )),
        "{problems}"
    );
    let out = cli(&["history", "--config", config.to_str().unwrap()]);
    assert!(stdout(&out).contains("  ! "), "{}", stdout(&out));

    // The newest record removed.
    std::fs::write(&file, format!("{}\n", lines[0])).unwrap();
    let problems = chain_problems(&json_report(&config));
    assert!(
        problems.contains(&format!(
            "record 2 (run {newest}) is in PostgreSQL but not in the journal, whose newest record is 1"
        )),
        "{problems}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_syncs_store_every_record_once_without_an_error() {
    let db = Database::new().await;
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-01");
    let down = unreachable(&db);
    let waiting = config_with_history(&lake, Some(&down));
    for _ in 0..6 {
        run_id_of(&run(&waiting));
    }
    let config = config_with_history(&lake, Some(&db.url()));
    let settings = restore_drill::config::load(&config).unwrap().history;
    let histories: Vec<_> = (0..3)
        .map(|_| restore_drill::history::History::new(&settings))
        .collect();
    let synced = futures::future::join_all(histories.iter().map(|h| h.sync())).await;
    let mut sent = 0;
    for result in synced {
        let result = result.expect("a concurrent sync reports no error");
        assert!(result.divergences.iter().all(|(_, d)| d.is_empty()));
        sent += result.sent;
    }
    assert_eq!(sent, 6);
    let stored: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM restore_drill_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 6);
}
