//! The journal's own tests: chains, damage, torn lines, retention.

use super::*;

fn record(job: &str, run: &str) -> Record {
    Record {
        seq: 0,
        prev: None,
        job: job.into(),
        run_id: run.into(),
        recorded_at: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
        tool_version: "0.1.0".into(),
        config_sha256: "c".repeat(64),
        suite_sha256: "s".repeat(64),
        report: serde_json::json!({ "job": job, "run_id": run, "outcome": "passed" }),
    }
}

#[test]
fn appends_chain_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path());
    let a = journal.append(record("orders", "run-1")).unwrap();
    let b = journal.append(record("orders", "run-2")).unwrap();
    journal.append(record("payments", "run-3")).unwrap();
    assert_eq!((a.record.seq, b.record.seq), (1, 2));
    assert_eq!(b.record.prev.as_deref(), Some(a.hash.as_str()));
    let (records, check) = journal.read("orders").unwrap();
    assert!(check.intact(), "{:?}", check.problems);
    assert_eq!(records, vec![a, b]);
    assert_eq!(journal.jobs().unwrap(), vec!["orders", "payments"]);
    assert_eq!(journal.id().unwrap().len(), 16);
}

#[test]
fn edited_and_removed_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path());
    for i in 1..=5 {
        journal
            .append(record("orders", &format!("run-{i}")))
            .unwrap();
    }
    let path = dir.path().join("orders.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1] = lines[1].replace("\"passed\"", "\"failed\"");
    lines.remove(3);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (_, check) = journal.read("orders").unwrap();
    assert_eq!(check.problems.len(), 2, "{:?}", check.problems);
    assert!(check.problems[0].contains("orders.jsonl:2: record 2 (run run-2) was altered"));
    assert!(check.problems[1].contains("orders.jsonl:4: record 4 is missing (before record 5"));
}

#[test]
fn non_ascii_and_invalid_bytes_are_named_problems() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path());
    for i in 1..=3 {
        journal
            .append(record("orders", &format!("run-{i}")))
            .unwrap();
    }
    let path = dir.path().join("orders.jsonl");
    let mut lines: Vec<Vec<u8>> = std::fs::read(&path)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    // A two-byte character across the end of the first record's hash.
    lines[0].splice(PREFIX.len() + 63..PREFIX.len() + 64, "é".bytes());
    // A byte that is not UTF-8 inside the second record's report.
    let at = lines[1]
        .windows(8)
        .position(|w| w == b"\"passed\"")
        .unwrap()
        + 2;
    lines[1][at] = 0xff;
    let text: Vec<u8> = lines.join(&b'\n').into_iter().chain([b'\n']).collect();
    std::fs::write(&path, text).unwrap();
    let (records, check) = journal.read("orders").unwrap();
    assert_eq!(records.len(), 2, "{:?}", check.problems);
    assert!(
        check.problems[0]
            .contains("orders.jsonl:1: the record cannot be read (its hash is not 64 hex digits)"),
        "{:?}",
        check.problems
    );
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("orders.jsonl:2: record 2 (run run-2) was altered")),
        "{:?}",
        check.problems
    );
    // Appends go on after the damaged lines, and compaction keeps their bytes.
    assert_eq!(
        journal
            .append(record("orders", "run-4"))
            .unwrap()
            .record
            .seq,
        4
    );
    let before = std::fs::read(&path).unwrap();
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    assert_eq!(journal.compact("orders", now, now).unwrap(), 0);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn records_are_read_newest_first_from_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path());
    for i in 1..=300 {
        let mut r = record("orders", &format!("run-{i}"));
        // Records larger than one read, so lines cross chunk boundaries.
        r.report["padding"] = serde_json::json!("x".repeat(700));
        journal.append(r).unwrap();
    }
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join("orders.jsonl"))
        .unwrap();
    file.write_all(b"{\"hash\":\"torn").unwrap();
    let mut seen = Vec::new();
    journal
        .newest_first("orders", |s| {
            seen.push(s.record.seq);
            true
        })
        .unwrap();
    assert_eq!(seen, (1..=300).rev().collect::<Vec<u64>>());
    let mut two = Vec::new();
    journal
        .newest_first("orders", |s| {
            two.push(s.record.run_id.clone());
            two.len() < 2
        })
        .unwrap();
    assert_eq!(two, vec!["run-300", "run-299"]);
    journal.newest_first("nobody", |_| true).unwrap();
}

#[test]
fn a_torn_last_line_is_skipped_and_cut_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path());
    journal.append(record("orders", "run-1")).unwrap();
    let path = dir.path().join("orders.jsonl");
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"hash\":\"abc").unwrap();
    let (records, check) = journal.read("orders").unwrap();
    assert_eq!(records.len(), 1);
    assert!(check.intact());
    let next = journal.append(record("orders", "run-2")).unwrap();
    assert_eq!(next.record.seq, 2);
    let (records, check) = journal.read("orders").unwrap();
    assert_eq!(records.len(), 2);
    assert!(check.intact(), "{:?}", check.problems);
}

#[test]
fn compaction_keeps_the_chain_checkable_from_its_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path());
    for day in 1..=5 {
        let mut r = record("orders", &format!("run-{day}"));
        r.report["started_at"] = serde_json::json!(format!("2026-11-0{day}T02:30:00Z"));
        journal.append(r).unwrap();
    }
    let before = DateTime::parse_from_rfc3339("2026-11-03T00:00:00Z")
        .unwrap()
        .to_utc();
    let now = before;
    assert_eq!(journal.compact("orders", before, now).unwrap(), 2);
    assert_eq!(journal.compact("orders", before, now).unwrap(), 0);
    let anchor = journal.anchor("orders").unwrap().unwrap();
    assert_eq!((anchor.seq, anchor.dropped), (2, 2));
    let (records, check) = journal.read("orders").unwrap();
    assert!(check.intact(), "{:?}", check.problems);
    assert_eq!(records.first().unwrap().record.seq, 3);
    // Appends go on from the kept records.
    assert_eq!(
        journal
            .append(record("orders", "run-6"))
            .unwrap()
            .record
            .seq,
        6
    );

    // Removing the first kept record is found against the anchor.
    let path = dir.path().join("orders.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let rest: Vec<&str> = text.lines().skip(1).collect();
    std::fs::write(&path, rest.join("\n") + "\n").unwrap();
    let (_, check) = journal.read("orders").unwrap();
    assert_eq!(check.problems.len(), 1, "{:?}", check.problems);
    assert!(
        check.problems[0].contains("record 3 is missing: the journal was compacted up to record 2"),
        "{:?}",
        check.problems
    );
}

#[test]
fn records_of_one_kind_are_found_by_their_bytes_and_a_torn_line_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path());
    journal.append(record("orders", "run-1")).unwrap();
    let mut restore = record("orders", "run-2");
    restore.report["recovery"] = serde_json::json!({ "reason": "INC-1" });
    journal.append(restore).unwrap();
    journal.append(record("orders", "run-3")).unwrap();
    let mut torn = record("orders", "run-4");
    torn.report["recovery"] = serde_json::json!({ "reason": "INC-2" });
    let line = format!(
        "{PREFIX}{}{MIDDLE}{}",
        "0".repeat(64),
        serde_json::to_string(&torn).unwrap()
    );
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join("orders.jsonl"))
        .unwrap();
    file.write_all(line.as_bytes()).unwrap();
    let mut found = Vec::new();
    journal
        .records_containing("orders", &["\"recovery\":{"], |s| {
            found.push(s.record.run_id.clone())
        })
        .unwrap();
    assert_eq!(found, vec!["run-2"]);
}
