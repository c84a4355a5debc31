//! Builds a source table, snapshots of it and a config in a temporary folder, and runs drills.

use std::path::{Path, PathBuf};
use std::process::Output;

use restore_drill::clock::SystemClock;
use restore_drill::config;
use restore_drill::demo::data;
use restore_drill::drill::{self, DrillOptions, DrillReport, NoProgress};

pub const JOB: &str = "transactions";

/// The suite most tests use: the four kinds, comparing with the source.
pub const SUITE: &str = r#"
[[check]]
id = "rows"
kind = "row_count"
min = 1
equals_source = true

[[check]]
id = "ids-present"
kind = "not_null"
columns = ["transaction_id", "account_id"]

[[check]]
id = "ids-unique"
kind = "unique"
columns = ["transaction_id"]

[[check]]
id = "amount-total"
kind = "sum"
column = "amount"
equals_source = true
"#;

/// A temporary lake: `lake/transactions` (the source), `backups/daily/` and `sandbox/`.
pub struct Lake {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    next_id: i64,
}

impl Lake {
    /// A source with `commits` commits of `rows` rows each.
    pub async fn new(commits: usize, rows: usize) -> Lake {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("backups/daily")).unwrap();
        let mut lake = Lake {
            _dir: dir,
            root,
            next_id: 1,
        };
        for _ in 0..commits {
            lake.append(rows).await;
        }
        lake
    }

    pub fn source(&self) -> PathBuf {
        self.root.join("lake/transactions")
    }

    pub fn sandbox(&self) -> PathBuf {
        self.root.join("sandbox")
    }

    /// Appends `rows` new transactions to the source as one commit.
    pub async fn append(&mut self, rows: usize) {
        let batch = data::transactions(self.next_id, rows, 1_795_000_000_000_000);
        self.next_id += rows as i64;
        self.append_batch(batch).await;
    }

    pub async fn append_batch(&self, batch: deltalake::arrow::array::RecordBatch) {
        data::append(&self.source(), vec![batch]).await.unwrap();
    }

    /// Copies the source as it is now into `backups/daily/transactions_<date>`.
    pub fn snapshot(&self, date: &str) -> PathBuf {
        let path = self.root.join(format!("backups/daily/transactions_{date}"));
        data::copy_folder(&self.source(), &path).unwrap();
        path
    }

    /// Writes the suite and a config with these objectives; returns the config path.
    pub fn config(&self, suite: &str, rpo: &str) -> PathBuf {
        std::fs::create_dir_all(self.root.join("checks")).unwrap();
        std::fs::write(self.root.join("checks/suite.toml"), suite).unwrap();
        let config = format!(
            r#"[[job]]
name = "{JOB}"
source = "lake/transactions"
snapshots = {{ kind = "delta_copy", location = "backups/daily", pattern = "transactions_{{date}}" }}
sandbox = "sandbox"
suite = "checks/suite.toml"
objectives = {{ rpo = "{rpo}", rto = "1h" }}
"#
        );
        let path = self.root.join("config.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Runs a drill of the job through the library.
    pub async fn drill(&self, config_path: &Path, snapshot: Option<&str>) -> DrillReport {
        let config = config::load(config_path).unwrap();
        let job = config.job(JOB).unwrap();
        let options = DrillOptions {
            snapshot: snapshot.map(String::from),
            ..Default::default()
        };
        drill::run_drill(job, &options, &SystemClock, &NoProgress).await
    }

    /// Fails unless the job's sandbox folder holds no run folder (every drill cleaned up).
    pub fn assert_no_run_left(&self) {
        let contents = self.sandbox_contents();
        assert!(
            contents
                .iter()
                .all(|p| p.parent() != Some(&self.sandbox().join(JOB))),
            "sandbox left behind: {contents:?}"
        );
    }

    /// Every path below the sandbox root.
    pub fn sandbox_contents(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut pending = vec![self.sandbox()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries {
                let p = e.unwrap().path();
                if p.is_dir() {
                    pending.push(p.clone());
                }
                out.push(p);
            }
        }
        out
    }
}

/// A lake whose drill takes long enough to be interrupted (400,000 rows, one file copied at a
/// time), and its config with `top` (top-level tables) before the job. Returns both.
pub async fn slow_drill(top: &str) -> (Lake, PathBuf) {
    let lake = Lake::new(4, 100_000).await;
    lake.snapshot("2026-11-01");
    let config = lake.config(SUITE, "1000d");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{top}\n\n{}",
            text.replace("objectives =", "copy_concurrency = 1\nobjectives =")
        ),
    )
    .unwrap();
    (lake, config)
}

