//! Structure verification of a restored table: the log replays to the snapshot's version, and
//! every data file the log references exists with the size the log recorded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::storage::RunSandbox;
use crate::table::{self, TableInfo};

/// How many file names a problem message lists before it summarises the rest.
const NAMED_FILES: usize = 20;

/// What structure verification found.
#[derive(Debug, Clone, Serialize)]
pub struct StructureReport {
    pub log_replays: bool,
    pub version: Option<u64>,
    pub files_checked: usize,
    pub missing_files: Vec<String>,
    pub wrong_size_files: Vec<WrongSize>,
    /// One sentence per problem, for findings.
    pub problems: Vec<String>,
    #[serde(skip)]
    pub table: Option<TableInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WrongSize {
    pub path: String,
    pub expected: u64,
    pub actual: u64,
}

impl StructureReport {
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Replays the restored log and checks every referenced file.
pub async fn verify_structure(
    sandbox: &RunSandbox,
    expected_version: Option<u64>,
) -> StructureReport {
    let mut report = StructureReport {
        log_replays: false,
        version: None,
        files_checked: 0,
        missing_files: vec![],
        wrong_size_files: vec![],
        problems: vec![],
        table: None,
    };
    let info = match table::open_run(sandbox).await {
        Ok(t) => table::describe(&t).await,
        Err(e) => Err(e),
    };
    let info = match info {
        Ok(info) => info,
        Err(e) => {
            report.problems.push(format!(
                "the restored Delta log does not replay: {}",
                table::explain_log_error(&e)
            ));
            return report;
        }
    };
    report.log_replays = true;
    report.version = Some(info.version);
    if let Some(expected) = expected_version
        && expected != info.version
    {
        report.problems.push(format!(
            "the restored log replays to version {} but the snapshot is at version {expected}",
            info.version
        ));
    }
    let present: HashMap<PathBuf, u64> = match sandbox.list_files().await {
        Ok(files) => files.into_iter().map(|f| (f.relative, f.size)).collect(),
        Err(e) => {
            report
                .problems
                .push(format!("the restored files cannot be listed: {e}"));
            return report;
        }
    };
    for file in &info.files {
        report.files_checked += 1;
        match present.get(Path::new(&file.path)) {
            Some(&size) if size == file.size => {}
            Some(&size) => report.wrong_size_files.push(WrongSize {
                path: file.path.clone(),
                expected: file.size,
                actual: size,
            }),
            None => report.missing_files.push(file.path.clone()),
        }
    }
    if !report.missing_files.is_empty() {
        report.problems.push(format!(
            "{} data file(s) referenced by the log are missing: {}",
            report.missing_files.len(),
            name_some(report.missing_files.iter().map(String::as_str))
        ));
    }
    if !report.wrong_size_files.is_empty() {
        let described = report.wrong_size_files.iter().map(|w| {
            format!(
                "{} ({} bytes, the log says {})",
                w.path, w.actual, w.expected
            )
        });
        report.problems.push(format!(
            "{} data file(s) differ in size from the log (truncated or replaced): {}",
            report.wrong_size_files.len(),
            name_some(described)
        ));
    }
    report.table = Some(info);
    report
}

/// Joins up to `NAMED_FILES` names and says how many more there are.
pub fn name_some<S: AsRef<str>>(names: impl Iterator<Item = S>) -> String {
    let mut shown = Vec::new();
    let mut more = 0;
    for name in names {
        if shown.len() < NAMED_FILES {
            shown.push(name.as_ref().to_string());
        } else {
            more += 1;
        }
    }
    let mut out = shown.join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}
