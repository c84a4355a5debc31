//! restore-drill beside polars and DuckDB on one Delta table: the same checks in each engine,
//! restore-drill's restored-side verification (the checks and the fingerprint in one scan), and
//! a whole `run` of a `delta_copy` snapshot on local disk (restore, verify, compare with the
//! source). Medians of RUNS, each measurement in a fresh process with its peak memory.
//!
//! `cargo bench --bench side_by_side -- [ROWS] [RUNS]` (defaults: 10000000 rows, 5 runs).
//! The table: ROWS rows in ten commits, then an eleventh that removes one commit's file (it
//! stays on disk, as until a VACUUM); columns `id` (a scrambled int64 key, unique), `amount`
//! (float64, a few values out of range), `region` and `channel` (a few strings, some nulls) and
//! `ts` (timestamp). polars and DuckDB (`pip install polars duckdb`) read the log's live files
//! (`benches/other_engines.py`); set `RESTORE_DRILL_BENCH_DIR` to keep the table.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use restore_drill::clock::SystemClock;
use restore_drill::demo::data;
use restore_drill::drill::{self, DrillOptions, NoProgress, Outcome};
use restore_drill::storage::directory_url;
use restore_drill::verify::{compile, scan, suite};

const SUITE: &str = r#"
[[check]]
id = "rows"
kind = "row_count"
min = 1
equals_source = true

[[check]]
id = "amount-total"
kind = "sum"
column = "amount"
equals_source = true

[[check]]
id = "present"
kind = "not_null"
columns = ["id", "amount", "ts"]

[[check]]
id = "id-unique"
kind = "unique"
columns = ["id"]

[[check]]
id = "region-known"
kind = "in_set"
column = "region"
values = ["north", "south", "east", "west", "central"]

[[check]]
id = "amount-range"
kind = "in_range"
column = "amount"
min = 0
max = 1000000
severity = "warn"

[[check]]
id = "recent"
kind = "freshness"
column = "ts"
max_age = "36500d"
"#;

const COMMITS: usize = 10;
/// Rows per batch handed to the writer.
const BATCH: usize = 1 << 20;
const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];
const CHANNELS: [&str; 3] = ["web", "store", "phone"];

fn main() {
    let args = support::args();
    if let Some((name, path)) = support::stage_asked(&args) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(stage(name, path));
        return;
    }
    let (rows, runs) = support::rows_and_runs(&args, 10_000_000, 5);
    let dir = tempfile::tempdir().unwrap();
    let root = match std::env::var_os("RESTORE_DRILL_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => dir.path().to_path_buf(),
    };
    let _ = std::fs::remove_dir_all(root.join("lake"));
    let _ = std::fs::remove_dir_all(root.join("backups"));
    let _ = std::fs::remove_dir_all(root.join("sandbox"));
    let table = root.join("lake/events");
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(write_table(&table, rows));
    data::copy_folder(&table, &root.join("backups/daily/events_2026-12-01")).unwrap();
    std::fs::create_dir_all(root.join("sandbox")).unwrap();
    std::fs::write(root.join("suite.toml"), SUITE).unwrap();
    std::fs::write(
        root.join("config.toml"),
        format!(
            r#"[[job]]
name = "events"
source = "{root}/lake/events"
snapshots = {{ kind = "delta_copy", location = "{root}/backups/daily", pattern = "events_{{date}}" }}
sandbox = "{root}/sandbox"
suite = "suite.toml"
objectives = {{ rpo = "3650d", rto = "1h" }}
"#,
            root = root.display()
        ),
    )
    .unwrap();
    let live = runtime.block_on(live_files(&table));
    std::fs::write(root.join("live_files.txt"), live.join("\n")).unwrap();
    println!(
        "table: {rows} rows, {COMMITS} commits and one removing a file, {} MiB of live files, written in {:.1}s; {runs} runs per stage",
        live.iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum::<u64>()
            / (1 << 20),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<36} {:>10} {:>16}",
        "stage", "median s", "median peak MiB"
    );
    let exe = std::env::current_exe().unwrap();
    let engines = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/other_engines.py");
    let mut results = Vec::new();
    for (name, mut command) in [
        ("polars: the checks", python(&engines, "polars", &root)),
        ("duckdb: the checks", python(&engines, "duckdb", &root)),
        (
            "restore-drill: restored-side verification",
            own(&exe, "verify", &table),
        ),
        (
            "restore-drill: whole run (delta_copy)",
            own(&exe, "run", &root),
        ),
    ] {
        let (seconds, peak) = support::measure(&mut command, runs);
        println!("{name:<36} {seconds:>10.3} {peak:>16.0}");
        results.push((seconds, peak));
    }
    let (polars, duckdb) = (results[0], results[1]);
    println!(
        "verification {:.2}x polars' time; whole run {:.2}x polars' time; peak memory {:.2}x DuckDB's (verification), {:.2}x (run)",
        results[2].0 / polars.0,
        results[3].0 / polars.0,
        results[2].1 / duckdb.1,
        results[3].1 / duckdb.1
    );
}

