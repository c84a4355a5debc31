//! `restore-drill demo`: a complete drill on one machine with no services. It writes a
//! `financial_transactions` Delta table, three dated snapshots (the newest healthy, an older
//! one damaged), a configuration and a suite; drills the healthy and the damaged snapshot, and
//! prints both results and the metrics those runs export. Where PostgreSQL server binaries are
//! installed it does the same for a PostgreSQL database and two dumps of it (`postgres.rs`).

pub mod data;
pub mod postgres;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{Duration, Utc};

use crate::clock::SystemClock;
use crate::drill::{self, DrillOptions, DrillReport, Outcome, Progress};
use crate::history::History;
use crate::metrics::DrillMetrics;

/// The demo's suite, written to `checks/financial_transactions.toml`.
pub const SUITE: &str = include_str!("../../checks/financial_transactions.toml");

/// The demo's configuration; `{root}` is replaced by the demo folder.
/// The demo's smoke test: what the nightly ledger export needs of the restored table.
const SMOKE: &str = r#"#!/bin/sh
# What the nightly ledger export needs of a restored financial_transactions table: its log
# replays from the start, and there are data files to read. restore-drill runs this after the
# table passed its checks, with the table's folder in RESTORE_DRILL_RESTORED_PATH.
set -eu
table="$RESTORE_DRILL_RESTORED_PATH"
test -f "$table/_delta_log/00000000000000000000.json"
commits=$(find "$table/_delta_log" -name '*.json' | wc -l)
files=$(find "$table" -name '*.parquet' -not -path '*/_delta_log/*' | wc -l)
echo "ledger export input: $commits commits, $files data files in $table"
test "$files" -ge 1
"#;

fn config_text(root: &Path) -> String {
    format!(
        r##"# A drill of the demo's financial_transactions table.

[history]
journal = "journal"                 # every drill's record, hash-chained

[server]
listen = "127.0.0.1:9841"           # for `restore-drill serve`

[[job]]
name = "financial_transactions"
description = "Card and transfer transactions, one row per booking"
owner = "data-platform@example.com"
severity = "SEV1"                   # the runbook's overview: how bad a loss is,
affects = ["payments API", "month-end finance reports"]   # who sees it,
dependents = ["nightly-ledger-export"]                    # what to pause and resync,
incident_channel = "#inc-payments"                        # and where to declare it
source = "{root}/lake/financial_transactions"
snapshots = {{ kind = "delta_copy", location = "{root}/backups/daily", pattern = "financial_transactions_{{date}}" }}
sandbox = "{root}/sandbox"
suite = "checks/financial_transactions.toml"
objectives = {{ rpo = "26h", rto = "15m" }}
compare = {{ key = ["transaction_id"], sample_fraction = 0.01 }}
redact = ["account_id"]
schedule = "0 */5 * * * *"          # `serve` drills it every five minutes

[[job.smoke]]                       # the team's own check, run against the restored table
name = "ledger-export"
command = ["sh", "checks/ledger_export_smoke.sh"]
timeout = "1m"
"##,
        root = root.display()
    )
}

/// What the demo made and where.
pub(crate) struct DemoFiles {
    pub config: PathBuf,
    pub healthy: String,
    pub damaged: String,
    pub damaged_file: String,
    /// The PostgreSQL part, when server binaries are installed.
    pub pg: Option<postgres::PgDemo>,
}

