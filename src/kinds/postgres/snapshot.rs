//! `pg_dump` snapshots: the dump files (or `-Fd` folders) under the backup location whose names
//! match the pattern, each described by its own archive header.

use std::cmp::Reverse;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use tokio::io::AsyncReadExt;

use super::archive::{self, Header};
use crate::kinds::pattern::SnapshotPattern;
use crate::kinds::snapshot::SnapshotError;
use crate::storage::{FileEntry, Location, ReadOnlyDir};

/// How many bytes of a dump are read to find its header (a plain dump's comments included).
const HEADER_BYTES: u64 = 64 * 1024;

/// One dump as found in the backup location.
#[derive(Debug, Clone)]
pub struct Dump {
    /// The file or folder name.
    pub name: String,
    /// When the dump was made: its archive header's time, else the time in its name.
    pub time: DateTime<Utc>,
    /// What the dump says about itself, or why it cannot be read.
    pub header: Result<Header, String>,
    /// Its files, relative to the backup location (one, or a directory dump's files).
    pub files: Vec<FileEntry>,
    /// The backup location the files are relative to.
    pub backup: Location,
}

impl Dump {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The file the restore reads, relative to the run folder it is copied into.
    pub fn restore_path(&self) -> PathBuf {
        PathBuf::from(&self.name)
    }
}

/// Candidates by the time in their names, newest first.
async fn candidates(
    location: &Location,
    pattern: &SnapshotPattern,
) -> Result<Vec<(String, DateTime<Utc>, Vec<FileEntry>)>, SnapshotError> {
    let files = ReadOnlyDir::new(location).list_files().await?;
    // By file or folder name: a directory dump's files gather under its folder.
    let mut matching: std::collections::BTreeMap<String, (DateTime<Utc>, Vec<FileEntry>)> =
        Default::default();
    let mut seen = std::collections::BTreeSet::new();
    for file in files {
        let first = file
            .relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        seen.insert(first.clone());
        let Some(time) = pattern.matches(&first) else {
            continue;
        };
        matching
            .entry(first)
            .or_insert((time, Vec::new()))
            .1
            .push(file);
    }
    if matching.is_empty() {
        return Err(SnapshotError::NoneFound {
            location: location.clone(),
            pattern: pattern.to_string(),
            seen: seen.len(),
        });
    }
    let mut by_name: Vec<(String, DateTime<Utc>, Vec<FileEntry>)> = matching
        .into_iter()
        .map(|(name, (time, files))| (name, time, files))
        .collect();
    by_name.sort_by_key(|(name, time, _)| Reverse((*time, name.clone())));
    Ok(by_name)
}

/// Reads the dump's header. Its time is the dump's own creation time (read in `zone`, the
/// dumping machine's), or without one, the time in its name.
async fn describe(
    location: &Location,
    (name, named_time, files): (String, DateTime<Utc>, Vec<FileEntry>),
    zone: chrono_tz::Tz,
) -> Dump {
    let header = read_header(location, &name, &files).await;
    let created = header
        .as_ref()
        .ok()
        .and_then(|h| h.created)
        .and_then(|t| zone.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc));
    Dump {
        time: created.unwrap_or(named_time),
        name,
        header,
        files,
        backup: location.clone(),
    }
}

async fn read_header(
    location: &Location,
    name: &str,
    files: &[FileEntry],
) -> Result<Header, String> {
    let directory = files.len() > 1 || files.iter().any(|f| f.relative != Path::new(name));
    let wanted: PathBuf = if directory {
        Path::new(name).join("toc.dat")
    } else {
        PathBuf::from(name)
    };
    let Some(file) = files.iter().find(|f| f.relative == wanted) else {
        return Err(format!(
            "the folder {name} has no toc.dat: it is not a directory-format dump"
        ));
    };
    let dir = ReadOnlyDir::new(location);
    let mut start = Vec::new();
    dir.open(file)
        .await
        .map_err(|e| e.to_string())?
        .take(HEADER_BYTES)
        .read_to_end(&mut start)
        .await
        .map_err(|e| format!("cannot read {}: {e}", wanted.display()))?;
    archive::read(&start, directory).map_err(|e| format!("{}: {e}", wanted.display()))
}

/// Every dump under `location` matching `pattern`, newest first.
pub async fn list(
    location: &Location,
    pattern: &SnapshotPattern,
    zone: chrono_tz::Tz,
) -> Result<Vec<Dump>, SnapshotError> {
    let mut out = Vec::new();
    for c in candidates(location, pattern).await? {
        out.push(describe(location, c, zone).await);
    }
    out.sort_by_key(|d| Reverse((d.time, d.name.clone())));
    Ok(out)
}

/// The dump a drill restores: the newest by the time in its name, or the one `pinned` names.
pub async fn choose(
    location: &Location,
    pattern: &SnapshotPattern,
    zone: chrono_tz::Tz,
    pinned: Option<&str>,
) -> Result<Dump, SnapshotError> {
    let mut all = candidates(location, pattern).await?;
    let Some(id) = pinned else {
        return Ok(describe(location, all.swap_remove(0), zone).await);
    };
    let names: Vec<String> = all.iter().map(|(name, ..)| name.clone()).collect();
    match all
        .into_iter()
        .find(|(name, ..)| name == id.trim_end_matches('/'))
    {
        Some(c) => Ok(describe(location, c, zone).await),
        None => Err(SnapshotError::NotFound {
            id: id.to_string(),
            location: location.clone(),
            available: names.join(", "),
        }),
    }
}
