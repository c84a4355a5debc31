//! Several `serve` replicas sharing the drills (`[server] replicas = "postgres"`): every replica
//! computes the same schedule, and each occurrence (job, due time) or run-now request is drilled
//! by the one replica whose claim on it PostgreSQL accepted.
//!
//! A claim is a row of `restore_drill_claims`, keyed by (job, occurrence), so an occurrence is
//! claimed once; a partial unique index on the job over the claims still `claimed` or `running`
//! keeps one drill per job at a time across all replicas. Rows rather than row locks: a lock
//! lives as long as one connection, so a network blip would free a drill that is still running,
//! and nobody could tell afterwards who ran what; a row outlives connections, carries a lease
//! on the database's clock, and is the evidence `/jobs` shows.
//!
//! The replica renews the leases of its claims every quarter of `claim_lease`. One that cannot
//! renew them for three quarters of the lease (dead, or cut off from PostgreSQL) gives its
//! drills up before the lease runs out, so no other replica ever starts a drill of a job that
//! is still being drilled. Claims whose lease ran out are settled by whichever replica gets to
//! them first: a drill that had started is recorded as aborted; one that had not is run by the
//! settling replica while its due time is within the job's jitter plus a minute, and recorded
//! as skipped otherwise.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Trigger;
use crate::history::HistoryError;
use crate::history::postgres::PostgresStore;

/// How late after its due time (beyond the job's jitter) an occurrence may still be started
/// by a replica that takes over the claim of one that died before starting it.
pub(crate) const TAKEOVER_WINDOW: Duration = Duration::from_secs(60);

/// The claims of one replica, through its own connection to `[history] postgres`.
pub(crate) struct Claims {
    url: String,
    ca_file: Option<PathBuf>,
    /// The replica's name, as `/jobs` and the log show it (`RESTORE_DRILL_REPLICA`, or the host
    /// name and process id).
    pub(crate) replica: String,
    /// Unique to this process: a restarted replica with the same name does not own the claims
    /// its predecessor left.
    instance: String,
    pub(crate) lease: Duration,
    connection: Mutex<Option<Arc<PostgresStore>>>,
}

/// One drill to claim: a job's scheduled occurrence or a request.
#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    pub job: String,
    pub trigger: Trigger,
    /// `schedule:<due>`, `selftest:<due>` or `request:<run id>`.
    pub key: String,
    pub due: DateTime<Utc>,
    /// Until when another replica may still start it when its claimer died first.
    pub run_by: DateTime<Utc>,
}

impl Occurrence {
    pub(crate) fn scheduled(
        job: &str,
        trigger: Trigger,
        due: DateTime<Utc>,
        jitter: Duration,
    ) -> Self {
        Self {
            job: job.to_string(),
            trigger,
            key: format!("{}:{}", trigger.as_str(), due.to_rfc3339()),
            due,
            run_by: due + to_chrono(jitter + TAKEOVER_WINDOW),
        }
    }

    pub(crate) fn requested(job: &str, run_id: &str, now: DateTime<Utc>) -> Self {
        Self {
            job: job.to_string(),
            trigger: Trigger::Request,
            key: format!("request:{run_id}"),
            due: now,
            run_by: now + to_chrono(TAKEOVER_WINDOW),
        }
    }
}

/// What became of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// This replica drills it.
    Won,
    /// Another replica claimed the occurrence (or recorded it as skipped) first.
    Taken { replica: String },
    /// The job was being drilled (`run_id`, by `replica`): this replica recorded the occurrence
    /// as skipped, and counts it.
    Skipped { replica: String, run_id: String },
    /// The job is being drilled (a request cannot be taken now).
    Busy { replica: String, run_id: String },
}

/// A drill claimed by some replica and not yet ended.
#[derive(Debug, Clone)]
pub(crate) struct ActiveClaim {
    pub job: String,
    pub run_id: String,
    pub replica: String,
    pub trigger: Trigger,
    pub claimed_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
}