fn python(script: &Path, engine: &str, root: &Path) -> Command {
    let mut command = Command::new("python3");
    command.args([
        script.to_str().unwrap(),
        "--run",
        engine,
        root.join("live_files.txt").to_str().unwrap(),
    ]);
    command
}

fn own(exe: &Path, stage: &str, path: &Path) -> Command {
    let mut command = Command::new(exe);
    command.args(["--stage", stage, path.to_str().unwrap()]);
    command
}

/// A small, fast pseudo-random generator (SplitMix64).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Rows `first..first + rows` of the table.
fn batch(first: u64, rows: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]));
    let n = first..first + rows as u64;
    // Odd multiplier: a bijection of u64, so the keys are unique and look random.
    let ids = Int64Array::from_iter_values(
        n.clone()
            .map(|i| i.wrapping_mul(0x5851_F42D_4C95_7F2D) as i64),
    );
    let amounts = Float64Array::from_iter_values(n.clone().map(|i| {
        if i % 1_000_003 == 7 {
            5e7 // out of range, a few per ten million
        } else {
            (mix(i) % 10_000_000) as f64 / 100.0
        }
    }));
    let pick = |i: u64, salt: u64, values: &[&'static str], nulls: u64| {
        let r = mix(i ^ salt);
        (r % 100 >= nulls).then(|| values[(r >> 8) as usize % values.len()])
    };
    let regions: StringArray = n.clone().map(|i| pick(i, 1, &REGIONS, 1)).collect();
    let channels: StringArray = n.clone().map(|i| pick(i, 2, &CHANNELS, 2)).collect();
    let ts = TimestampMicrosecondArray::from_iter_values(
        n.map(|i| 1_780_000_000_000_000 + (i as i64) * 1_000),
    )
    .with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(amounts),
        Arc::new(regions),
        Arc::new(channels),
        Arc::new(ts),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

async fn write_table(table: &Path, rows: usize) {
    let per_commit = rows / COMMITS;
    for commit in 0..COMMITS {
        let first = (commit * per_commit) as u64;
        let batches: Vec<RecordBatch> = (0..per_commit)
            .step_by(BATCH)
            .map(|at| batch(first + at as u64, BATCH.min(per_commit - at)))
            .collect();
        data::append(table, batches).await.unwrap();
    }
    // An eleventh commit removes the file(s) the fourth added, as a DELETE of those rows would.
    let log = table.join("_delta_log");
    let fourth = std::fs::read_to_string(log.join(format!("{:020}.json", 3))).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut actions = vec![
        serde_json::json!({"commitInfo": {"timestamp": now, "operation": "DELETE"}}).to_string(),
    ];
    for line in fourth.lines() {
        let action: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(add) = action.get("add") {
            actions.push(
                serde_json::json!({"remove": {
                    "path": add["path"], "deletionTimestamp": now, "dataChange": true,
                    "extendedFileMetadata": true, "partitionValues": {}, "size": add["size"],
                }})
                .to_string(),
            );
        }
    }
    std::fs::write(
        log.join(format!("{COMMITS:020}.json")),
        actions.join("\n") + "\n",
    )
    .unwrap();
}

/// The absolute paths of the files the log holds live.
async fn live_files(table: &Path) -> Vec<String> {
    let opened = restore_drill::kinds::delta::table::open(&directory_url(table), None)
        .await
        .unwrap();
    let info = restore_drill::kinds::delta::table::describe(&opened)
        .await
        .unwrap();
    info.files
        .iter()
        .map(|f| table.join(&f.path).display().to_string())
        .collect()
}

/// One measurement: prints `seconds peak_kib`.
async fn stage(name: &str, path: &Path) {
    let started = Instant::now();
    match name {
        "verify" => {
            // What a drill runs on the restored table: every check and the fingerprint, one scan.
            let suite = suite::parse_suite(Path::new("suite.toml"), SUITE).unwrap();
            let (info, session, context) = support::open_for_verification(path, &suite).await;
            let plan = compile::plan_restored(&suite, &info.columns, &context);
            scan::run(&plan, &session).await.unwrap();
        }
        "run" => {
            let config = restore_drill::config::load(&path.join("config.toml")).unwrap();
            let job = config.job("events").unwrap();
            let report =
                drill::run_drill(job, &DrillOptions::default(), &SystemClock, &NoProgress).await;
            assert_eq!(
                report.outcome,
                Outcome::Passed,
                "{}",
                serde_json::to_string_pretty(&report).unwrap()
            );
        }
        _ => panic!("unknown stage {name}"),
    }
    support::report_to_parent(started.elapsed().as_secs_f64());
}
