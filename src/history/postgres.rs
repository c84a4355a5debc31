//! The PostgreSQL store: runs and check results in tables, fed from the journal.
//!
//! The schema is created and migrated by restore-drill itself: numbered migrations applied in a
//! transaction that holds an advisory lock, so several processes starting at once apply each
//! migration exactly once. Records arrive in journal order; the run id is the key, so sending a
//! record twice stores it once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::HistoryError;
use super::journal::Stored;
use super::reconcile::StoredRow;
use crate::drill::DrillSummary;

/// The schema, one migration per entry; applied in order, never edited once released.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "runs and check results",
        r#"
CREATE TABLE restore_drill_runs (
    run_id text PRIMARY KEY,
    job text NOT NULL,
    journal_id text NOT NULL,
    seq bigint NOT NULL,
    record_hash text NOT NULL,
    prev_hash text,
    recorded_at timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    outcome text NOT NULL,
    error text,
    snapshot_id text,
    snapshot_version bigint,
    snapshot_commit_at timestamptz,
    restored_files bigint,
    restored_bytes bigint,
    restored_rows bigint,
    restore_seconds double precision,
    verify_seconds double precision,
    rpo_seconds double precision,
    rto_seconds double precision,
    rpo_objective_seconds double precision NOT NULL,
    rto_objective_seconds double precision NOT NULL,
    findings integer NOT NULL,
    tool_version text NOT NULL,
    config_sha256 text NOT NULL,
    suite_sha256 text NOT NULL,
    report jsonb NOT NULL,
    UNIQUE (journal_id, job, seq)
);
CREATE INDEX restore_drill_runs_job_started ON restore_drill_runs (job, started_at DESC);
CREATE INDEX restore_drill_runs_started ON restore_drill_runs (started_at DESC);
CREATE TABLE restore_drill_check_results (
    run_id text NOT NULL REFERENCES restore_drill_runs (run_id) ON DELETE CASCADE,
    check_id text NOT NULL,
    kind text NOT NULL,
    severity text NOT NULL,
    outcome text NOT NULL,
    message text,
    observed jsonb,
    expected jsonb,
    PRIMARY KEY (run_id, check_id)
);
CREATE INDEX restore_drill_check_results_failed
    ON restore_drill_check_results (check_id) WHERE outcome = 'failed';
"#,
    ),
    (
        2,
        "a sequence number reused by a rolled-back journal is stored, not refused",
        r#"
ALTER TABLE restore_drill_runs DROP CONSTRAINT IF EXISTS restore_drill_runs_journal_id_job_seq_key;
CREATE INDEX restore_drill_runs_journal_seq ON restore_drill_runs (journal_id, job, seq);
"#,
    ),
    (
        3,
        "each record says whether it is a drill or a restore for real",
        r#"
ALTER TABLE restore_drill_runs ADD COLUMN IF NOT EXISTS record_kind text NOT NULL DEFAULT 'drill';
UPDATE restore_drill_runs SET record_kind = 'restore' WHERE report ? 'recovery';
"#,
    ),
    (
        4,
        "replicas claim each drill; each record says when it was stored",
        r#"
ALTER TABLE restore_drill_runs ADD COLUMN IF NOT EXISTS stored_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS restore_drill_runs_stored ON restore_drill_runs (stored_at);
CREATE TABLE restore_drill_claims (
    job text NOT NULL,
    occurrence text NOT NULL,
    kind text NOT NULL,
    run_id text NOT NULL,
    replica text NOT NULL,
    instance text NOT NULL,
    state text NOT NULL
        CHECK (state IN ('claimed', 'running', 'finished', 'abandoned', 'skipped')),
    due_at timestamptz NOT NULL,
    run_by timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    lease_until timestamptz NOT NULL,
    ended_at timestamptz,
    reason text,
    PRIMARY KEY (job, occurrence)
);
CREATE UNIQUE INDEX restore_drill_claims_one_at_a_time
    ON restore_drill_claims (job) WHERE state IN ('claimed', 'running');
CREATE INDEX restore_drill_claims_leases
    ON restore_drill_claims (lease_until) WHERE state IN ('claimed', 'running');
CREATE INDEX restore_drill_claims_run ON restore_drill_claims (run_id);
CREATE INDEX restore_drill_claims_claimed ON restore_drill_claims (claimed_at);
"#,
    ),
];