/// A claim whose lease ran out, settled by this replica.
#[derive(Debug, Clone)]
pub(crate) enum Settled {
    /// Its drill had started: this replica records it as aborted (`reason`).
    Abandoned {
        job: String,
        run_id: String,
        trigger: Trigger,
        started_at: DateTime<Utc>,
        reason: String,
    },
    /// Its drill had not started and is still due: this replica now holds the claim, under
    /// `run_id`.
    TakenOver {
        job: String,
        trigger: Trigger,
        run_id: String,
        due: DateTime<Utc>,
        replica: String,
    },
    /// Its drill had not started and it is too late to start it: recorded as skipped.
    Skipped {
        job: String,
        trigger: Trigger,
        replica: String,
    },
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// This replica's name: `RESTORE_DRILL_REPLICA` (a pod's name, from the downward API), or the
/// host's name and this process's id.
pub(crate) fn replica_name() -> String {
    if let Ok(name) = std::env::var("RESTORE_DRILL_REPLICA")
        && !name.trim().is_empty()
    {
        return name.trim().to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "restore-drill".into());
    format!("{host}/{}", std::process::id())
}

const ACTIVE: &str = "('claimed', 'running')";

impl Claims {
    pub(crate) fn new(url: &str, ca_file: Option<PathBuf>, lease: Duration) -> Self {
        Self {
            url: url.to_string(),
            ca_file,
            replica: replica_name(),
            instance: format!("{:016x}", rand::random::<u64>()),
            lease,
            connection: Mutex::new(None),
        }
    }

