//! The queries run on the restored table after its one scan: each `custom_sql` check's own
//! query, and example rows for each failed row-level check.

use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::prelude::SessionContext;

use super::compile::{self, Context};
use super::evaluate::{CheckOutcome, CheckResult};
use super::plan::TABLE;
use super::sample::EXAMPLES;
use super::scan;
use super::suite::{CheckKind, Suite};

/// A `custom_sql` check's answer, or why its query failed, by check id.
pub(crate) type CustomAnswers = Vec<(String, Result<ScalarValue, String>)>;

/// Runs each `custom_sql` check's query on its own over the restored table (registered in
/// `ctx` as [`TABLE`]). Returns the answers and the statements run.
pub(crate) async fn custom_queries(
    ctx: &SessionContext,
    suite: &Suite,
) -> (CustomAnswers, Vec<String>) {
    let mut answers = Vec::new();
    let mut statements = Vec::new();
    for check in &suite.checks {
        if let CheckKind::CustomSql { sql, .. } = &check.kind {
            statements.push(sql.clone());
            answers.push((
                check.id.clone(),
                scan::single_value(ctx, sql)
                    .await
                    .map_err(|e| e.to_string()),
            ));
        }
    }
    (answers, statements)
}

/// Fetches up to [`EXAMPLES`] rows for each failed row-level check, after it failed, with the
/// `redact` columns masked. Returns the statements run; a fetch that fails is logged with the
/// job's name and leaves the check without examples.
pub(crate) async fn add_examples(
    job: &str,
    ctx: &SessionContext,
    suite: &Suite,
    context: &Context,
    results: &mut [CheckResult],
    redact: &[String],
) -> Vec<String> {
    let mut statements = Vec::new();
    for (check, result) in suite.checks.iter().zip(results.iter_mut()) {
        if result.outcome != CheckOutcome::Failed {
            continue;
        }
        let Some(filter) = compile::example_filter(&check.kind, context) else {
            continue;
        };
        let sql = format!("SELECT * FROM {TABLE} WHERE {filter} LIMIT {EXAMPLES}");
        statements.push(sql.clone());
        match scan::rows_as_json(ctx, &sql, redact).await {
            Ok(rows) => result.examples = rows,
            Err(e) => {
                tracing::warn!(job, check = %check.id, error = %e, "could not fetch example rows")
            }
        }
    }
    statements
}
