//! The journal against PostgreSQL, record by record: each holds the other's hashes, so a record
//! edited after it was stored, a newest record removed, or a journal rolled back to an older
//! state (a state folder restored from a backup) is found even when the journal's own chain is
//! intact.

use std::collections::{HashMap, HashSet};

use super::journal::{Anchor, Stored};

/// One record of one journal as PostgreSQL holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub seq: u64,
    pub hash: String,
    pub run_id: String,
}

/// Where the journal and PostgreSQL disagree about one job, each difference in words, and the
/// run ids of the records concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Divergence {
    pub problems: Vec<String>,
    pub runs: Vec<String>,
}

impl Divergence {
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Compares a job's journal records (those after its anchor) with the rows PostgreSQL holds for
/// the same journal and job. Records the journal holds and PostgreSQL does not yet are not a
/// difference: they wait to be sent.
pub fn compare(
    journal: &[Stored],
    anchor: Option<&Anchor>,
    rows: &[StoredRow],
    journal_file: &str,
) -> Divergence {
    let mut out = Divergence::default();
    let by_run: HashMap<&str, &Stored> = journal
        .iter()
        .map(|s| (s.record.run_id.as_str(), s))
        .collect();
    let by_seq: HashMap<u64, &Stored> = journal.iter().map(|s| (s.record.seq, s)).collect();
    let newest = journal.iter().map(|s| s.record.seq).max();
    let dropped_up_to = anchor.map_or(0, |a| a.seq);
    let mut seen = HashSet::new();
    let mut rows: Vec<&StoredRow> = rows.iter().collect();
    rows.sort_by_key(|r| (r.seq, r.run_id.clone()));
    for row in rows {
        if !seen.insert(row.run_id.as_str()) {
            continue;
        }
        let name = format!("record {} (run {})", row.seq, row.run_id);
        match by_run.get(row.run_id.as_str()) {
            Some(stored) if stored.hash != row.hash => {
                out.problems.push(format!(
                    "{journal_file}: {name} differs from its copy in PostgreSQL (stored with hash {}, the journal's hash is now {}): it was edited after it was stored",
                    short(&row.hash),
                    short(&stored.hash)
                ));
                out.runs.push(row.run_id.clone());
            }
            Some(_) => {}
            None if row.seq <= dropped_up_to => {}
            None => {
                let problem = match by_seq.get(&row.seq) {
                    Some(other) => format!(
                        "{journal_file}: sequence number {} was used twice: PostgreSQL holds run {} (hash {}) and the journal now holds run {} (hash {}) there: the journal was rolled back to an older state and went on; both drills are kept in PostgreSQL",
                        row.seq,
                        row.run_id,
                        short(&row.hash),
                        other.record.run_id,
                        short(&other.hash)
                    ),
                    None if newest.is_none_or(|n| row.seq > n) => format!(
                        "{journal_file}: {name} is in PostgreSQL but not in the journal, whose newest record is {}: the newest records were removed from the journal, or it was rolled back",
                        newest.map_or("none".to_string(), |n| n.to_string())
                    ),
                    None => format!(
                        "{journal_file}: {name} is in PostgreSQL but not in the journal: it was removed from the journal"
                    ),
                };
                out.problems.push(problem);
                out.runs.push(row.run_id.clone());
                if let Some(other) = by_seq.get(&row.seq) {
                    out.runs.push(other.record.run_id.clone());
                }
            }
        }
    }
    out
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::journal::Record;

    fn stored(seq: u64, run: &str, hash: &str) -> Stored {
        Stored {
            hash: hash.repeat(64 / hash.len()),
            record: Record {
                seq,
                prev: None,
                job: "orders".into(),
                run_id: run.into(),
                recorded_at: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
                tool_version: "0.1.0".into(),
                config_sha256: String::new(),
                suite_sha256: String::new(),
                report: serde_json::Value::Null,
            },
        }
    }

    fn row(s: &Stored) -> StoredRow {
        StoredRow {
            seq: s.record.seq,
            hash: s.hash.clone(),
            run_id: s.record.run_id.clone(),
        }
    }

    #[test]
    fn agreeing_histories_and_unsent_records_are_no_difference() {
        let journal = [stored(1, "a", "1"), stored(2, "b", "2")];
        let rows = [row(&journal[0])];
        assert!(compare(&journal, None, &rows, "orders.jsonl").is_empty());
    }

    #[test]
    fn edited_removed_and_reused_records_are_named() {
        let original = [
            stored(1, "a", "1"),
            stored(2, "b", "2"),
            stored(3, "c", "3"),
        ];
        let rows: Vec<StoredRow> = original.iter().map(row).collect();

        let edited = [
            stored(1, "a", "1"),
            stored(2, "b", "e"),
            stored(3, "c", "3"),
        ];
        let d = compare(&edited, None, &rows, "orders.jsonl");
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        assert!(d.problems[0].contains("record 2 (run b) differs from its copy in PostgreSQL"));

        let removed = &original[..2];
        let d = compare(removed, None, &rows, "orders.jsonl");
        assert!(
            d.problems[0].contains(
                "record 3 (run c) is in PostgreSQL but not in the journal, whose newest record is 2"
            ),
            "{:?}",
            d.problems
        );

        let rolled_back = [
            stored(1, "a", "1"),
            stored(2, "b", "2"),
            stored(3, "d", "4"),
        ];
        let d = compare(&rolled_back, None, &rows, "orders.jsonl");
        assert!(
            d.problems[0].contains("sequence number 3 was used twice: PostgreSQL holds run c"),
            "{:?}",
            d.problems
        );
        assert_eq!(d.runs, vec!["c", "d"]);
    }

    #[test]
    fn records_before_the_anchor_are_not_missing() {
        let journal = [stored(3, "c", "3")];
        let rows = vec![row(&stored(2, "b", "2")), row(&journal[0])];
        let anchor = Anchor {
            seq: 2,
            hash: "2".repeat(64),
            dropped: 2,
            compacted_at: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
        };
        assert!(compare(&journal, Some(&anchor), &rows, "orders.jsonl").is_empty());
    }
}