/// Any number that other applications are unlikely to use as an advisory lock key.
const MIGRATION_LOCK: i64 = 0x7265_7374_6f72_6531;

/// A connection to the history database.
pub struct PostgresStore {
    client: Client,
    /// `host:port` for messages: never the URL, which may hold a password.
    pub place: String,
}

fn pg_error(place: &str, e: tokio_postgres::Error) -> HistoryError {
    HistoryError::Postgres {
        place: place.to_string(),
        reason: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.to_string()),
    }
}

/// An error and its causes on one line ("error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// TLS for `sslmode=require`: the system's CAs, plus those of `ca_file`.
fn tls_connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(file) = ca_file {
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| format!("postgres_ca_file {}: {e}", file.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("postgres_ca_file {}: {e}", file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("postgres_ca_file {}: {e}", file.display()))?;
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Where a URL points, without its credentials.
pub(crate) fn place_of(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let host = config
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let db = config.get_dbname().unwrap_or("");
            format!("{host}:{port}/{db}")
        }
        Err(_) => "an unparsable PostgreSQL URL".into(),
    }
}

impl PostgresStore {
    /// Connects (giving up after `timeout`) and brings the schema up to date. With
    /// `sslmode=require` in the URL the connection uses TLS, verifying the server's certificate
    /// and host name against the system's CAs and `ca_file`; otherwise it is plain.
    pub async fn connect(
        url: &str,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, HistoryError> {
        let place = place_of(url);
        let unreachable = |reason: String| HistoryError::Postgres {
            place: place.clone(),
            reason,
        };
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| unreachable(format!("{e}")))?;
        config.connect_timeout(timeout);
        config.application_name("restore-drill");
        let connected = if config.get_ssl_mode() == SslMode::Require {
            let tls = tls_connector(ca_file).map_err(&unreachable)?;
            tokio::time::timeout(timeout, config.connect(tls))
                .await
                .map(|r| r.map(|(client, connection)| (client, tokio::spawn(connection))))
        } else {
            tokio::time::timeout(timeout, config.connect(NoTls))
                .await
                .map(|r| r.map(|(client, connection)| (client, tokio::spawn(connection))))
        };
        let (client, connection) = connected
            .map_err(|_| unreachable(format!("no answer within {} s", timeout.as_secs())))?
            .map_err(|e| unreachable(with_causes(&e)))?;
        tokio::spawn(async move {
            if let Ok(Err(e)) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        let mut store = Self { client, place };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) fn error(&self, e: tokio_postgres::Error) -> HistoryError {
        pg_error(&self.place, e)
    }

    /// The connection, for the tables other modules own (the replicas' claims).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The jobs with a record stored after `since` (the database's clock), each with the kinds
    /// of those records (`drill`, `restore`, `selftest`), and the database's time now, for the
    /// next call.
    pub(crate) async fn jobs_stored_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<(Vec<(String, String)>, DateTime<Utc>), HistoryError> {
        let now: DateTime<Utc> = self
            .client
            .query_one("SELECT now()", &[])
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        let rows = self
            .client
            .query(
                "SELECT DISTINCT job, record_kind FROM restore_drill_runs
                 WHERE $1::timestamptz IS NULL OR stored_at >= $1",
                &[&since],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok((rows.iter().map(|r| (r.get(0), r.get(1))).collect(), now))
    }

    /// The report of `job`'s newest self-test, if it had one.
    pub(crate) async fn newest_selftest(&self, job: &str) -> Result<Option<Value>, HistoryError> {
        let row = self
            .client
            .query_opt(
                "SELECT report FROM restore_drill_runs
                 WHERE job = $1 AND record_kind = 'selftest' ORDER BY started_at DESC LIMIT 1",
                &[&job],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// How many restores for real of `job` ended with each outcome.
    pub(crate) async fn restore_counts(
        &self,
        job: &str,
    ) -> Result<Vec<(String, i64)>, HistoryError> {
        let rows = self
            .client
            .query(
                "SELECT outcome, count(*) FROM restore_drill_runs
                 WHERE job = $1 AND record_kind = 'restore' GROUP BY outcome",
                &[&job],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Applies the migrations this database lacks; safe to run from several processes at once.
    pub(crate) async fn migrate(&mut self) -> Result<(), HistoryError> {
        let place = self.place.clone();
        let transaction = self
            .client
            .transaction()
            .await
            .map_err(|e| pg_error(&place, e))?;
        let result: Result<(), tokio_postgres::Error> = async {
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            transaction
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS restore_drill_schema_migrations (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await?;
            let applied: Vec<i32> = transaction
                .query("SELECT version FROM restore_drill_schema_migrations", &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for (version, name, sql) in MIGRATIONS {
                if applied.contains(version) {
                    continue;
                }
                transaction.batch_execute(sql).await?;
                transaction
                    .execute(
                        "INSERT INTO restore_drill_schema_migrations (version, name) VALUES ($1, $2)",
                        &[version, name],
                    )
                    .await?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => transaction.commit().await.map_err(|e| pg_error(&place, e)),
            Err(e) => Err(pg_error(&place, e)),
        }
    }

    /// The records stored for `job` from the journal `journal_id`: sequence number, hash, run id.
    pub async fn stored(
        &self,
        journal_id: &str,
        job: &str,
    ) -> Result<Vec<StoredRow>, HistoryError> {
        let rows = self
            .client
            .query(
                "SELECT seq, record_hash, run_id FROM restore_drill_runs
                 WHERE journal_id = $1 AND job = $2 ORDER BY seq, run_id",
                &[&journal_id, &job],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|r| StoredRow {
                seq: r.get::<_, i64>(0).max(0) as u64,
                hash: r.get(1),
                run_id: r.get(2),
            })
            .collect())
    }

    /// Stores one record and its check results; a record already stored is left as it is.
    /// Returns whether it was new.
    pub async fn insert(
        &mut self,
        journal_id: &str,
        stored: &Stored,
    ) -> Result<bool, HistoryError> {
        let r = &stored.record;
        let report = &r.report;
        // A record this version cannot read as a report is still stored, with its columns empty.
        let selftest = super::SelfTestSummary::from_record(report).and_then(Result::ok);
        let drill = match selftest {
            Some(_) => None,
            None => DrillSummary::from_record(report.clone()).ok(),
        };
        let d = drill.as_ref();
        let findings = d.map_or(0, |d| d.findings.len()) as i32;
        let started = d
            .map(|d| d.started_at)
            .or(selftest.as_ref().map(|s| s.started_at))
            .unwrap_or(r.recorded_at);
        let finished = d
            .map(|d| d.finished_at)
            .or(selftest.as_ref().map(|s| s.finished_at))
            .unwrap_or(r.recorded_at);
        let outcome = match (d, &selftest) {
            (Some(d), _) => d.outcome.as_str(),
            (None, Some(s)) => s.outcome(),
            (None, None) => "",
        };
        let record_kind = match (d, &selftest) {
            (_, Some(_)) => "selftest",
            (Some(d), _) if d.is_restore() => "restore",
            _ => "drill",
        };
        let snapshot = d.and_then(|d| d.snapshot.as_ref());
        let restore = d.and_then(|d| d.restore.as_ref());
        let verify = d.and_then(|d| d.verify.as_ref());
        let place = self.place.clone();
        let transaction = self
            .client
            .transaction()
            .await
            .map_err(|e| pg_error(&place, e))?;
        let result: Result<bool, tokio_postgres::Error> = async {
            let inserted = transaction
                .execute(
                    "INSERT INTO restore_drill_runs (run_id, job, journal_id, seq, record_hash, prev_hash,
                        recorded_at, started_at, finished_at, outcome, error, snapshot_id,
                        snapshot_version, snapshot_commit_at, restored_files, restored_bytes,
                        restored_rows, restore_seconds, verify_seconds, rpo_seconds, rto_seconds,
                        rpo_objective_seconds, rto_objective_seconds, findings, tool_version,
                        config_sha256, suite_sha256, report, record_kind)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                        $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)
                     ON CONFLICT (run_id) DO NOTHING",
                    &[
                        &r.run_id,
                        &r.job,
                        &journal_id,
                        &(r.seq as i64),
                        &stored.hash,
                        &r.prev,
                        &r.recorded_at,
                        &started,
                        &finished,
                        &outcome,
                        &d.and_then(|d| d.error.as_deref()),
                        &snapshot.map(|s| s.id.as_str()),
                        &snapshot.and_then(|s| s.version).map(|v| v as i64),
                        &snapshot.and_then(|s| s.commit_timestamp),
                        &restore.and_then(|r| r.files).map(|f| f as i64),
                        &restore.map(|r| r.bytes as i64),
                        &verify.and_then(|v| v.rows).map(|r| r as i64),
                        &restore.map(|r| r.seconds),
                        &verify.map(|v| v.seconds),
                        &d.and_then(|d| d.rpo_seconds),
                        &d.and_then(|d| d.rto_seconds),
                        &d.map_or(0.0, |d| d.objectives.rpo_seconds),
                        &d.map_or(0.0, |d| d.objectives.rto_seconds),
                        &findings,
                        &r.tool_version,
                        &r.config_sha256,
                        &r.suite_sha256,
                        report,
                        &record_kind,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Ok(false);
            }
            for check in d.map(|d| d.checks.as_slice()).unwrap_or_default() {
                transaction
                    .execute(
                        "INSERT INTO restore_drill_check_results
                            (run_id, check_id, kind, severity, outcome, message, observed, expected)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                         ON CONFLICT (run_id, check_id) DO NOTHING",
                        &[
                            &r.run_id,
                            &check.id,
                            &check.kind,
                            &check.severity.map_or("", |s| s.as_str()),
                            &check.outcome.as_str(),
                            &check.message,
                            &check.observed,
                            &check.expected,
                        ],
                    )
                    .await?;
            }
            Ok(true)
        }
        .await;
        match result {
            Ok(new) => {
                transaction
                    .commit()
                    .await
                    .map_err(|e| pg_error(&place, e))?;
                Ok(new)
            }
            Err(e) => Err(pg_error(&place, e)),
        }
    }

    /// Deletes the drills (and their check results) that started before `before`.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64, HistoryError> {
        self.client
            .execute(
                "DELETE FROM restore_drill_runs WHERE started_at < $1",
                &[&before],
            )
            .await
            .map_err(|e| self.error(e))
    }

    /// When the newest passed drill of `job` finished, if any passed.
    pub(crate) async fn last_passed(
        &self,
        job: &str,
    ) -> Result<Option<DateTime<Utc>>, HistoryError> {
        let row = self
            .client
            .query_one(
                "SELECT max(finished_at) FROM restore_drill_runs
                 WHERE job = $1 AND outcome = 'passed' AND record_kind = 'drill'",
                &[&job],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.get(0))
    }

    /// Every record of `job`, newest first: its report with the configuration's and suite's
    /// hashes it was recorded with.
    pub(crate) async fn records_of(
        &self,
        job: &str,
    ) -> Result<Vec<(Value, String, String)>, HistoryError> {
        let rows = self
            .client
            .query(
                "SELECT report, config_sha256, suite_sha256 FROM restore_drill_runs
                 WHERE job = $1 ORDER BY started_at DESC",
                &[&job],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// The reports of recent drills, newest first.
    pub(crate) async fn recent(
        &self,
        job: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Value>, HistoryError> {
        let rows = self
            .client
            .query(
                "SELECT report FROM restore_drill_runs
                 WHERE ($1::text IS NULL OR job = $1) AND ($2::timestamptz IS NULL OR started_at >= $2)
                 ORDER BY started_at DESC LIMIT $3",
                &[&job, &since, &(limit.min(i64::MAX as usize) as i64)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(|r| r.get::<_, Value>(0)).collect())
    }
}
