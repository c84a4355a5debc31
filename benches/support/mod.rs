//! What the benchmarks share: medians, the process's peak memory, and measurements taken each
//! in a child process of its own (so each peak is its own).

#![allow(dead_code)] // each benchmark uses a part

use std::path::Path;
use std::process::Command;

use restore_drill::kinds::delta::table::{self, TableInfo};
use restore_drill::verify::{compile, scan, suite::Suite};

/// A local Delta table opened as a drill opens the restored one: its description, a session
/// with it registered, and the context the suite compiles against (key ranges from the log).
pub async fn open_for_verification(
    path: &Path,
    suite: &Suite,
) -> (
    TableInfo,
    deltalake::datafusion::prelude::SessionContext,
    compile::Context,
) {
    let url = restore_drill::storage::directory_url(path);
    let opened = table::open(&url, None).await.unwrap();
    let info = table::describe(&opened).await.unwrap();
    let session = scan::session();
    table::register(&session, &opened).await.unwrap();
    let context = compile::Context {
        columns: info.typed_columns(),
        key_ranges: compile::key_columns(suite)
            .into_iter()
            .filter_map(|c| info.integer_range(c).map(|r| (c.to_string(), r)))
            .collect(),
        ..Default::default()
    };
    (info, session, context)
}

/// The benchmark's arguments, without the `--bench` cargo adds.
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}

/// The stage a parent asked this process to measure (`--stage NAME PATH`), if it did.
pub fn stage_asked(args: &[String]) -> Option<(&str, &Path)> {
    match args {
        [flag, name, path, ..] if flag == "--stage" => Some((name, Path::new(path))),
        _ => None,
    }
}

/// The first two arguments as a row count and a number of runs, with defaults.
pub fn rows_and_runs(args: &[String], rows: usize, runs: usize) -> (usize, usize) {
    let number = |i: usize, default| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    (number(0, rows), number(1, runs))
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// This process's peak resident memory in KiB (Linux's `VmHWM`).
pub fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Prints what a child measurement reports to its parent: `seconds peak_kib`.
pub fn report_to_parent(seconds: f64) {
    println!("{seconds} {}", peak_kib());
}

/// Runs `command` `runs` times; each run prints `seconds peak_kib` (see [`report_to_parent`]).
/// Returns the medians: seconds and peak MiB.
pub fn measure(command: &mut Command, runs: usize) -> (f64, f64) {
    let mut seconds = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..runs {
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace();
        seconds.push(fields.next().unwrap().parse::<f64>().unwrap());
        peaks.push(fields.next().unwrap().parse::<f64>().unwrap() / 1024.0);
    }
    (median(seconds), median(peaks))
}
