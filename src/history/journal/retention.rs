//! Retention: dropping a job's oldest records and leaving an anchor, `<dir>/<job>.anchor`, the
//! sequence number and hash of the last dropped record, from which the chain is checked.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::{
    Anchor, HistoryError, Journal, Stored, cut_torn_tail, parse_line, sync_dir, write_atomically,
};

impl Journal {
    pub(super) fn anchor_file(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}.anchor"))
    }

    /// The anchor of a compacted job, if any.
    pub fn anchor(&self, job: &str) -> Result<Option<Anchor>, HistoryError> {
        let path = self.anchor_file(job);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| HistoryError::Corrupt {
                    path,
                    reason: format!("the anchor cannot be read ({e})"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path)(e)),
        }
    }
    /// Drops the records of `job` whose drill started before `before`, oldest first (only a
    /// run of the oldest: the chain stays whole), and moves the anchor to the last one dropped.
    /// The file is replaced atomically. Returns how many were dropped.
    pub(crate) fn compact(
        &self,
        job: &str,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize, HistoryError> {
        let path = self.file(job);
        let io = self.io(&path);
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        file.lock().map_err(&io)?;
        cut_torn_tail(&mut file).map_err(&io)?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(&io)?;
        file.read_to_end(&mut bytes).map_err(&io)?;
        // Lines are kept byte for byte; compaction stops at the first one that does not read.
        let lines: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let mut dropped: Option<Stored> = None;
        let mut count = 0;
        for line in &lines {
            let Some((stored, _)) = std::str::from_utf8(line)
                .ok()
                .and_then(|l| parse_line(l).ok())
            else {
                break;
            };
            let started = stored.record.started_at();
            if started >= before {
                break;
            }
            dropped = Some(stored);
            count += 1;
        }
        let Some(last) = dropped else {
            file.unlock().map_err(&io)?;
            return Ok(0);
        };
        let previous = self.anchor(job)?.map_or(0, |a| a.dropped);
        let anchor = Anchor {
            seq: last.record.seq,
            hash: last.hash,
            dropped: previous + count as u64,
            compacted_at: now,
        };
        // The anchor first: a crash between the two writes leaves records the anchor already
        // covers, which the check accepts; the reverse would leave a chain without a start.
        let anchor_path = self.anchor_file(job);
        write_atomically(
            &anchor_path,
            &(serde_json::to_string(&anchor).expect("anchors serialize") + "\n"),
        )
        .map_err(self.io(&anchor_path))?;
        let kept: Vec<u8> = lines[count..]
            .iter()
            .flat_map(|l| l.iter().copied().chain(std::iter::once(b'\n')))
            .collect();
        write_atomically(&path, &kept).map_err(&io)?;
        sync_dir(&self.dir).map_err(self.io(&self.dir))?;
        file.unlock().map_err(&io)?;
        Ok(count)
    }
}
