//! Which files of a restored copy hold the source's rows by their bytes alone: a data file
//! recorded alike in both logs at the snapshot's version (path, size, partition values,
//! deletion vector) whose bytes — and its deletion vector file's — are identical to the
//! source's holds the same rows, so the source's copy of it need not be decoded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use deltalake::DeltaTable;
use deltalake::datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::table::{LogFile, TableInfo, widened};
use crate::kinds::equality::{Equality, EqualityGroup, Unproven};
use crate::storage::same_bytes::{self, Proof, Sameness};
use crate::storage::{Backend, FileEntry, ReadOnlyDir};
use crate::verify::{plan::TABLE, scan};

/// How many pairs of files are compared at a time.
const CONCURRENCY: usize = 4;

/// How many file names a reason names at most.
const NAMED: usize = 3;

/// One side of the comparison: a loaded table, its description and its folder.
pub(crate) struct Side<'a> {
    pub table: &'a DeltaTable,
    pub info: &'a TableInfo,
    pub dir: &'a ReadOnlyDir,
}

/// Compares the restored copy's files with the source's at the same version. `None` when the
/// two logs do not describe the same table state (other metadata or protocol), or the table
/// cannot be read in parts: then the whole source is decoded, as for any other snapshot.
pub(crate) async fn prove(restored: Side<'_>, source: Side<'_>) -> Option<Equality> {
    if restored.info.version != source.info.version
        || !same_state(restored.table, source.table)
        || widened::declared(&source.info.reader_features)
        || source.info.files.iter().any(|f| f.path.contains("://"))
    {
        return None;
    }
    let restored_etags = etags(restored.dir).await;
    let source_etags = etags(source.dir).await;
    let by_path: HashMap<&str, &LogFile> = source
        .info
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let mut unproven: Vec<(&LogFile, String)> = Vec::new();
    let mut candidates = Vec::new();
    for file in &restored.info.files {
        match by_path.get(file.path.as_str()) {
            Some(theirs) if recorded_alike(file, theirs) => candidates.push(file),
            Some(_) => unproven.push((file, "recorded differently in the logs".into())),
            None => unproven.push((file, "not in the source's log".into())),
        }
    }
    let judging: Vec<_> = candidates
        .into_iter()
        .map(|file| {
            judge(
                file,
                (restored.dir, &restored_etags),
                (source.dir, &source_etags),
            )
        })
        .collect();
    let judged: Vec<(&LogFile, Result<Proof, String>)> = futures::stream::iter(judging)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut proven: BTreeMap<Proof, (usize, u64)> = BTreeMap::new();
    let mut proven_paths = std::collections::HashSet::new();
    for (file, outcome) in judged {
        match outcome {
            Ok(proof) => {
                let group = proven.entry(proof).or_default();
                group.0 += 1;
                group.1 += file.size;
                proven_paths.insert(file.path.as_str());
            }
            Err(why) => unproven.push((file, why)),
        }
    }
    let proven_groups: Vec<EqualityGroup> = proven
        .into_iter()
        .map(|(proof, (files, bytes))| EqualityGroup {
            established_by: proof.as_str().into(),
            files,
            bytes,
            why: None,
        })
        .collect();
    let source_rest: Vec<&LogFile> = source
        .info
        .files
        .iter()
        .filter(|f| !proven_paths.contains(f.path.as_str()))
        .collect();
    if unproven.is_empty() && source_rest.is_empty() {
        return Some(Equality {
            proven: proven_groups,
            unproven: None,
        });
    }
    unproven.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let mut reasons: Vec<String> = unproven
        .iter()
        .take(NAMED)
        .map(|(f, why)| {
            if why.starts_with(&f.path) {
                why.clone()
            } else {
                format!("{}: {why}", f.path)
            }
        })
        .collect();
    if unproven.len() > NAMED {
        reasons.push(format!("and {} more", unproven.len() - NAMED));
    }
    if unproven.is_empty() {
        reasons.push(format!(
            "{} file(s) of the source's log are not in the restored copy's",
            source_rest.len()
        ));
    }
    let restored_rest: Vec<&str> = unproven.iter().map(|(f, _)| f.path.as_str()).collect();
    let source_paths: Vec<&str> = source_rest.iter().map(|f| f.path.as_str()).collect();
    let parts = if proven_paths.is_empty() {
        None
    } else {
        match (
            part(restored.table, &restored_rest).await,
            part(source.table, &source_paths).await,
        ) {
            (Ok(ours), Ok(theirs)) => Some((ours, theirs)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!("the table cannot be scanned in parts: {e}");
                None
            }
        }
    };
    Some(Equality {
        proven: proven_groups,
        unproven: Some(Unproven {
            group: EqualityGroup::decoded(
                source_rest.len(),
                source_rest.iter().map(|f| f.size).sum(),
                reasons.join("; "),
            ),
            parts,
        }),
    })
}

