//! The journal: every drill's record, appended to a local file per job and chained by hashes.
//!
//! `<dir>/<job>.jsonl` holds one line per drill: `{"hash":"<sha256>","record":{…}}`, where the
//! hash is the SHA-256 of the record's exact bytes and each record names the previous record's
//! hash (`prev`) and its sequence number (`seq`). Editing or removing a record breaks the chain
//! at that place, and the check says where. An append takes an exclusive lock on the file,
//! writes the line and `fsync`s before returning: once `append` returns, the drill is
//! recorded. A line torn by a crash (no final newline) was never acknowledged; the next append
//! cuts it off and readers skip it. `<dir>/id` names the journal (PostgreSQL keeps one sequence
//! per journal and job).
//!
//! Retention drops the oldest records of a job and leaves an anchor, `<dir>/<job>.anchor`: the
//! sequence number and hash of the last dropped record. The chain then starts at the anchor:
//! the first kept record must follow it, so records removed after the compaction are still
//! found.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::primitives::hash::sha256_hex;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod retention;

use super::HistoryError;

/// The journal in one folder.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

/// What a record says besides the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub seq: u64,
    /// The hash of the job's previous record; `None` for its first.
    pub prev: Option<String>,
    pub job: String,
    pub run_id: String,
    pub recorded_at: DateTime<Utc>,
    pub tool_version: String,
    /// SHA-256 of the configuration file's text and of the job's suite file's text.
    pub config_sha256: String,
    pub suite_sha256: String,
    /// The drill's JSON report (see the README's report contract).
    pub report: Value,
}

impl Record {
    /// When the recorded drill started; the time of the record when its report does not say.
    pub fn started_at(&self) -> DateTime<Utc> {
        #[derive(serde::Deserialize)]
        struct Started {
            started_at: DateTime<Utc>,
        }
        Started::deserialize(&self.report).map_or(self.recorded_at, |s| s.started_at)
    }
}

/// A record as stored, with its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub hash: String,
    pub record: Record,
}

/// The result of checking one job's chain.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ChainCheck {
    pub job: String,
    pub records: usize,
    /// Empty when the chain is intact; otherwise each place where it breaks, in words.
    pub problems: Vec<String>,
    /// The run ids of the records whose hash or place in the chain does not verify.
    pub unverified: Vec<String>,
}

impl ChainCheck {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where a compacted chain starts: the last record that retention dropped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
    /// Records dropped in all compactions so far.
    pub dropped: u64,
    pub compacted_at: DateTime<Utc>,
}

const PREFIX: &str = "{\"hash\":\"";
const MIDDLE: &str = "\",\"record\":";

