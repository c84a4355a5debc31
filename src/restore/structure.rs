//! Structure verification of a restored table: the log replays to the snapshot's version, every
//! data file the log references exists with the size the log recorded, and every deletion vector
//! it references is whole (present, of the recorded size, its checksum holding, removing as many
//! rows as the log says).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::storage::RunSandbox;
use crate::table::{self, TableInfo, VectorPlace};

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
    /// Deletion vectors checked, and those that are missing or damaged (by vector file, or by
    /// data file for inline ones), each with what is wrong.
    pub deletion_vectors_checked: usize,
    pub damaged_deletion_vectors: Vec<String>,
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
        deletion_vectors_checked: 0,
        damaged_deletion_vectors: vec![],
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
    check_deletion_vectors(sandbox, &info, &present, &mut report).await;
    report.table = Some(info);
    report
}

/// Checks every deletion vector the log references; each vector file is read once.
async fn check_deletion_vectors(
    sandbox: &RunSandbox,
    info: &TableInfo,
    present: &HashMap<PathBuf, u64>,
    report: &mut StructureReport,
) {
    let mut damaged = Vec::new();
    let mut files: HashMap<&str, Result<bytes::Bytes, String>> = HashMap::new();
    for (data_file, vector) in info.deletion_vectors() {
        report.deletion_vectors_checked += 1;
        let vector = match vector {
            Ok(v) => v,
            Err(e) => {
                damaged.push(format!("the vector of {data_file} ({e})"));
                continue;
            }
        };
        let (name, checked) = match &vector.place {
            VectorPlace::Inline(_) => (
                format!("the inline vector of {data_file}"),
                vector.check_inline(),
            ),
            VectorPlace::Absolute(path) => (
                path.clone(),
                Err("it is stored at an absolute path outside the table's folder, which a copy of the table does not hold".into()),
            ),
            VectorPlace::File(path) => {
                let bytes = match present.get(Path::new(path)) {
                    None => Err("it is missing".to_string()),
                    Some(&size) if size < vector.end() => Err(format!(
                        "it is cut short: {size} bytes, the vector of {data_file} ends at byte {}",
                        vector.end()
                    )),
                    Some(_) => match files.get(path.as_str()) {
                        Some(read) => read.clone(),
                        None => {
                            let read = sandbox
                                .read(Path::new(path))
                                .await
                                .map_err(|e| format!("it cannot be read ({e})"));
                            files.insert(path, read.clone());
                            read
                        }
                    },
                };
                (
                    path.clone(),
                    bytes.and_then(|bytes| vector.check_in_file(&bytes)),
                )
            }
        };
        if let Err(reason) = checked {
            damaged.push(format!("{name} ({reason})"));
        }
    }
    damaged.sort();
    damaged.dedup();
    if !damaged.is_empty() {
        report.problems.push(format!(
            "{} deletion vector(s) referenced by the log are missing or damaged: {}",
            damaged.len(),
            name_some(damaged.iter().map(String::as_str))
        ));
    }
    report.damaged_deletion_vectors = damaged;
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