/// A folder and the ETags of its objects.
type Listed<'a> = (&'a ReadOnlyDir, &'a HashMap<PathBuf, String>);

/// Whether a file recorded alike in both logs holds the same bytes on both sides, and its
/// deletion vector file too; the weaker proof of the two, or what differs.
async fn judge<'f>(
    file: &'f LogFile,
    restored: Listed<'_>,
    source: Listed<'_>,
) -> (&'f LogFile, Result<Proof, String>) {
    let entry = |path: &str, size: u64, tags: &HashMap<PathBuf, String>| FileEntry {
        relative: path.into(),
        size,
        etag: tags.get(Path::new(path)).cloned(),
        version_id: None,
    };
    // A vector file's size is not in the log: both are read to their ends.
    let mut pairs = vec![(file.path.clone(), file.size)];
    if let Some(Ok(dv)) = &file.deletion_vector
        && let Some(vector) = dv.file()
    {
        pairs.push((vector.to_string(), 0));
    }
    let mut proof = Proof::EqualETags;
    for (path, size) in pairs {
        let ours = entry(&path, size, restored.1);
        let theirs = entry(&path, size, source.1);
        match same_bytes::compare((restored.0, &ours), (source.0, &theirs)).await {
            Sameness::Identical(how) => proof = proof.min(how),
            Sameness::Different(how) | Sameness::Unknown(how) => {
                return (file, Err(format!("{path}: {how}")));
            }
        }
    }
    (file, Ok(proof))
}

/// Whether both logs describe the same table: the same metadata (schema, partition columns,
/// configuration such as column mapping) and protocol.
fn same_state(a: &DeltaTable, b: &DeltaTable) -> bool {
    let state = |t: &DeltaTable| {
        t.snapshot().ok().map(|s| {
            (
                serde_json::to_value(s.metadata()).ok(),
                serde_json::to_value(s.protocol()).ok(),
            )
        })
    };
    matches!((state(a), state(b)), (Some(x), Some(y)) if x == y && x.0.is_some() && x.1.is_some())
}

/// Whether two logs record a file alike: size, partition values and deletion vector.
fn recorded_alike(a: &LogFile, b: &LogFile) -> bool {
    a.size == b.size
        && a.partition_values == b.partition_values
        && a.deletion_vector == b.deletion_vector
}

/// The objects' ETags by relative path, when the folder is on S3 (none on local disk).
async fn etags(dir: &ReadOnlyDir) -> HashMap<PathBuf, String> {
    if !matches!(dir.location().backend(), Backend::S3(_)) {
        return HashMap::new();
    }
    match dir.list_files().await {
        Ok(files) => files
            .into_iter()
            .filter_map(|f| Some((f.relative, f.etag?)))
            .collect(),
        Err(e) => {
            tracing::debug!("no ETags listed for {}: {e}", dir.location());
            HashMap::new()
        }
    }
}

/// A session with only `paths` (relative, decoded) of `table` registered as the table. The
/// selection is resolved against the log: a path it does not hold is an error, never a
/// smaller scan.
async fn part(table: &DeltaTable, paths: &[&str]) -> Result<SessionContext, String> {
    let ctx = scan::session();
    // A selected path is joined to the table's URL: a literal `%` must be encoded as the log's
    // own paths are.
    let selected: Vec<String> = paths.iter().map(|p| p.replace('%', "%25")).collect();
    let provider = table
        .table_provider()
        .with_file_paths(selected)
        .await
        .map_err(|e| e.to_string())?;
    ctx.register_table(TABLE, provider)
        .map_err(|e| e.to_string())?;
    Ok(ctx)
}