/// Writes the table (`rows` rows over four commits, then a small fifth commit), three dated
/// snapshots and the config. The middle snapshot has one data file cut to half its size.
pub(crate) async fn prepare(root: &Path, rows: usize) -> anyhow::Result<DemoFiles> {
    let lake = root.join("lake/financial_transactions");
    let backups = root.join("backups/daily");
    std::fs::create_dir_all(&backups).with_context(|| backups.display().to_string())?;
    std::fs::create_dir_all(root.join("sandbox"))?;
    std::fs::create_dir_all(root.join("checks"))?;
    let today = Utc::now();
    let now_micros = today.timestamp_micros();
    let per_commit = (rows / 4).max(1);
    let mut names = Vec::new();
    for commit in 0..4 {
        let first = (commit * per_commit) as i64 + 1;
        // Two files per commit, as a writer with two tasks would leave them.
        let half = per_commit / 2;
        let batches = vec![
            data::transactions(first, half, now_micros),
            data::transactions(first + half as i64, per_commit - half, now_micros),
        ];
        data::append(&lake, batches)
            .await
            .with_context(|| format!("writing the demo table in {}", lake.display()))?;
        if commit >= 1 {
            let day = today - Duration::days(3 - commit as i64);
            let name = format!("financial_transactions_{}", day.format("%Y-%m-%d"));
            data::copy_folder(&lake, &backups.join(&name))?;
            names.push(name);
        }
    }
    data::append(
        &lake,
        vec![data::transactions(
            (4 * per_commit) as i64 + 1,
            1_000,
            now_micros,
        )],
    )
    .await?;

    // Damage the middle snapshot: one data file cut in half, as an interrupted copy leaves it.
    let damaged = names[1].clone();
    let damaged_dir = backups.join(&damaged);
    let victim = largest_parquet(&damaged_dir)?;
    let size = std::fs::metadata(&victim)?.len();
    let file = std::fs::OpenOptions::new().write(true).open(&victim)?;
    file.set_len(size / 2)?;
    let damaged_file = victim
        .strip_prefix(&damaged_dir)
        .unwrap_or(&victim)
        .display()
        .to_string();

    std::fs::write(root.join("checks/financial_transactions.toml"), SUITE)?;
    std::fs::write(root.join("checks/ledger_export_smoke.sh"), SMOKE)?;
    let pg = postgres::prepare(root, rows).await?;
    let config = root.join("config.toml");
    let mut text = config_text(root);
    if let Some(pg) = &pg {
        text.push_str(&postgres::job_text(root, pg));
    }
    std::fs::write(&config, text)?;
    Ok(DemoFiles {
        config,
        healthy: names[2].clone(),
        damaged,
        damaged_file,
        pg,
    })
}

fn largest_parquet(dir: &Path) -> std::io::Result<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let size = std::fs::metadata(&path)?.len();
            if best.as_ref().is_none_or(|(s, _)| size > *s) {
                best = Some((size, path));
            }
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| std::io::Error::other(format!("no data file in {}", dir.display())))
}

