//! Structure verification of a restored table: the log replays to the snapshot's version, every
//! data file the log references exists with the size the log recorded, and every deletion vector
//! it references is whole (present, of the recorded size, its checksum holding, removing as many
//! rows as the log says).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::kinds::delta::table::{self, TableInfo, VectorPlace};
use crate::kinds::structure::{StructureReport, WrongSize, name_some};
use crate::storage::RunSandbox;

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
        warnings: vec![],
        declared_reader_features: vec![],
        expected_version,
        table: None,
        database: None,
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
            report.declared_reader_features = declared_reader_features(sandbox).await;
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
    report.warnings = tolerated_violations(sandbox, &present, info.version).await;
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

/// The actions of one restored commit file that parse as JSON (none if it cannot be read).
async fn commit_actions(sandbox: &RunSandbox, path: &Path) -> Vec<serde_json::Value> {
    let Ok(bytes) = sandbox.read(path).await else {
        return Vec::new();
    };
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}

/// The reader features of the newest `protocol` action in the restored commit files.
async fn declared_reader_features(sandbox: &RunSandbox) -> Vec<String> {
    let Ok(files) = sandbox.list_files().await else {
        return Vec::new();
    };
    let mut commits: Vec<(u64, PathBuf)> = files
        .into_iter()
        .filter_map(|f| commit_version(&f.relative).map(|v| (v, f.relative)))
        .collect();
    commits.sort();
    for (_, path) in commits.iter().rev() {
        for action in commit_actions(sandbox, path).await {
            if let Some(protocol) = action.get("protocol") {
                return protocol["readerFeatures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect();
            }
        }
    }
    Vec::new()
}

/// The version of a commit file (`_delta_log/00000000000000000042.json`).
fn commit_version(path: &Path) -> Option<u64> {
    let name = path.strip_prefix("_delta_log").ok()?.to_str()?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20).then(|| digits.parse().ok())?
}

/// The newest checkpoint's version among the log's files (`NNNN.checkpoint.parquet`, multi-part
/// and v2 checkpoints alike).
fn newest_checkpoint(present: &HashMap<PathBuf, u64>) -> Option<u64> {
    present
        .keys()
        .filter_map(|p| {
            let name = p.strip_prefix("_delta_log").ok()?.to_str()?;
            let (digits, rest) = name.split_once('.')?;
            rest.starts_with("checkpoint.")
                .then(|| digits.parse().ok())?
        })
        .max()
}

/// Reads the commits a replay reads (after the newest checkpoint, up to `version`) and names
/// the protocol violations a reader tolerates: a file added twice in one commit.
async fn tolerated_violations(
    sandbox: &RunSandbox,
    present: &HashMap<PathBuf, u64>,
    version: u64,
) -> Vec<String> {
    let after = newest_checkpoint(present);
    let mut commits: Vec<(u64, &PathBuf)> = present
        .keys()
        .filter_map(|p| commit_version(p).map(|v| (v, p)))
        .filter(|(v, _)| *v <= version && after.is_none_or(|c| *v > c))
        .collect();
    commits.sort();
    let mut warnings = Vec::new();
    for (version, path) in commits {
        let mut added = std::collections::HashSet::new();
        let mut twice = std::collections::BTreeSet::new();
        for action in commit_actions(sandbox, path).await {
            if let Some(file) = action["add"]["path"].as_str()
                && !added.insert(file.to_string())
            {
                twice.insert(file.to_string());
            }
        }
        if !twice.is_empty() {
            warnings.push(format!(
                "commit {version} adds the same file twice ({}): the Delta protocol forbids it, but readers take the file once, so the rows read are not changed",
                name_some(twice.iter())
            ));
        }
    }
    warnings
}