impl Journal {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}.jsonl"))
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> HistoryError {
        let path = path.to_path_buf();
        move |source| HistoryError::Journal {
            path: path.clone(),
            source,
        }
    }

    /// The journal's id, created with the journal.
    pub fn id(&self) -> Result<String, HistoryError> {
        let path = self.dir.join("id");
        let io = self.io(&path);
        match std::fs::read_to_string(&path) {
            Ok(id) => Ok(id.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
                let id = format!("{:016x}", rand::random::<u64>());
                let temporary = self.dir.join(format!("id.{}", std::process::id()));
                std::fs::write(&temporary, format!("{id}\n")).map_err(&io)?;
                // Another process may have created it meanwhile: the first one wins.
                match std::fs::hard_link(&temporary, &path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(e)),
                }
                let _ = std::fs::remove_file(&temporary);
                sync_dir(&self.dir).map_err(self.io(&self.dir))?;
                Ok(std::fs::read_to_string(&path)
                    .map_err(io)?
                    .trim()
                    .to_string())
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Appends a record of `job`; fills in `seq` and `prev`. Returns the record as stored.
    pub fn append(&self, mut record: Record) -> Result<Stored, HistoryError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        self.id()?;
        let path = self.file(&record.job);
        let io = self.io(&path);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(&io)?;
        file.lock().map_err(&io)?;
        let last = cut_torn_tail(&mut file).map_err(&io)?;
        match last {
            Some(line) => {
                let (previous, _) = parse_line(&line).map_err(|reason| HistoryError::Corrupt {
                    path: path.clone(),
                    reason: format!(
                        "its last record cannot be read ({reason}); move the damaged line aside to record new drills"
                    ),
                })?;
                record.seq = previous.record.seq + 1;
                record.prev = Some(previous.hash);
            }
            None => {
                record.seq = 1;
                record.prev = None;
            }
        }
        let body = serde_json::to_string(&record).expect("records serialize");
        let hash = sha256_hex(body.as_bytes());
        let line = format!("{PREFIX}{hash}{MIDDLE}{body}}}\n");
        file.seek(SeekFrom::End(0)).map_err(&io)?;
        file.write_all(line.as_bytes()).map_err(&io)?;
        file.sync_data().map_err(&io)?;
        file.unlock().map_err(&io)?;
        if created {
            sync_dir(&self.dir).map_err(self.io(&self.dir))?;
        }
        Ok(Stored { hash, record })
    }

    /// The jobs that have records, by name.
    pub fn jobs(&self) -> Result<Vec<String>, HistoryError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&self.dir)(e)),
        };
        let mut jobs: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".jsonl"))
                    .map(String::from)
            })
            .collect();
        jobs.sort();
        Ok(jobs)
    }

    /// The readable records of `job` from the newest back, read from the end of its file, for
    /// as long as `more` says so (unreadable lines are skipped; the chain is not checked).
    pub(crate) fn newest_first(
        &self,
        job: &str,
        mut more: impl FnMut(&Stored) -> bool,
    ) -> Result<(), HistoryError> {
        let path = self.file(job);
        let io = self.io(&path);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let mut position = file.seek(SeekFrom::End(0)).map_err(&io)?;
        // Bytes after the last newline seen so far (the start of a line read backwards).
        let mut partial: Vec<u8> = Vec::new();
        let mut first = true;
        while position > 0 {
            let start = position.saturating_sub(64 * 1024);
            let mut chunk = vec![0; (position - start) as usize];
            file.seek(SeekFrom::Start(start)).map_err(&io)?;
            file.read_exact(&mut chunk).map_err(&io)?;
            chunk.extend_from_slice(&partial);
            position = start;
            let mut lines: Vec<&[u8]> = chunk.split(|b| *b == b'\n').collect();
            // The first piece may continue in the chunk before; keep it for the next round.
            let head = if position > 0 {
                lines.remove(0).to_vec()
            } else {
                Vec::new()
            };
            if first {
                // A last line without a newline is a torn write: never acknowledged.
                lines.pop();
                first = false;
            }
            for line in lines.iter().rev().filter(|l| !l.is_empty()) {
                let Some((stored, _)) = std::str::from_utf8(line)
                    .ok()
                    .and_then(|l| parse_line(l).ok())
                else {
                    continue;
                };
                if !more(&stored) {
                    return Ok(());
                }
            }
            partial = head;
        }
        Ok(())
    }

    /// Every readable record of `job`, in order, and the check of its chain.
    /// Calls `f` with each complete record of `job` whose line holds one of `needles`, oldest
    /// first; other lines are never parsed (reading a large journal for a few records of one
    /// kind costs a scan of its bytes).
    pub(crate) fn records_containing(
        &self,
        job: &str,
        needles: &[&str],
        mut f: impl FnMut(&Stored),
    ) -> Result<(), HistoryError> {
        let path = self.file(job);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io(&path)(e)),
        };
        let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        // The piece after the last newline is empty, or a torn write never acknowledged.
        lines.pop();
        for line in lines {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            if needles.iter().any(|n| line.contains(n))
                && let Ok((stored, _)) = parse_line(line)
            {
                f(&stored);
            }
        }
        Ok(())
    }

    /// The size and modification time of a job's journal file, to tell whether it changed;
    /// `None` when it does not exist.
    pub(crate) fn stamp(&self, job: &str) -> Option<(u64, std::time::SystemTime)> {
        let meta = std::fs::metadata(self.file(job)).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    }

    pub fn read(&self, job: &str) -> Result<(Vec<Stored>, ChainCheck), HistoryError> {
        let path = self.file(job);
        // Bytes that are not UTF-8 make their record fail its hash, named below; they never stop
        // the other records from being read.
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(self.io(&path)(e)),
        };
        let mut records: Vec<Stored> = Vec::new();
        let mut problems = Vec::new();
        let mut unverified = Vec::new();
        let anchor = self.anchor(job)?;
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        for (number, line) in complete.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let place = format!("{}:{}", path.display(), number + 1);
            let (stored, body) = match parse_line(line) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    problems.push(format!("{place}: the record cannot be read ({reason})"));
                    continue;
                }
            };
            let name = format!(
                "record {} (run {})",
                stored.record.seq, stored.record.run_id
            );
            let problems_before = problems.len();
            if sha256_hex(body.as_bytes()) != stored.hash {
                problems.push(format!(
                    "{place}: {name} was altered: its content does not match its hash"
                ));
            }
            match (records.last(), &anchor) {
                // Records the anchor covers (a compaction interrupted between its two writes).
                (None, Some(a)) if stored.record.seq <= a.seq => continue,
                (None, Some(a)) if stored.record.seq != a.seq + 1 => {
                    let missing = if stored.record.seq == a.seq + 2 {
                        format!("record {} is", a.seq + 1)
                    } else {
                        format!("records {} to {} are", a.seq + 1, stored.record.seq - 1)
                    };
                    problems.push(format!(
                        "{place}: {missing} missing: the journal was compacted up to record {} but starts at {name}",
                        a.seq
                    ));
                }
                (None, Some(a)) if stored.record.prev.as_deref() != Some(a.hash.as_str()) => {
                    problems.push(format!(
                        "{place}: {name} does not follow record {}, the last one retention dropped: it was altered or replaced",
                        a.seq
                    ));
                }
                (None, None) if stored.record.seq != 1 => {
                    problems.push(format!(
                        "{place}: records 1 to {} are missing: the journal starts at {name}",
                        stored.record.seq - 1
                    ));
                }
                (Some(previous), _) if stored.record.seq != previous.record.seq + 1 => {
                    let first = previous.record.seq + 1;
                    let last = stored.record.seq.saturating_sub(1);
                    problems.push(if first == last {
                        format!("{place}: record {first} is missing (before {name})")
                    } else if first < last {
                        format!("{place}: records {first} to {last} are missing (before {name})")
                    } else {
                        format!(
                            "{place}: {name} repeats or goes back in sequence after record {}",
                            previous.record.seq
                        )
                    });
                }
                (Some(previous), _)
                    if stored.record.prev.as_deref() != Some(previous.hash.as_str()) =>
                {
                    problems.push(format!(
                        "{place}: {name} does not follow record {}: that record was altered or replaced",
                        previous.record.seq
                    ));
                }
                _ => {}
            }
            if problems.len() > problems_before {
                unverified.push(stored.record.run_id.clone());
            }
            records.push(stored);
        }
        let check = ChainCheck {
            job: job.to_string(),
            records: records.len(),
            problems,
            unverified,
        };
        Ok((records, check))
    }
}

