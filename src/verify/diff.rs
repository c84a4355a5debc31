//! The `sample` check: the keyed samples both scans collected, joined on the key, and the diff
//! turned into a check result.

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use serde_json::json;

use super::evaluate::{CheckOutcome, CheckResult};
use super::plan::TABLE;
use super::sample::{self, CompareSpec, DiffMode, SampleDiff};
use super::scan;
use super::suite::Severity;

/// The name the source has in the diff's queries.
pub(crate) const SOURCE: &str = "src";

/// What the sample diff found.
#[derive(Debug)]
pub(crate) struct SampleCheck {
    pub check: CheckResult,
    /// The diff, when it ran.
    pub diff: Option<SampleDiff>,
    /// The statements it ran (the counts, and the examples when there were differences).
    pub queries: Vec<String>,
    /// Why it could not run, when it could not: the check is then skipped.
    pub warning: Option<String>,
}

/// Joins the two sides' keyed samples and turns the diff into the `sample` check.
pub(crate) async fn sample_check(
    spec: &CompareSpec,
    fraction: f64,
    (restored, source): (&RecordBatch, &RecordBatch),
    mode: DiffMode,
    redact: &[String],
) -> SampleCheck {
    let source_columns: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let columns: Vec<String> = restored
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| source_columns.contains(c) && !spec.key.contains(c))
        .collect();
    let q = sample::queries(spec, &columns, fraction, mode, TABLE, SOURCE);
    let result = async {
        let ctx = scan::session();
        for (name, batch) in [(TABLE, restored), (SOURCE, source)] {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
            ctx.register_table(name, Arc::new(table))?;
        }
        sample::run(&ctx, spec, &columns, fraction, mode, redact, &q).await
    }
    .await;
    judge(result, q, spec, fraction, mode)
}

/// Diffs a keyed sample of the restored table (registered in `ctx` as [`TABLE`]) with the live
/// source's (as [`SOURCE`]) at the snapshot's time `cutoff` (Unix seconds), by the `as_of`
/// column, and turns it into the `sample` check. Both tables are read once.
pub(crate) async fn live_check(
    ctx: &deltalake::datafusion::prelude::SessionContext,
    spec: &CompareSpec,
    as_of: &str,
    cutoff: f64,
    columns: &[String],
    fraction: f64,
    redact: &[String],
) -> SampleCheck {
    let q = sample::queries_as_of(spec, as_of, cutoff, columns, fraction, TABLE, SOURCE);
    let result = sample::run(ctx, spec, columns, fraction, DiffMode::AsOf, redact, &q).await;
    judge(result, q, spec, fraction, DiffMode::AsOf)
}

/// The `sample` check of a diff that ran, or was skipped because it could not.
fn judge(
    result: deltalake::datafusion::error::Result<SampleDiff>,
    q: sample::DiffQueries,
    spec: &CompareSpec,
    fraction: f64,
    mode: DiffMode,
) -> SampleCheck {
    let mut check = CheckResult::new("sample", "sample_diff", Severity::Fail);
    let mut queries = vec![q.counts.clone()];
    let diff = match result {
        Ok(diff) => diff,
        Err(e) => {
            let reason = format!("the sample diff could not run: {e}");
            check.outcome = CheckOutcome::Skipped;
            check.message = Some(reason.clone());
            return SampleCheck {
                check,
                diff: None,
                queries,
                warning: Some(reason),
            };
        }
    };
    if !diff.examples.is_empty() {
        queries.push(q.examples.clone());
    }
    check.observed = json!({
        "restored_rows": diff.restored_rows,
        "source_rows": diff.source_rows,
        "missing": diff.missing,
        "extra": diff.extra,
        "changed": diff.changed,
    });
    if mode == DiffMode::AsOf {
        check.observed["changed_later"] = json!(diff.later);
    }
    check.expected = json!({ "mismatched_rows": 0, "mode": mode });
    if diff.mismatched() > 0 {
        check.fail(describe(&diff, spec, fraction, mode));
    }
    SampleCheck {
        check,
        diff: Some(diff),
        queries,
        warning: None,
    }
}

/// The failure message of a diff with differences.
fn describe(diff: &SampleDiff, spec: &CompareSpec, fraction: f64, mode: DiffMode) -> String {
    let by_column: Vec<String> = diff
        .changed_by_column
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    let against = match mode {
        DiffMode::Exact => "the source at the snapshot's version",
        DiffMode::AppendOnly => "the current source",
        DiffMode::AsOf => "the live source as of the snapshot's time",
    };
    let mut parts = match mode {
        DiffMode::Exact => vec![
            format!("{} missing from the restore", diff.missing),
            format!("{} extra", diff.extra),
        ],
        DiffMode::AppendOnly => {
            vec![format!("{} restored rows not in the source", diff.extra)]
        }
        DiffMode::AsOf => vec![
            format!("{} missing from the restore", diff.missing),
            format!(
                "{} deleted from the source since (not counted), {} changed there since (not compared)",
                diff.extra, diff.later
            ),
        ],
    };
    let changed = if by_column.is_empty() {
        format!("{} changed", diff.changed)
    } else {
        format!("{} changed ({})", diff.changed, by_column.join(", "))
    };
    parts.push(changed);
    format!(
        "a {:.4}% sample by key ({}) of {} restored and {} source rows differs from {against}: {}; up to {} examples are in the report",
        fraction * 100.0,
        spec.key.join(", "),
        diff.restored_rows,
        diff.source_rows,
        parts.join(", "),
        sample::EXAMPLES
    )
}
