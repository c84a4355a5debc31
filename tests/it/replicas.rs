//! Several `serve` replicas on one PostgreSQL (`[server] replicas = "postgres"`): every
//! occurrence drilled exactly once and never two drills of a job at a time; a replica killed
//! mid-drill has its drill recorded as aborted by another and the schedule goes on; no drill
//! starts while PostgreSQL is down, and none runs twice after it is back.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use restore_drill::kinds::postgres::server::{Binaries, Throwaway};

use crate::helpers::{JOB, Lake, SUITE};
use crate::history::Database;
use crate::serve::{Service, sample};

/// The configuration of replica `replica`: `jobs` jobs (`t0`, `t1`, …) drilling the lake's
/// snapshots on `schedule`, its own journal, the shared database. `job` is the job's text
/// (from [`Lake::config`]).
fn replica_config(
    lake: &Lake,
    job: &str,
    postgres: &str,
    replica: &str,
    jobs: usize,
    schedule: &str,
    lease: &str,
) -> PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nreplicas = \"postgres\"\nclaim_lease = \"{lease}\"\nmax_concurrent_drills = 4\nshutdown_grace = \"60s\"\n\n[history]\njournal = \"journal-{replica}\"\npostgres = \"{postgres}\"\n\n"
    );
    for i in 0..jobs {
        text.push_str(
            &job.replace(&format!("name = \"{JOB}\""), &format!("name = \"t{i}\""))
                .replace(
                    "objectives =",
                    &format!("schedule = \"{schedule}\"\nobjectives ="),
                ),
        );
        text.push('\n');
    }
    let path = lake.root.join(format!("{replica}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A drill as a journal holds it.
#[derive(Debug, Clone)]
struct Journaled {
    job: String,
    run_id: String,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: String,
    error: String,
}

/// Every drill in the journal of `replica`.
fn journaled(lake: &Lake, replica: &str) -> Vec<Journaled> {
    let dir = lake.root.join(format!("journal-{replica}"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut drills = Vec::new();
    for entry in entries.flatten() {
        if entry.path().extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let report = &line["record"]["report"];
            if report["record"] == "selftest" {
                continue;
            }
            let time = |key: &str| report[key].as_str().unwrap().parse().unwrap();
            drills.push(Journaled {
                job: report["job"].as_str().unwrap().to_string(),
                run_id: report["run_id"].as_str().unwrap().to_string(),
                started_at: time("started_at"),
                finished_at: time("finished_at"),
                outcome: report["outcome"].as_str().unwrap().to_string(),
                error: report["error"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    drills
}

/// Fails when two drills of one job overlap in time.
fn assert_one_drill_of_a_job_at_a_time(drills: &[Journaled]) {
    let mut by_job: HashMap<&str, Vec<&Journaled>> = HashMap::new();
    for d in drills {
        by_job.entry(&d.job).or_default().push(d);
    }
    for (job, mut runs) in by_job {
        runs.sort_by_key(|d| d.started_at);
        for pair in runs.windows(2) {
            assert!(
                pair[0].finished_at <= pair[1].started_at,
                "two drills of {job} at once: {pair:#?}"
            );
        }
    }
}

/// Each journal's drills by run id, and the replica whose journal holds it; fails when a run id
/// is in two journals.
fn journals_by_run(lake: &Lake, replicas: &[&str]) -> HashMap<String, (String, Journaled)> {
    let mut by_run = HashMap::new();
    for replica in replicas {
        for drill in journaled(lake, replica) {
            if let Some((other, _)) =
                by_run.insert(drill.run_id.clone(), (replica.to_string(), drill.clone()))
            {
                panic!(
                    "{} is in the journals of {other} and {replica}",
                    drill.run_id
                );
            }
        }
    }
    by_run
}

fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_drill_every_occurrence_exactly_once_and_never_two_drills_of_a_job_at_once()
{
    let lake = Lake::new(1, 200).await;
    lake.snapshot(&today());
    let job = std::fs::read_to_string(lake.config(SUITE, "1000d")).unwrap();
    let db = Database::new().await;
    let names = ["r1", "r2", "r3"];
    let configs: Vec<PathBuf> = names
        .iter()
        .map(|name| replica_config(&lake, &job, &db.url(), name, 10, "*/2 * * * * *", "60s"))
        .collect();
    // A self-test recorded by one replica's command line, before they start.
    let (_, selftest) = crate::helpers::selftest(&configs[0], "t0", "7");
    let mut replicas: Vec<Service> = names
        .iter()
        .zip(&configs)
        .map(|(name, config)| Service::start_with(config, &[("RESTORE_DRILL_REPLICA", name)]))
        .collect();
    let began = Utc::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stopping = Utc::now();

    // Every replica shows what the shared history holds, whoever recorded it.
    let ratio = selftest["caught"].as_f64().unwrap() / selftest["applicable"].as_f64().unwrap();
    for replica in &replicas {
        let (_, metrics) = replica.get("/metrics");
        assert_eq!(sample(&metrics, "restore_drill_coordination_up"), Some(1.0));
        assert_eq!(
            sample(&metrics, "restore_drill_selftest_caught_ratio{job=\"t0\"}"),
            Some(ratio),
            "{metrics}"
        );
    }
    // Any replica tells who ran each job's last drill.
    let (_, body) = replicas[0].get("/jobs");
    let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
    for job in jobs.as_array().unwrap() {
        let replica = job["last"]["replica"].as_str().unwrap_or_default();
        assert!(names.contains(&replica), "{job:#}");
    }
    for replica in &replicas {
        replica.signal("TERM");
    }
    for replica in &mut replicas {
        let (code, log) = replica.wait_exit(Duration::from_secs(90));
        assert_eq!(code, Some(0), "{log}");
    }

    let client = db.client().await;
    let claims = client
        .query(
            "SELECT job, due_at, run_id, replica, state FROM restore_drill_claims
             WHERE kind = 'schedule'",
            &[],
        )
        .await
        .unwrap();
    let stored: HashMap<String, String> = client
        .query(
            "SELECT run_id, outcome FROM restore_drill_runs WHERE record_kind = 'drill'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let journals = journals_by_run(&lake, &names);

    // Every occurrence from when all three ran until they were told to stop was claimed, once
    // (the claims' key is the occurrence), and drilled or — while the job's previous drill still
    // ran — recorded as skipped.
    let from = began + chrono::Duration::seconds(3);
    let until = stopping - chrono::Duration::seconds(3);
    let mut drilled = 0;
    let mut skipped = 0;
    for i in 0..10 {
        let name = format!("t{i}");
        let claimed: BTreeSet<DateTime<Utc>> = claims
            .iter()
            .filter(|c| c.get::<_, String>(0) == name)
            .map(|c| c.get::<_, DateTime<Utc>>(1))
            .filter(|due| (from..until).contains(due))
            .collect();
        let expected: BTreeSet<DateTime<Utc>> = (from.timestamp()..=until.timestamp())
            .filter(|s| s % 2 == 0)
            .map(|s| DateTime::from_timestamp(s, 0).unwrap())
            .filter(|due| (from..until).contains(due))
            .collect();
        assert_eq!(claimed, expected, "the occurrences of {name}");
    }
    // Each drilled occurrence is one drill: stored once in PostgreSQL, in the journal of the
    // replica that claimed it and no other; no drill ran without a claim.
    for claim in &claims {
        let (due, run_id, replica, state): (DateTime<Utc>, String, String, String) =
            (claim.get(1), claim.get(2), claim.get(3), claim.get(4));
        match state.as_str() {
            "finished" => {
                drilled += 1;
                assert_eq!(stored.get(&run_id).map(String::as_str), Some("passed"));
                let (journal, _) = journals.get(&run_id).unwrap();
                assert_eq!(journal, &replica, "{run_id}");
            }
            "skipped" => {
                skipped += 1;
                assert!(!stored.contains_key(&run_id) && !journals.contains_key(&run_id));
            }
            // Claimed just before the replica was told to stop, and given back.
            "claimed" if due >= until => {}
            other => panic!("claim {run_id} (due {due}) ended `{other}`"),
        }
    }
    assert_eq!(stored.len(), drilled, "drills stored without a claim");
    assert_eq!(journals.len(), drilled, "drills journaled without a claim");
    assert!(
        drilled >= 150 && skipped * 4 <= drilled,
        "{drilled} drilled, {skipped} skipped"
    );
    let journaled: Vec<Journaled> = journals.into_values().map(|(_, d)| d).collect();
    assert_one_drill_of_a_job_at_a_time(&journaled);
    // The work is shared.
    let ran: BTreeSet<String> = claims
        .iter()
        .filter(|c| c.get::<_, String>(4) == "finished")
        .map(|c| c.get(3))
        .collect();
    assert!(ran.len() >= 2, "only {ran:?} drilled");
}

/// Polls `until` every 100 ms for `within`; its last answer.
async fn eventually<T>(within: Duration, mut until: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = until().await {
            return found;
        }
        assert!(Instant::now() < deadline, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_drill_has_its_drill_recorded_as_aborted_by_another_and_the_schedule_goes_on()
 {
    let (lake, config) = crate::helpers::slow_drill("").await;
    let job = std::fs::read_to_string(&config).unwrap();
    let db = Database::new().await;
    let names = ["r1", "r2"];
    let mut replicas: Vec<Service> = names
        .iter()
        .map(|name| {
            let config = replica_config(&lake, &job, &db.url(), name, 1, "*/4 * * * * *", "4s");
            Service::start_with(&config, &[("RESTORE_DRILL_REPLICA", name)])
        })
        .collect();

    // The first drill that starts, and its replica, as `/jobs` on either replica shows it.
    let (run_id, runner) = eventually(Duration::from_secs(60), async || {
        let (_, body) = replicas[0].get("/jobs/t0");
        let job: serde_json::Value = serde_json::from_str(&body).ok()?;
        let running = &job["running"];
        running["started_at"].as_str()?;
        Some((
            running["run_id"].as_str()?.to_string(),
            running["replica"].as_str()?.to_string(),
        ))
    })
    .await;
    let killed = names.iter().position(|n| *n == runner).unwrap();
    replicas[killed].signal("KILL");
    let killed_at = Utc::now();
    let survivor = names[1 - killed];

    let client = db.client().await;
    let error: String = eventually(Duration::from_secs(30), async || {
        let row = client
            .query_opt(
                "SELECT outcome, error FROM restore_drill_runs WHERE run_id = $1",
                &[&run_id],
            )
            .await
            .unwrap()?;
        assert_eq!(row.get::<_, String>(0), "aborted");
        Some(row.get(1))
    })
    .await;
    assert!(
        error.contains(&format!("replica {runner} stopped renewing its claim")),
        "{error}"
    );
    let state: String = client
        .query_one(
            "SELECT state FROM restore_drill_claims WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "abandoned");
    // Recorded once, by the survivor; the killed replica recorded nothing of it.
    let journals = journals_by_run(&lake, &names);
    assert_eq!(journals[&run_id].0, survivor);
    assert!(journals[&run_id].1.error.contains("stopped renewing"));

    // The schedule goes on: a later drill of the job passes, on the survivor.
    let passed: String = eventually(Duration::from_secs(90), async || {
        let row = client
            .query_opt(
                "SELECT run_id FROM restore_drill_runs
                 WHERE job = 't0' AND outcome = 'passed' AND started_at > $1",
                &[&killed_at],
            )
            .await
            .unwrap()?;
        Some(row.get(0))
    })
    .await;
    assert_eq!(journals_by_run(&lake, &names)[&passed].0, survivor);
    // The killed drill's sandbox was swept (its lock died with the process).
    assert!(!lake.root.join("sandbox/t0").join(&run_id).exists());
    assert_one_drill_of_a_job_at_a_time(
        &journals_by_run(&lake, &names)
            .into_values()
            .map(|(_, d)| d)
            .collect::<Vec<_>>(),
    );
    replicas[1 - killed].signal("TERM");
    let (code, log) = replicas[1 - killed].wait_exit(Duration::from_secs(90));
    assert_eq!(code, Some(0), "{log}");
}

/// Fails unless every replica's `restore_drill_coordination_up` is `up`.
fn assert_coordination(replicas: &mut [Service], up: f64) {
    for replica in replicas {
        let (_, metrics) = replica.get("/metrics");
        let seen = sample(&metrics, "restore_drill_coordination_up");
        assert_eq!(seen, Some(up), "{}", replica.log());
    }
}

/// Opens `dir` to every user: the throwaway server runs as `postgres` when tests run as root.
fn open_to_others(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_drill_starts_while_postgres_is_down_and_none_runs_twice_after_it_is_back() {
    let lake = Lake::new(1, 200).await;
    lake.snapshot(&today());
    let job = std::fs::read_to_string(lake.config(SUITE, "1000d")).unwrap();
    open_to_others(&lake.root);
    let folder = lake.root.join("pg");
    std::fs::create_dir_all(&folder).unwrap();
    open_to_others(&folder);
    let binaries = Binaries::installed(0).expect("PostgreSQL's server binaries");
    let mut server = Throwaway::start(binaries, &folder, "postgres")
        .await
        .unwrap();
    // No host before the path: a URL's host and its `host` parameter would both be tried.
    let url = format!(
        "postgresql:///postgres?host={}&user=restore_drill",
        server.socket_dir().display()
    );
    let names = ["r1", "r2"];
    let mut replicas: Vec<Service> = names
        .iter()
        .map(|name| {
            let config = replica_config(&lake, &job, &url, name, 3, "*/2 * * * * *", "60s");
            Service::start_with(&config, &[("RESTORE_DRILL_REPLICA", name)])
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_coordination(&mut replicas, 1.0);

    server.stop().await.unwrap();
    let down_from = Utc::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_coordination(&mut replicas, 0.0);
    tokio::time::sleep(Duration::from_secs(14)).await;
    server.launch().await.unwrap();
    let down_until = Utc::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_coordination(&mut replicas, 1.0);
    for replica in &replicas {
        replica.signal("TERM");
    }
    for replica in &mut replicas {
        let (code, log) = replica.wait_exit(Duration::from_secs(90));
        assert_eq!(code, Some(0), "{log}");
        assert!(log.contains("PostgreSQL cannot be reached"), "{log}");
        assert!(log.contains("PostgreSQL is reachable again"), "{log}");
    }

    let journals = journals_by_run(&lake, &names);
    let drills: Vec<Journaled> = journals.into_values().map(|(_, d)| d).collect();
    // A drill already running when PostgreSQL went may finish; none starts until it is back.
    let started_while_down: Vec<&Journaled> = drills
        .iter()
        .filter(|d| d.started_at > down_from + chrono::Duration::seconds(1))
        .filter(|d| d.started_at < down_until)
        .collect();
    assert!(started_while_down.is_empty(), "{started_while_down:#?}");
    assert!(drills.iter().any(|d| d.started_at < down_from));
    assert!(drills.iter().any(|d| d.started_at > down_until));
    assert!(drills.iter().all(|d| d.outcome == "passed"), "{drills:#?}");
    assert_one_drill_of_a_job_at_a_time(&drills);

    // Every drill is one claim's, and the database holds each once (sent after it came back).
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let finished: BTreeSet<String> = client
        .query(
            "SELECT run_id FROM restore_drill_claims WHERE state = 'finished'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let journaled: BTreeSet<String> = drills.iter().map(|d| d.run_id.clone()).collect();
    assert_eq!(finished, journaled);
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM restore_drill_runs WHERE run_id = ANY($1)",
            &[&journaled.iter().cloned().collect::<Vec<_>>()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored as usize, journaled.len());
    drop(client);
    server.stop().await.unwrap();
}