/// Runs the whole demo and prints what happened; returns the two reports.
pub async fn run(
    root: &Path,
    rows: usize,
    progress: &dyn Progress,
) -> anyhow::Result<(DrillReport, DrillReport)> {
    println!("Writing the demo into {} ...", root.display());
    let files = prepare(root, rows).await?;
    let config = crate::config::load(&files.config)?;
    let job = config
        .job("financial_transactions")
        .map_err(anyhow::Error::msg)?;
    let metrics = DrillMetrics::new();
    // Recorded as `run` records them: `history` and `runbook` show the demo's drills.
    let history = std::sync::Arc::new(History::new(&config.history));

    println!(
        "\n== Drill 1: the newest snapshot ({}), healthy\n",
        files.healthy
    );
    let healthy = drill::run_drill(job, &DrillOptions::default(), &SystemClock, progress).await;
    metrics.observe(&healthy);
    history.record(job, &healthy, &SystemClock).await?;
    print!("{}", drill::summary::render(&healthy));

    println!(
        "\n== Drill 2: an older snapshot ({}), whose data file {} was cut in half\n",
        files.damaged, files.damaged_file
    );
    let options = DrillOptions {
        snapshot: Some(files.damaged.clone()),
        ..Default::default()
    };
    let damaged = drill::run_drill(job, &options, &SystemClock, progress).await;
    metrics.observe(&damaged);
    history.record(job, &damaged, &SystemClock).await?;
    print!("{}", drill::summary::render(&damaged));

    println!(
        "\n== Who checks the checks: a self-test of the job — copies of what drill 1 restored, damaged eleven ways, each drilled\n"
    );
    let selftest = crate::selftest::run(job, 1, &SystemClock).await;
    print!("{}", crate::selftest::render(&selftest));
    selftest.show(&metrics);
    history
        .record_report(
            job,
            &selftest.run_id,
            serde_json::to_value(&selftest)?,
            &SystemClock,
        )
        .await?;

    let mut pg_outcomes = None;
    if let Some(pg) = &files.pg {
        let job = config.job("app_db").map_err(anyhow::Error::msg)?;
        println!(
            "\n== Drill 3: the newest dump of a PostgreSQL database ({}), restored into a throwaway server\n",
            pg.healthy
        );
        let healthy = drill::run_drill(job, &DrillOptions::default(), &SystemClock, progress).await;
        metrics.observe(&healthy);
        history.record(job, &healthy, &SystemClock).await?;
        print!("{}", drill::summary::render(&healthy));
        println!(
            "\n== Drill 4: an older dump ({}), cut in half as an interrupted upload leaves it\n",
            pg.damaged
        );
        let options = DrillOptions {
            snapshot: Some(pg.damaged.clone()),
            ..Default::default()
        };
        let damaged = drill::run_drill(job, &options, &SystemClock, progress).await;
        metrics.observe(&damaged);
        history.record(job, &damaged, &SystemClock).await?;
        print!("{}", drill::summary::render(&damaged));
        pg_outcomes = Some((healthy.outcome, damaged.outcome));
    } else {
        println!(
            "\n(No PostgreSQL server binaries in /usr/lib/postgresql/N/bin: the PostgreSQL drills are left out.)"
        );
    }

    println!("\n== The Prometheus metrics these drills export\n");
    print!("{}", metrics.render());

    println!("\n== Where everything is\n");
    println!(
        "  {}/lake/financial_transactions   the source table",
        root.display()
    );
    println!(
        "  {}/backups/daily                 three dated snapshots",
        root.display()
    );
    println!("  {}/config.toml                   the job", root.display());
    println!(
        "  {}/journal/                      the record of every drill (these, and `run` and `serve`)",
        root.display()
    );
    println!(
        "  {}/checks/                       the suite",
        root.display()
    );
    println!(
        "  {}/sandbox/                      restores (the failed drill's is kept)",
        root.display()
    );
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "restore-drill".into());
    println!(
        "\nTry:  {exe} run --config {} financial_transactions",
        files.config.display()
    );
    println!(
        "      {exe} snapshots --config {} financial_transactions",
        files.config.display()
    );
    println!(
        "      {exe} serve --config {}      (then http://127.0.0.1:9841/jobs and /metrics)",
        files.config.display()
    );
    println!("      {exe} history --config {}", files.config.display());
    println!(
        "      {exe} runbook --config {} financial_transactions      (the recovery runbook, from the drills above)",
        files.config.display()
    );
    println!(
        "      {exe} restore --config {} financial_transactions --to {}/restored --reason 'trying it'      (a restore for real, of the verified snapshot)",
        files.config.display(),
        root.display()
    );
    println!(
        "      {exe} selftest --config {} financial_transactions      (the self-test again, with another seed)",
        files.config.display()
    );
    if let Some(mut pg) = files.pg {
        println!(
            "\n  The app_db job's source ran only during the demo: its server in {}/postgres-source was stopped, so drilling app_db again needs it started (pg_ctl -D {}/postgres-source/postgres/data start).",
            root.display(),
            root.display()
        );
        if let Err(e) = pg.server.stop().await {
            tracing::warn!(error = %e, "could not stop the demo's PostgreSQL");
        }
    }
    let mut expected = vec![(healthy.outcome, damaged.outcome)];
    expected.extend(pg_outcomes);
    for (good, bad) in expected {
        if good != Outcome::Passed || bad != Outcome::Failed {
            anyhow::bail!(
                "the demo did not go as expected: a healthy drill ended {} and a damaged one {}",
                good.as_str(),
                bad.as_str()
            );
        }
    }
    Ok((healthy, damaged))
}