/// A suite of `n` distinct `in_range` checks on `amount`: planning and scanning it takes a
/// while, which tests of timeouts and responsiveness need.
pub fn many_checks(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[check]]\nid = \"r{i}\"\nkind = \"in_range\"\ncolumn = \"amount\"\nmin = -{}\nmax = {}\n\n",
                1_000_000 + i,
                1_000_000 + i
            )
        })
        .collect()
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The data files of a table folder, largest first.
pub fn data_files(table: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    files
}

/// Checkpoints the table at `source` at its newest version and removes its commit files up to
/// `through` (all before the newest when `None`), as log retention does: those versions can no
/// longer be read.
pub async fn clean_up_log(source: &Path, through: Option<u64>) {
    let table = restore_drill::kinds::delta::table::open(
        &restore_drill::storage::directory_url(source),
        None,
    )
    .await
    .unwrap();
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .unwrap();
    let newest = table.version().unwrap();
    for v in 0..=through.unwrap_or(newest.saturating_sub(1)) {
        std::fs::remove_file(source.join(format!("_delta_log/{v:020}.json"))).unwrap();
    }
}

/// Puts `top` (tables such as `[server]` and `[history]`) before the text of a config file.
pub fn prepend(config: &Path, top: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("{top}\n\n{text}")).unwrap();
}

/// Adds `more` (keys of the last job, or `[[job.smoke]]` tables) after the text of a config file.
pub fn append(config: &Path, more: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("{text}\n{more}")).unwrap();
}

/// `selftest --json` of `job` with a fixed seed: the exit code and the report.
pub fn selftest(config: &Path, job: &str, seed: &str) -> (i32, serde_json::Value) {
    let out = cli(&[
        "selftest",
        "--config",
        config.to_str().unwrap(),
        job,
        "--seed",
        seed,
        "--json",
    ]);
    let report = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), report)
}

/// The audit report of today, in Markdown.
pub fn audit_of_today(config: &Path) -> String {
    let today = chrono::Utc::now().date_naive().to_string();
    let out = cli(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--from",
        &today,
        "--to",
        &today,
    ]);
    stdout(&out)
}

/// A `pg_dump` job `app` in `dir` whose live database is not reachable (nothing here connects
/// to it), with a journal and one check of `public.orders`; returns the config's path.
pub fn unreachable_database_job(dir: &Path) -> PathBuf {
    std::fs::create_dir(dir.join("backups")).unwrap();
    std::fs::write(
        dir.join("suite.toml"),
        "[[check]]\nid = \"orders-rows\"\ntable = \"public.orders\"\nkind = \"row_count\"\nmin = 1\n",
    )
    .unwrap();
    let config = dir.join("restore-drill.toml");
    std::fs::write(
        &config,
        r#"[history]
journal = "journal"

[[job]]
name = "app"
source = "postgres://reader@db.internal:5433/app"
source_password_env = "APP_DB_PASSWORD"
snapshots = { kind = "pg_dump", location = "backups", pattern = "app_{date}.dump", owners = "skip" }
sandbox = "sandbox"
suite = "suite.toml"
objectives = { rpo = "26h", rto = "1h" }
"#,
    )
    .unwrap();
    config
}

/// The check `id` of a JSON report.
pub fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

/// Where the binary keeps its journal in tests whose configuration names none.
pub fn state_dir() -> PathBuf {
    std::env::temp_dir().join("restore-drill-tests-state")
}

/// Runs the built binary.
pub fn cli(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_restore-drill"))
        .args(args)
        .env("RUST_LOG", "off")
        .env("RESTORE_DRILL_STATE_DIR", state_dir())
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The messages of the report's findings, one per line, for assertion messages.
pub fn findings(report: &DrillReport) -> String {
    report
        .findings
        .iter()
        .map(|f| format!("{} {}: {}", f.severity.as_str(), f.check, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}