/// Parses one stored line; returns the record with its hash and the record's exact text (what
/// the hash covers). Works on any text: a damaged line is an error, never a panic.
fn parse_line(line: &str) -> Result<(Stored, &str), String> {
    let rest = line
        .strip_prefix(PREFIX)
        .ok_or("it does not start with its hash")?;
    let hash = rest
        .get(..64)
        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("its hash is not 64 hex digits")?;
    let body = rest[64..]
        .strip_prefix(MIDDLE)
        .ok_or("its hash is not followed by its record")?
        .strip_suffix('}')
        .ok_or("it is cut short")?;
    let record: Record = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok((
        Stored {
            hash: hash.to_string(),
            record,
        },
        body,
    ))
}

/// Cuts off a last line without a newline (a torn write) and returns the last complete line.
fn cut_torn_tail(file: &mut File) -> std::io::Result<Option<String>> {
    let length = file.seek(SeekFrom::End(0))?;
    if length == 0 {
        return Ok(None);
    }
    // Read backwards until two newlines (or the start) bracket the last complete line.
    let mut tail: Vec<u8> = Vec::new();
    let mut position = length;
    let chunk = 64 * 1024;
    loop {
        let start = position.saturating_sub(chunk);
        let mut buffer = vec![0; (position - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buffer)?;
        buffer.extend_from_slice(&tail);
        tail = buffer;
        position = start;
        let newlines = tail.iter().filter(|b| **b == b'\n').count();
        let ends_complete = tail.last() == Some(&b'\n');
        if position == 0 || newlines >= 2 || (newlines == 1 && !ends_complete) {
            break;
        }
    }
    let Some(last_newline) = tail.iter().rposition(|b| *b == b'\n') else {
        // No complete line at all: the whole file is one torn write.
        file.set_len(0)?;
        return Ok(None);
    };
    if last_newline + 1 < tail.len() {
        let keep = position + last_newline as u64 + 1;
        file.set_len(keep)?;
        file.sync_data()?;
    }
    let complete = &tail[..last_newline];
    let start = complete
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    Ok(Some(
        String::from_utf8_lossy(&complete[start..]).into_owned(),
    ))
}

/// Writes `text` to a temporary file beside `path`, syncs it and renames it over `path`.
fn write_atomically(path: &Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = File::create(&temporary)?;
    file.write_all(text.as_ref())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
