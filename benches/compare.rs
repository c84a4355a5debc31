//! Cost of the verification scans on a local Delta table: a bare scan of every column, the
//! suite's checks, the checks with the fingerprint, the fingerprint alone, and a drill's whole
//! restored-side scan with `compare` (checks, fingerprint and keyed sample in one scan, then
//! the in-memory sample join).
//!
//! `cargo bench --bench compare -- [ROWS] [RUNS] [EXPR...]` (defaults: 1000000 rows, 5 runs;
//! each EXPR, an aggregate expression over `t`, is timed as a stage of its own). Each
//! measurement runs in a child process so its peak memory is its own; the table is written
//! once by the demo's data generator, in four commits. Prints the median wall time and the
//! median peak resident memory of each stage.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use std::sync::Arc;

use deltalake::datafusion::datasource::MemTable;
use restore_drill::demo::data;
use restore_drill::verify::sample::{self, CompareSpec, DiffMode, Fallback, SampleSize};
use restore_drill::verify::{compile, fingerprint, plan, scan, suite};

const STAGES: [&str; 5] = [
    "bare_scan",
    "checks",
    "checks_and_fingerprint",
    "fingerprint",
    "drill_restored_scan",
];

fn main() {
    let args = support::args();
    if let Some((name, path)) = support::stage_asked(&args) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(stage(name, path));
        return;
    }
    let (rows, runs) = support::rows_and_runs(&args, 1_000_000, 5);
    // Further arguments are single aggregate expressions to time as stages of their own.
    let extra: Vec<String> = args.iter().skip(2).map(|e| format!("sql:{e}")).collect();
    let stages: Vec<&str> = STAGES
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    // RESTORE_DRILL_BENCH_DIR keeps the table there, e.g. for benches/other_engines.py.
    let table = match std::env::var_os("RESTORE_DRILL_BENCH_DIR") {
        Some(d) => PathBuf::from(d).join("transactions"),
        None => dir.path().join("transactions"),
    };
    let _ = std::fs::remove_dir_all(&table);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let per_commit = rows / 4;
        for commit in 0..4 {
            let batch = data::transactions(
                (commit * per_commit) as i64 + 1,
                per_commit,
                1_795_000_000_000_000,
            );
            data::append(&table, vec![batch]).await.unwrap();
        }
    });
    println!(
        "table: {rows} rows, 4 commits, {} MiB, written in {:.1}s; {runs} runs per stage",
        folder_bytes(&table) / (1 << 20),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<24} {:>10} {:>14}",
        "stage", "median s", "median peak MiB"
    );
    let exe = std::env::current_exe().unwrap();
    for stage in stages {
        let mut command = Command::new(&exe);
        command.args(["--stage", stage, table.to_str().unwrap()]);
        let (seconds, peak) = support::measure(&mut command, runs);
        println!("{stage:<24} {seconds:>10.3} {peak:>14.0}");
    }
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// One measurement: prints `seconds peak_kib`.
async fn stage(name: &str, table_dir: &Path) {
    let suite = suite::parse_suite(
        Path::new("checks/financial_transactions.toml"),
        restore_drill::demo::SUITE,
    )
    .unwrap();
    let started = Instant::now();
    let (info, session, context) = support::open_for_verification(table_dir, &suite).await;
    let columns = info.columns.clone();
    match name {
        _ if name.starts_with("sql:") => {
            // A single expression, for finding what a stage spends its time on.
            let mut plan = plan::AggregatePlan::default();
            plan.add(name["sql:".len()..].to_string());
            scan::run(&plan, &session).await.unwrap();
        }
        "drill_restored_scan" => {
            // What a drill with `compare` runs on the restored side: the checks, the
            // fingerprint and the 0.1% keyed sample in one scan; then the in-memory join of
            // the sample with the source's (here: the same table's).
            let spec = CompareSpec {
                key: vec!["transaction_id".into()],
                sample: SampleSize::Fraction(0.001),
                fallback: Fallback::None,
                tolerance: Default::default(),
                table: None,
                as_of: None,
            };
            let mut plan = compile::plan_restored(&suite, &columns, &context);
            let collector = sample::SampleCollector::new(&columns, &spec.key, 0.001);
            plan.add(collector.expr.clone());
            let values = scan::run(&plan, &session).await.unwrap();
            let rows = collector.rows(&values).unwrap();
            let compared: Vec<String> = columns
                .iter()
                .filter(|c| *c != "transaction_id")
                .cloned()
                .collect();
            let q = sample::queries(&spec, &compared, 0.001, DiffMode::Exact, "t", "src");
            let ctx = scan::session();
            for name in ["t", "src"] {
                let mem = MemTable::try_new(rows.schema(), vec![vec![rows.clone()]]).unwrap();
                ctx.register_table(name, Arc::new(mem)).unwrap();
            }
            let diff = sample::run(&ctx, &spec, &compared, 0.001, DiffMode::Exact, &[], &q)
                .await
                .unwrap();
            assert_eq!(diff.mismatched(), 0);
            assert!(diff.restored_rows > 0);
        }
        _ => {
            let mut plan = match name {
                "checks" => compile::plan_checks(&suite, &context),
                "checks_and_fingerprint" => compile::plan_restored(&suite, &columns, &context),
                _ => plan::AggregatePlan::default(),
            };
            match name {
                "bare_scan" => {
                    for c in &columns {
                        plan.add(format!("count({})", plan::ident(c)));
                    }
                }
                "fingerprint" => {
                    plan.add(fingerprint::expr(&columns));
                }
                _ => {}
            }
            scan::run(&plan, &session).await.unwrap();
        }
    }
    support::report_to_parent(started.elapsed().as_secs_f64());
}
