//! Compiling a suite into the one scan's expressions: what each check computes on the restored
//! table and on the source, and the row filters that fetch examples of a failed check.

use chrono::{DateTime, Utc};

use super::fingerprint;
use super::keys;
use deltalake::datafusion::common::ScalarValue;

use super::plan::{self, AggregatePlan, ScanValues};
use super::suite::{CheckKind, RowRule, Suite};

/// What a suite is evaluated against besides the scan: the snapshot's newest commit, the
/// log's row count and the schemas.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub commit_time: Option<DateTime<Utc>>,
    pub logged_rows: Option<u64>,
    /// The restored table's columns with their Delta types.
    pub columns: Vec<(String, String)>,
    /// The source's columns with their Delta types at the snapshot's version, when read.
    pub source_columns: Option<Vec<(String, String)>>,
    /// Value ranges of integer key columns from the log's file statistics.
    pub key_ranges: Vec<(String, (i64, i64))>,
}

impl Context {
    pub(super) fn key_range(&self, column: &str) -> Option<(i64, i64)> {
        self.key_ranges
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, r)| *r)
    }
}

/// The single-column keys of a suite's `unique` and `distinct_count` checks.
pub fn key_columns(suite: &Suite) -> Vec<&str> {
    let mut out: Vec<&str> = suite
        .checks
        .iter()
        .filter_map(|c| match &c.kind {
            CheckKind::Unique { columns } | CheckKind::DistinctCount { columns, .. } => {
                match columns.as_slice() {
                    [one] => Some(one.as_str()),
                    _ => None,
                }
            }
            CheckKind::RowCount { .. }
            | CheckKind::RowCountMatchesLog
            | CheckKind::Statistic { .. }
            | CheckKind::NotNull { .. }
            | CheckKind::Rows { .. }
            | CheckKind::Freshness { .. }
            | CheckKind::Schema { .. }
            | CheckKind::CustomSql { .. } => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The single aggregate over the restored table: every check's expressions, and the
/// fingerprint of all columns (which reads every value, so every data file is decoded).
pub fn plan_restored(suite: &Suite, columns: &[String], context: &Context) -> AggregatePlan {
    let mut plan = plan_checks(suite, context);
    plan.add(fingerprint::expr(columns));
    plan
}

/// The expressions of the suite's checks alone (the restored scan without the fingerprint).
pub fn plan_checks(suite: &Suite, context: &Context) -> AggregatePlan {
    let mut plan = AggregatePlan::default();
    plan.add(plan::row_count());
    for check in &suite.checks {
        for expr in expressions(&check.kind, context) {
            plan.add(expr);
        }
        if let CheckKind::Unique { columns } | CheckKind::DistinctCount { columns, .. } =
            &check.kind
        {
            match keys::expr_for(columns, context) {
                Some(expr) => {
                    plan.add(expr);
                }
                None => plan.add_key_set(columns),
            }
        }
    }
    plan
}

/// The aggregate expressions a check reads from the restored scan.
fn expressions(kind: &CheckKind, context: &Context) -> Vec<String> {
    match kind {
        CheckKind::RowCount { .. } | CheckKind::RowCountMatchesLog => vec![plan::row_count()],
        CheckKind::Statistic { stat, column, .. } => {
            vec![plan::statistic(*stat, column), plan::present(column)]
        }
        CheckKind::NotNull { columns, .. } => columns.iter().map(|c| plan::null_count(c)).collect(),
        CheckKind::Rows { rule, column, .. } => {
            match unexpected(rule, column.as_deref(), context) {
                Some(predicate) => vec![
                    column
                        .as_deref()
                        .map_or_else(plan::row_count, plan::present),
                    plan::count_where(&predicate),
                ],
                None => vec![],
            }
        }
        CheckKind::Freshness { column, .. } => vec![plan::newest_seconds(column)],
        CheckKind::Unique { .. }
        | CheckKind::DistinctCount { .. }
        | CheckKind::Schema { .. }
        | CheckKind::CustomSql { .. } => vec![],
    }
}

/// The SQL predicate of rows that break a row-level rule; `None` when it cannot be formed
/// (a timestamp rule without the snapshot's commit time).
pub fn unexpected(rule: &RowRule, column: Option<&str>, context: &Context) -> Option<String> {
    let c = column.map(plan::ident).unwrap_or_default();
    let list = |values: &[String]| {
        values
            .iter()
            .map(|v| plan::literal(v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(match rule {
        RowRule::InRange { min, max } => {
            let mut outside = Vec::new();
            if let Some(min) = min {
                outside.push(format!("{c} < {min}"));
            }
            if let Some(max) = max {
                outside.push(format!("{c} > {max}"));
            }
            format!("{c} IS NOT NULL AND ({})", outside.join(" OR "))
        }
        RowRule::InSet { values } => format!("{c} IS NOT NULL AND {c} NOT IN ({})", list(values)),
        RowRule::NotInSet { values } => format!("{c} IN ({})", list(values)),
        RowRule::MatchesRegex { pattern } => format!(
            "{c} IS NOT NULL AND NOT regexp_like({c}, {})",
            plan::literal(pattern)
        ),
        RowRule::LengthBetween { min, max } => {
            let mut outside = Vec::new();
            if let Some(min) = min {
                outside.push(format!("character_length({c}) < {min}"));
            }
            if let Some(max) = max {
                outside.push(format!("character_length({c}) > {max}"));
            }
            format!("{c} IS NOT NULL AND ({})", outside.join(" OR "))
        }
        RowRule::NotInFuture => {
            let at = context.commit_time?;
            format!("{c} IS NOT NULL AND to_unixtime({c}) > {}", at.timestamp())
        }
        RowRule::Condition { sql } => format!("NOT coalesce(({sql}), false)"),
    })
}

/// The SQL predicate of the rows a failed check shows as examples.
pub(crate) fn example_filter(kind: &CheckKind, context: &Context) -> Option<String> {
    match kind {
        CheckKind::NotNull { columns, .. } => Some(
            columns
                .iter()
                .map(|c| format!("{} IS NULL", plan::ident(c)))
                .collect::<Vec<_>>()
                .join(" OR "),
        ),
        CheckKind::Rows { rule, column, .. } => unexpected(rule, column.as_deref(), context),
        CheckKind::Unique { columns } => Some(plan::duplicated_keys(columns)),
        // Aggregates over the table: no row is an example of their failure.
        CheckKind::RowCount { .. }
        | CheckKind::RowCountMatchesLog
        | CheckKind::Statistic { .. }
        | CheckKind::DistinctCount { .. }
        | CheckKind::Freshness { .. }
        | CheckKind::Schema { .. }
        | CheckKind::CustomSql { .. } => None,
    }
}

/// The single aggregate over the source at the snapshot's version: what `equals_source`
/// checks compare, and the fingerprint.
pub fn plan_source(suite: &Suite, columns: &[String]) -> AggregatePlan {
    let mut plan = AggregatePlan::default();
    for check in &suite.checks {
        match &check.kind {
            CheckKind::RowCount {
                equals_source: true,
                ..
            } => {
                plan.add(plan::row_count());
            }
            CheckKind::Statistic {
                stat,
                column,
                equals_source: true,
                ..
            } => {
                plan.add(plan::statistic(*stat, column));
            }
            _ => {}
        }
    }
    plan.add(fingerprint::expr(columns));
    plan
}

/// Whether the source's values of `plan` can be put together from parts of the table (see
/// [`replace_part`]): only the row count and the fingerprint merge so.
pub fn merges_from_parts(plan: &AggregatePlan) -> bool {
    plan.key_sets().is_empty()
        && plan
            .exprs()
            .iter()
            .all(|e| *e == plan::row_count() || e.starts_with(fingerprint::NAME))
}

/// The values of `plan` over a table whose part `out` is replaced by `into`: `whole`'s values
/// less `out`'s plus `into`'s. `None` when an expression does not merge or a value is missing.
pub fn replace_part(
    plan: &AggregatePlan,
    whole: &ScanValues,
    out: &ScanValues,
    into: &ScanValues,
) -> Option<ScanValues> {
    let mut merged = std::collections::HashMap::new();
    for expr in plan.exprs() {
        let (w, o, i) = (whole.get(expr)?, out.get(expr)?, into.get(expr)?);
        let value = if *expr == plan::row_count() {
            let count = |v: &ScalarValue| match v {
                ScalarValue::Int64(Some(n)) => Some(*n),
                _ => None,
            };
            ScalarValue::Int64(Some(count(w)? - count(o)? + count(i)?))
        } else if expr.starts_with(fingerprint::NAME) {
            fingerprint::replace_part(w, o, i)?
        } else {
            return None;
        };
        merged.insert(expr.clone(), value);
    }
    Some(ScanValues::new(merged))
}

/// The values of `plan` as another scan computed them, when it computed every one.
pub fn taken_from(plan: &AggregatePlan, scanned: &ScanValues) -> Option<ScanValues> {
    if !plan.key_sets().is_empty() {
        return None;
    }
    let values = plan
        .exprs()
        .iter()
        .map(|e| Some((e.clone(), scanned.get(e)?.clone())))
        .collect::<Option<_>>()?;
    Some(ScanValues::new(values))
}