    /// The open connection, or a new one (which brings the schema up to date).
    async fn store(&self) -> Result<Arc<PostgresStore>, HistoryError> {
        if let Some(store) = self.lock().as_ref().filter(|s| !s.client().is_closed()) {
            return Ok(store.clone());
        }
        let store = Arc::new(
            PostgresStore::connect(
                &self.url,
                self.ca_file.as_deref(),
                crate::history::CONNECT_TIMEOUT,
            )
            .await?,
        );
        *self.lock() = Some(store.clone());
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<PostgresStore>>> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lease_seconds(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Claims `occurrence` for this replica under `run_id`.
    pub(crate) async fn claim(
        &self,
        occurrence: &Occurrence,
        run_id: &str,
    ) -> Result<Claimed, HistoryError> {
        let store = self.store().await?;
        let client = store.client();
        let error = |e| store.error(e);
        // Between the failed insert and the look at who holds the job, that drill may end:
        // then the claim is tried again.
        for _ in 0..5 {
            let inserted = self.insert(&store, occurrence, run_id, None).await?;
            if inserted == 1 {
                return Ok(Claimed::Won);
            }
            let rows = client
                .query(
                    &format!(
                        "SELECT occurrence = $2, replica, run_id FROM restore_drill_claims
                         WHERE job = $1 AND (occurrence = $2 OR state IN {ACTIVE})
                         ORDER BY occurrence = $2 DESC"
                    ),
                    &[&occurrence.job, &occurrence.key],
                )
                .await
                .map_err(error)?;
            let Some(row) = rows.first() else { continue };
            let (same, replica, holder): (bool, String, String) =
                (row.get(0), row.get(1), row.get(2));
            if same {
                return Ok(Claimed::Taken { replica });
            }
            if occurrence.trigger == Trigger::Request {
                return Ok(Claimed::Busy {
                    replica,
                    run_id: holder,
                });
            }
            // The job is busy: the occurrence is skipped, and the replica that records the skip
            // is the one that counts it.
            let reason = format!("the drill {holder} by {replica} was still running");
            let recorded = self
                .insert(&store, occurrence, run_id, Some(&reason))
                .await?;
            return Ok(if recorded == 1 {
                Claimed::Skipped {
                    replica,
                    run_id: holder,
                }
            } else {
                Claimed::Taken { replica }
            });
        }
        Ok(Claimed::Taken {
            replica: "another replica".into(),
        })
    }

    /// Inserts the claim of `occurrence` for this replica, or — with `skipped`, the reason — the
    /// record that it was skipped; nothing when a row conflicts. Returns the rows inserted.
    async fn insert(
        &self,
        store: &PostgresStore,
        occurrence: &Occurrence,
        run_id: &str,
        skipped: Option<&str>,
    ) -> Result<u64, HistoryError> {
        store
            .client()
            .execute(
                "INSERT INTO restore_drill_claims (job, occurrence, kind, run_id, replica,
                    instance, state, due_at, run_by, lease_until, ended_at, reason)
                 VALUES ($1, $2, $3, $4, $5, $6,
                    CASE WHEN $10::text IS NULL THEN 'claimed' ELSE 'skipped' END, $7, $8,
                    CASE WHEN $10::text IS NULL THEN now() + make_interval(secs => $9)
                        ELSE now() END,
                    CASE WHEN $10::text IS NULL THEN NULL ELSE now() END, $10)
                 ON CONFLICT DO NOTHING",
                &[
                    &occurrence.job,
                    &occurrence.key,
                    &occurrence.trigger.as_str(),
                    &run_id,
                    &self.replica,
                    &self.instance,
                    &occurrence.due,
                    &occurrence.run_by,
                    &self.lease_seconds(),
                    &skipped,
                ],
            )
            .await
            .map_err(|e| store.error(e))
    }

    /// Marks this replica's claim `run_id` as started; false if it is no longer this replica's.
    pub(crate) async fn started(&self, run_id: &str) -> Result<bool, HistoryError> {
        let store = self.store().await?;
        let changed = store
            .client()
            .execute(
                "UPDATE restore_drill_claims SET state = 'running', started_at = now(),
                    lease_until = now() + make_interval(secs => $3)
                 WHERE run_id = $1 AND instance = $2 AND state = 'claimed'",
                &[&run_id, &self.instance, &self.lease_seconds()],
            )
            .await
            .map_err(|e| store.error(e))?;
        Ok(changed == 1)
    }

    /// Ends this replica's claim `run_id`; false if it is no longer this replica's (it was
    /// settled by another after its lease ran out).
    pub(crate) async fn end(&self, run_id: &str) -> Result<bool, HistoryError> {
        let store = self.store().await?;
        let changed = store
            .client()
            .execute(
                &format!(
                    "UPDATE restore_drill_claims SET state = 'finished', ended_at = now()
                     WHERE run_id = $1 AND instance = $2 AND state IN {ACTIVE}"
                ),
                &[&run_id, &self.instance],
            )
            .await
            .map_err(|e| store.error(e))?;
        Ok(changed == 1)
    }

    /// Gives up this replica's claim `run_id` on a drill that has not started (the service is
    /// shutting down): its lease ends now, so another replica may still run it in time.
    pub(crate) async fn give_back(&self, run_id: &str) -> Result<(), HistoryError> {
        let store = self.store().await?;
        store
            .client()
            .execute(
                "UPDATE restore_drill_claims SET lease_until = now()
                 WHERE run_id = $1 AND instance = $2 AND state = 'claimed'",
                &[&run_id, &self.instance],
            )
            .await
            .map_err(|e| store.error(e))?;
        Ok(())
    }

    /// Renews the leases of this replica's claims; returns the run ids still this replica's.
    pub(crate) async fn renew(&self) -> Result<Vec<String>, HistoryError> {
        let store = self.store().await?;
        let rows = store
            .client()
            .query(
                &format!(
                    "UPDATE restore_drill_claims SET lease_until = now() + make_interval(secs => $2)
                     WHERE instance = $1 AND state IN {ACTIVE} RETURNING run_id"
                ),
                &[&self.instance, &self.lease_seconds()],
            )
            .await
            .map_err(|e| store.error(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Every drill claimed and not yet ended, by any replica.
    pub(crate) async fn active(&self) -> Result<Vec<ActiveClaim>, HistoryError> {
        let store = self.store().await?;
        let rows = store
            .client()
            .query(
                &format!(
                    "SELECT job, run_id, replica, kind, claimed_at, started_at
                     FROM restore_drill_claims WHERE state IN {ACTIVE}"
                ),
                &[],
            )
            .await
            .map_err(|e| store.error(e))?;
        Ok(rows
            .iter()
            .map(|r| ActiveClaim {
                job: r.get(0),
                run_id: r.get(1),
                replica: r.get(2),
                trigger: Trigger::from_kind(r.get(3)),
                claimed_at: r.get(4),
                started_at: r.get(5),
            })
            .collect())
    }

    /// The replica that claimed each of `run_ids` (those claimed through PostgreSQL).
    pub(crate) async fn replicas_of(
        &self,
        run_ids: &[String],
    ) -> Result<Vec<(String, String)>, HistoryError> {
        let store = self.store().await?;
        let rows = store
            .client()
            .query(
                "SELECT run_id, replica FROM restore_drill_claims WHERE run_id = ANY($1)",
                &[&run_ids],
            )
            .await
            .map_err(|e| store.error(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Settles the claims of the jobs `known` accepts whose lease ran out: each is settled by
    /// exactly one replica, whichever changes its row first. `run_id` names a new drill for a
    /// claim taken over.
    pub(crate) async fn settle_expired(
        &self,
        known: impl Fn(&str) -> bool,
        run_id: impl Fn() -> String,
    ) -> Result<Vec<Settled>, HistoryError> {
        let store = self.store().await?;
        let client = store.client();
        let error = |e| store.error(e);
        let rows = client
            .query(
                &format!(
                    "SELECT job, occurrence, kind, run_id, replica, state, due_at, started_at,
                        lease_until
                     FROM restore_drill_claims WHERE state IN {ACTIVE} AND lease_until < now()"
                ),
                &[],
            )
            .await
            .map_err(error)?;
        let mut settled = Vec::new();
        for row in rows {
            let job: String = row.get(0);
            if !known(&job) {
                continue;
            }
            let occurrence: String = row.get(1);
            let trigger = Trigger::from_kind(row.get(2));
            let old_run: String = row.get(3);
            let replica: String = row.get(4);
            let state: String = row.get(5);
            let due: DateTime<Utc> = row.get(6);
            let started_at: Option<DateTime<Utc>> = row.get(7);
            let lease_until: DateTime<Utc> = row.get(8);
            if state == "running" {
                let reason = format!(
                    "replica {replica} stopped renewing its claim on this drill (its lease ran out at {}): it died or lost PostgreSQL mid-drill; the drill was abandoned and recorded by {}",
                    lease_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    self.replica
                );
                let changed = client
                    .execute(
                        "UPDATE restore_drill_claims SET state = 'abandoned', ended_at = now(),
                            reason = $4
                         WHERE job = $1 AND occurrence = $2 AND run_id = $3 AND state = 'running'
                            AND lease_until < now()",
                        &[&job, &occurrence, &old_run, &reason],
                    )
                    .await
                    .map_err(error)?;
                if changed == 1 {
                    settled.push(Settled::Abandoned {
                        job,
                        run_id: old_run,
                        trigger,
                        started_at: started_at.unwrap_or(due),
                        reason,
                    });
                }
                continue;
            }
            let new_run = run_id();
            let taken = client
                .execute(
                    "UPDATE restore_drill_claims SET run_id = $4, replica = $5, instance = $6,
                        claimed_at = now(), lease_until = now() + make_interval(secs => $7)
                     WHERE job = $1 AND occurrence = $2 AND run_id = $3 AND state = 'claimed'
                        AND lease_until < now() AND now() <= run_by",
                    &[
                        &job,
                        &occurrence,
                        &old_run,
                        &new_run,
                        &self.replica,
                        &self.instance,
                        &self.lease_seconds(),
                    ],
                )
                .await
                .map_err(error)?;
            if taken == 1 {
                settled.push(Settled::TakenOver {
                    job,
                    trigger,
                    run_id: new_run,
                    due,
                    replica,
                });
                continue;
            }
            let reason = format!(
                "replica {replica} claimed it and stopped before starting it; by the time its lease ran out the occurrence was too late to start"
            );
            let skipped = client
                .execute(
                    "UPDATE restore_drill_claims SET state = 'skipped', ended_at = now(),
                        reason = $4
                     WHERE job = $1 AND occurrence = $2 AND run_id = $3 AND state = 'claimed'
                        AND lease_until < now() AND now() > run_by",
                    &[&job, &occurrence, &old_run, &reason],
                )
                .await
                .map_err(error)?;
            if skipped == 1 {
                settled.push(Settled::Skipped {
                    job,
                    trigger,
                    replica,
                });
            }
        }
        Ok(settled)
    }

    /// Drops the ended claims older than `days` days: they are evidence of who ran what only
    /// as long as the records are.
    pub(crate) async fn prune(&self, days: i32) -> Result<u64, HistoryError> {
        let store = self.store().await?;
        store
            .client()
            .execute(
                &format!(
                    "DELETE FROM restore_drill_claims
                     WHERE state NOT IN {ACTIVE} AND claimed_at < now() - make_interval(days => $1)"
                ),
                &[&days],
            )
            .await
            .map_err(|e| store.error(e))
    }

    /// The connection for reading the shared history (the same database).
    pub(crate) async fn history_store(&self) -> Result<Arc<PostgresStore>, HistoryError> {
        self.store().await
    }

    /// Forgets the connection when PostgreSQL closed it, so the next call connects again.
    pub(crate) fn forget_closed(&self) {
        let mut connection = self.lock();
        if connection.as_ref().is_some_and(|s| s.client().is_closed()) {
            *connection = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::NoTls;

    const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    /// A new database on the machine's PostgreSQL, dropped when the value goes.
    struct Database(String);

    impl Database {
        async fn new() -> Database {
            let (admin, connection) = tokio_postgres::connect(ADMIN, NoTls)
                .await
                .expect("PostgreSQL on 127.0.0.1:5432 (trust auth) is needed for these tests");
            tokio::spawn(connection);
            let name = format!("restore_drill_claims_{:016x}", rand::random::<u64>());
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            Database(name)
        }

        fn url(&self) -> String {
            format!("postgres://postgres@127.0.0.1:5432/{}", self.0)
        }

        /// A replica named `name` claiming through this database.
        fn replica(&self, name: &str, lease: Duration) -> Claims {
            let mut claims = Claims::new(&self.url(), None, lease);
            claims.replica = name.to_string();
            claims
        }
    }

    impl Drop for Database {
        fn drop(&mut self) {
            let _ = std::process::Command::new("psql")
                .args([
                    ADMIN,
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
                ])
                .output();
        }
    }

    fn due(seconds_from_now: i64) -> DateTime<Utc> {
        let now = Utc::now().timestamp();
        DateTime::from_timestamp(now + seconds_from_now, 0).unwrap()
    }

    fn everything(_: &str) -> bool {
        true
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_occurrence_is_claimed_once_and_one_due_while_its_job_runs_is_skipped_once() {
        let db = Database::new().await;
        let lease = Duration::from_secs(60);
        let (a, b) = (db.replica("a", lease), db.replica("b", lease));
        let first = Occurrence::scheduled("orders", Trigger::Schedule, due(0), Duration::ZERO);
        assert_eq!(a.claim(&first, "run-a1").await.unwrap(), Claimed::Won);
        assert_eq!(
            b.claim(&first, "run-b1").await.unwrap(),
            Claimed::Taken {
                replica: "a".into()
            }
        );
        assert!(a.started("run-a1").await.unwrap());
        // The next occurrence comes due while the first drill runs: one replica records the
        // skip (and counts it); the other finds it recorded.
        let second = Occurrence::scheduled("orders", Trigger::Schedule, due(2), Duration::ZERO);
        assert_eq!(
            b.claim(&second, "run-b2").await.unwrap(),
            Claimed::Skipped {
                replica: "a".into(),
                run_id: "run-a1".into()
            }
        );
        assert_eq!(
            a.claim(&second, "run-a2").await.unwrap(),
            Claimed::Taken {
                replica: "b".into()
            }
        );
        // A request is refused while the job is drilled anywhere.
        let request = Occurrence::requested("orders", "run-b3", Utc::now());
        assert_eq!(
            b.claim(&request, "run-b3").await.unwrap(),
            Claimed::Busy {
                replica: "a".into(),
                run_id: "run-a1".into()
            }
        );
        // Only its claimer ends a claim; then the job is free for the next occurrence.
        assert!(!b.end("run-a1").await.unwrap());
        assert!(a.end("run-a1").await.unwrap());
        let third = Occurrence::scheduled("orders", Trigger::Schedule, due(4), Duration::ZERO);
        assert_eq!(b.claim(&third, "run-b4").await.unwrap(), Claimed::Won);
        assert_eq!(a.renew().await.unwrap(), Vec::<String>::new());
        assert_eq!(b.renew().await.unwrap(), vec!["run-b4".to_string()]);
        let active = a.active().await.unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(
            (active[0].job.as_str(), active[0].replica.as_str()),
            ("orders", "b")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_lapsed_claim_is_settled_once_aborted_if_it_started_else_run_while_due_else_skipped()
    {
        let db = Database::new().await;
        let short = Duration::from_millis(500);
        let (a, b) = (
            db.replica("a", short),
            db.replica("b", Duration::from_secs(60)),
        );
        let run_id = || format!("run-{:08x}", rand::random::<u32>());

        // A drill that started, on a replica that stopped renewing: aborted, settled once.
        let first = Occurrence::scheduled("orders", Trigger::Schedule, due(0), Duration::ZERO);
        assert_eq!(a.claim(&first, "run-a1").await.unwrap(), Claimed::Won);
        assert!(a.started("run-a1").await.unwrap());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let settled = b.settle_expired(everything, run_id).await.unwrap();
        let [
            Settled::Abandoned {
                run_id: abandoned,
                reason,
                ..
            },
        ] = settled.as_slice()
        else {
            panic!("{settled:?}");
        };
        assert_eq!(abandoned, "run-a1");
        assert!(reason.contains("replica a stopped renewing"), "{reason}");
        assert!(
            b.settle_expired(everything, run_id)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !a.end("run-a1").await.unwrap(),
            "a lost claim is not ended by its claimer"
        );

        // Claimed, never started, still due: another replica takes it over and holds it.
        let second = Occurrence::scheduled("orders", Trigger::Schedule, due(1), Duration::ZERO);
        assert_eq!(a.claim(&second, "run-a2").await.unwrap(), Claimed::Won);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let settled = b.settle_expired(everything, run_id).await.unwrap();
        let [
            Settled::TakenOver {
                run_id: taken,
                replica,
                ..
            },
        ] = settled.as_slice()
        else {
            panic!("{settled:?}");
        };
        assert_eq!(replica, "a");
        assert!(!a.started("run-a2").await.unwrap());
        assert!(b.started(taken).await.unwrap());
        assert!(b.end(taken).await.unwrap());

        // Claimed, never started, and too late to start elsewhere: skipped.
        let mut late =
            Occurrence::scheduled("orders", Trigger::Schedule, due(-600), Duration::ZERO);
        late.run_by = due(-1);
        assert_eq!(a.claim(&late, "run-a3").await.unwrap(), Claimed::Won);
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A replica that does not have the job leaves it to one that has.
        assert!(
            b.settle_expired(|_| false, run_id)
                .await
                .unwrap()
                .is_empty()
        );
        let settled = b.settle_expired(everything, run_id).await.unwrap();
        assert!(
            matches!(settled.as_slice(), [Settled::Skipped { replica, .. }] if replica == "a"),
            "{settled:?}"
        );
    }
}
