//! `pg_amcheck --heapallindexed` over the restored database: every table's heap and every
//! B-tree index checked, and each corrupt relation named with what is wrong.

use std::process::Stdio;

use serde::Serialize;
use tokio::process::Command;

use super::server::last_lines;
use super::target::RestoreTarget;

/// What `pg_amcheck` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Amcheck {
    /// Whether it ran to the end.
    pub completed: bool,
    /// Each corrupt relation with the first thing found wrong in it.
    pub corrupt: Vec<String>,
    /// Why it could not check, when it could not.
    pub error: Option<String>,
}

/// Runs `pg_amcheck` on the restored database (installing the `amcheck` extension there),
/// connecting to that database only.
pub async fn run(target: &RestoreTarget) -> Amcheck {
    let program = target.binaries().program("pg_amcheck");
    let out = Command::new(&program)
        .args(["--heapallindexed", "--install-missing", "--no-strict-names"])
        .args(target.server_args())
        .arg(target.database())
        .envs(target.client_env())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            return Amcheck {
                error: Some(format!("cannot run {}: {e}", program.display())),
                ..Amcheck::default()
            };
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let corrupt = corrupt_relations(&stdout);
    // 0: no corruption; 2: corruption found; anything else: it could not check.
    let code = out.status.code();
    if code == Some(0) || (code == Some(2) && !corrupt.is_empty()) {
        return Amcheck {
            completed: true,
            corrupt,
            error: None,
        };
    }
    let said = format!("{}{}", String::from_utf8_lossy(&out.stderr), stdout);
    Amcheck {
        completed: false,
        corrupt,
        error: Some(format!(
            "pg_amcheck ended with {}: {}",
            out.status,
            last_lines(&said, 5)
        )),
    }
}

/// `btree index "restored.public.t_pkey":` followed by indented detail lines: one entry per
/// relation, with its first detail.
fn corrupt_relations(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut detail_wanted = false;
    for line in stdout.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let relation = line.trim_end_matches(':').to_string();
            // `heap table "db.s.t", block 0, offset 3` names a place in a relation already
            // listed: keep one entry per relation.
            let name = relation
                .split(", block")
                .next()
                .unwrap_or(&relation)
                .to_string();
            detail_wanted = !out.iter().any(|r| r.starts_with(&name));
            if detail_wanted {
                out.push(relation);
            }
        } else if detail_wanted {
            let detail = line.trim().trim_start_matches("ERROR:").trim();
            if let Some(last) = out.last_mut() {
                last.push_str(": ");
                last.push_str(detail);
            }
            detail_wanted = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_is_named_by_relation() {
        let stdout = "btree index \"restored.public.orders_pkey\":\n    ERROR:  item order invariant violated for index \"orders_pkey\"\n    DETAIL:  Lower index tid=(1,2)\nheap table \"restored.public.orders\", block 0, offset 3:\n    xmin 9999 precedes relation freeze threshold\nheap table \"restored.public.orders\", block 0, offset 4:\n    another\n";
        let found = corrupt_relations(stdout);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            "btree index \"restored.public.orders_pkey\": item order invariant violated for index \"orders_pkey\""
        );
        assert!(
            found[1].starts_with("heap table \"restored.public.orders\", block 0, offset 3: xmin")
        );
    }
}
