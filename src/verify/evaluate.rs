//! Judging a suite: the scan values of the restored table (and of the source) turned into
//! check results against each check's bounds, and the fingerprints compared.

use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::common::ScalarValue;
use serde::Serialize;
use serde_json::{Value, json};

use super::compile::{Context, unexpected};
use super::fingerprint::{self, Fingerprint};
use super::keys;
use super::plan::{self, ScanValues};
use super::suite::{Bounds, Check, CheckKind, Severity, Suite, Tolerance};
use super::values::{as_f64, as_u64, shown, to_json, trim_float};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    Passed,
    Failed,
    /// Could not be evaluated (e.g. the data could not be read); the reason is in `message`.
    Skipped,
}

impl CheckOutcome {
    /// The word the report records.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Passed => "passed",
            CheckOutcome::Failed => "failed",
            CheckOutcome::Skipped => "skipped",
        }
    }
}

/// The result of one check, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub kind: String,
    pub severity: Severity,
    pub outcome: CheckOutcome,
    pub observed: Value,
    pub expected: Value,
    /// Values (or rows) the check looked at, for row-level checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_count: Option<u64>,
    /// Values (or rows) that did not meet the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected_count: Option<u64>,
    /// Up to 20 rows that did not meet a failed check (redacted columns masked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<serde_json::Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CheckResult {
    pub fn new(id: &str, kind: &str, severity: Severity) -> Self {
        Self {
            id: id.to_string(),
            kind: kind.to_string(),
            severity,
            outcome: CheckOutcome::Passed,
            observed: Value::Null,
            expected: Value::Null,
            element_count: None,
            unexpected_count: None,
            examples: Vec::new(),
            message: None,
        }
    }

    pub fn fail(&mut self, message: String) {
        self.outcome = CheckOutcome::Failed;
        self.message = Some(message);
    }
}

/// The source side of a comparison: the values at the snapshot's version, or why there are none.
#[derive(Debug, Clone)]
pub enum SourceValues {
    /// No check compares with the source.
    NotNeeded,
    At {
        /// The source's version the values are of; `None`: a live source as it was read.
        version: Option<u64>,
        values: ScanValues,
        /// The source's columns at that version.
        columns: Vec<String>,
    },
    Unavailable(String),
}

/// The `fingerprint` check: the restored table's contents equal the source's at the
/// snapshot's version.
pub fn compare_fingerprints(
    restored: &ScanValues,
    restored_columns: &[String],
    source: &SourceValues,
) -> CheckResult {
    let mut result = CheckResult::new("fingerprint", "fingerprint", Severity::Fail);
    let ours = scanned_fingerprint(restored, restored_columns);
    result.observed = json!(ours);
    let (version, theirs) = match source {
        SourceValues::At {
            version,
            values,
            columns,
        } => (*version, scanned_fingerprint(values, columns)),
        SourceValues::Unavailable(reason) => {
            result.outcome = CheckOutcome::Skipped;
            result.message = Some(format!("not compared: {reason}"));
            return result;
        }
        SourceValues::NotNeeded => {
            result.outcome = CheckOutcome::Skipped;
            result.message = Some("not compared: the source was not read".into());
            return result;
        }
    };
    result.expected = json!({ "equals_source": theirs, "source_version": version });
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b => {}
        (Some(a), Some(b)) => result.fail(format!(
            "the restored contents differ from the source {}: {}",
            at_version(version),
            differences(&a, &b, "in the source")
        )),
        _ => result.fail("a fingerprint could not be computed".into()),
    }
    result
}

/// The `fingerprint` check of a restore for real: the target's contents equal the restored
/// contents of the drill that passed the snapshot (`drilled`: its run id and the fingerprint it
/// recorded), whatever the source holds now.
pub fn compare_with_drill(
    id: &str,
    restored: &ScanValues,
    restored_columns: &[String],
    drilled: Option<(&str, &Value)>,
) -> CheckResult {
    let mut result = CheckResult::new(id, "fingerprint", Severity::Fail);
    let ours = scanned_fingerprint(restored, restored_columns);
    result.observed = json!(ours);
    let Some((run_id, recorded)) = drilled else {
        result.outcome = CheckOutcome::Skipped;
        result.message =
            Some("not compared: no passed drill of this snapshot recorded this fingerprint".into());
        return result;
    };
    result.expected = json!({ "equals_drill": recorded, "drill_run_id": run_id });
    let theirs: Option<Fingerprint> = serde_json::from_value(recorded.clone()).ok();
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b => {}
        (Some(a), Some(b)) => result.fail(format!(
            "the restored contents differ from what drill {run_id} restored and verified: {}",
            differences(&a, &b, "in the drill")
        )),
        (None, _) => result.fail("a fingerprint could not be computed".into()),
        (_, None) => result.fail(format!(
            "drill {run_id} recorded no fingerprint this version can read"
        )),
    }
    result
}

/// The fingerprint a scan computed over `columns`.
fn scanned_fingerprint(values: &ScanValues, columns: &[String]) -> Option<Fingerprint> {
    values
        .get(&fingerprint::expr(columns))
        .and_then(|v| Fingerprint::from_scalar(v, columns))
}

/// How two fingerprints differ, in words: the row counts, and the columns whose values differ
/// (`theirs` names the other side, e.g. "in the source").
fn differences(ours: &Fingerprint, other: &Fingerprint, theirs: &str) -> String {
    let mut parts = Vec::new();
    if ours.rows != other.rows {
        parts.push(format!(
            "{} rows restored, {} {theirs}",
            ours.rows, other.rows
        ));
    }
    let columns = ours.differing_columns(other);
    if !columns.is_empty() {
        parts.push(format!(
            "columns whose values differ: {}",
            columns.join(", ")
        ));
    }
    if parts.is_empty() {
        parts.push("values are arranged differently across rows".into());
    }
    parts.join("; ")
}

/// Evaluates every check of the suite from the scans' values. Custom SQL results come in
/// `custom`, by check id.
pub fn evaluate(
    suite: &Suite,
    restored: &ScanValues,
    source: &SourceValues,
    context: &Context,
    custom: &[(String, Result<ScalarValue, String>)],
) -> Vec<CheckResult> {
    suite
        .checks
        .iter()
        .map(|check| evaluate_one(check, restored, source, context, custom))
        .collect()
}

fn evaluate_one(
    check: &Check,
    restored: &ScanValues,
    source: &SourceValues,
    context: &Context,
    custom: &[(String, Result<ScalarValue, String>)],
) -> CheckResult {
    let mut result = CheckResult::new(&check.id, check.kind.name(), check.severity);
    let value = |expr: &str| restored.get(expr).cloned().unwrap_or(ScalarValue::Null);
    let rows = as_u64(&value(&plan::row_count()));
    match &check.kind {
        CheckKind::RowCount {
            bounds,
            equals_source,
        } => {
            let count = value(&plan::row_count());
            compare_number(
                &mut result,
                "row count",
                &count,
                *bounds,
                Tolerance::default(),
                equals_source.then(|| source_value(source, &plan::row_count())),
            );
        }
        CheckKind::RowCountMatchesLog => {
            result.observed = json!(rows);
            result.expected = json!({ "equals_log_num_records": context.logged_rows });
            match context.logged_rows {
                Some(logged) if logged != rows => result.fail(format!(
                    "the scan read {rows} rows but the log promises {logged} (its files' numRecords less the rows their deletion vectors remove)"
                )),
                Some(_) => {}
                None => skip(
                    &mut result,
                    "the log does not record numRecords for every file",
                ),
            }
        }
        CheckKind::Statistic {
            stat,
            column,
            bounds,
            equals_source,
            tolerance,
        } => {
            let expr = plan::statistic(*stat, column);
            result.element_count = Some(as_u64(&value(&plan::present(column))));
            compare_number(
                &mut result,
                &format!("{} of `{column}`", stat.name()),
                &value(&expr),
                *bounds,
                *tolerance,
                equals_source.then(|| source_value(source, &expr)),
            );
        }
        CheckKind::NotNull { columns, mostly } => {
            let mut total = 0u64;
            let mut per_column = serde_json::Map::new();
            let mut offending = Vec::new();
            for c in columns {
                let nulls = as_u64(&value(&plan::null_count(c)));
                total += nulls;
                per_column.insert(c.clone(), json!(nulls));
                if nulls > 0 {
                    offending.push(format!("{nulls} in `{c}`"));
                }
            }
            let elements = rows * columns.len() as u64;
            result.element_count = Some(elements);
            result.unexpected_count = Some(total);
            result.observed = json!({ "null_count": total, "by_column": per_column });
            result.expected = json!({ "mostly": mostly });
            if !within_mostly(total, elements, *mostly) {
                result.fail(format!(
                    "null values where {} allowed: {}",
                    if *mostly < 1.0 { "few are" } else { "none are" },
                    offending.join(", ")
                ));
            }
        }
        CheckKind::Unique { columns } => {
            let (present, distinct) = key_counts(columns, restored, context);
            let duplicates = present.saturating_sub(distinct);
            result.element_count = Some(present);
            result.unexpected_count = Some(duplicates);
            result.observed = json!({ "duplicate_rows": duplicates, "distinct_keys": distinct });
            result.expected = json!({ "duplicate_rows": 0 });
            if duplicates > 0 {
                result.fail(format!(
                    "{duplicates} row(s) repeat a key already seen in ({}); {distinct} distinct keys among {present} rows",
                    columns.join(", ")
                ));
            }
        }
        CheckKind::DistinctCount { columns, bounds } => {
            let (_, distinct) = key_counts(columns, restored, context);
            compare_number(
                &mut result,
                &format!("distinct count of ({})", columns.join(", ")),
                &ScalarValue::UInt64(Some(distinct)),
                *bounds,
                Tolerance::default(),
                None,
            );
        }
        CheckKind::Rows {
            rule,
            column,
            mostly,
        } => match unexpected(rule, column.as_deref(), context) {
            None => skip(&mut result, "the snapshot's newest commit time is unknown"),
            Some(predicate) => {
                let elements = as_u64(&value(
                    &column
                        .as_deref()
                        .map_or_else(plan::row_count, plan::present),
                ));
                let bad = as_u64(&value(&plan::count_where(&predicate)));
                result.element_count = Some(elements);
                result.unexpected_count = Some(bad);
                result.observed = json!({ "unexpected_count": bad, "element_count": elements });
                result.expected = json!({ "mostly": mostly, "unexpected": predicate });
                if !within_mostly(bad, elements, *mostly) {
                    let of = column
                        .as_deref()
                        .map_or("rows".to_string(), |c| format!("values of `{c}`"));
                    result.fail(format!(
                        "{bad} of {elements} {of} do not hold ({:.4}% unexpected, at most {:.4}% allowed)",
                        percent(bad, elements),
                        (1.0 - mostly) * 100.0
                    ));
                }
            }
        },
        CheckKind::Freshness { column, max_age } => {
            let newest = as_f64(&value(&plan::newest_seconds(column)));
            match (newest, context.commit_time) {
                (Some(newest), Some(commit)) => {
                    let age = commit.timestamp() as f64 - newest;
                    result.observed = json!({ "age_seconds": age, "newest_unix_seconds": newest });
                    result.expected = json!({ "max_age_seconds": max_age.as_secs_f64() });
                    if age > max_age.as_secs_f64() {
                        result.fail(format!(
                            "the newest `{column}` is {} older than the snapshot's newest commit, more than {}",
                            crate::primitives::duration::format_duration(std::time::Duration::from_secs_f64(age.max(0.0))),
                            crate::primitives::duration::format_duration(*max_age)
                        ));
                    }
                }
                (None, _) => result.fail(format!("`{column}` has no values")),
                (_, None) => skip(&mut result, "the snapshot's newest commit time is unknown"),
            }
        }
        CheckKind::Schema {
            required,
            forbidden,
            equals_source,
        } => schema(&mut result, required, forbidden, *equals_source, context),
        CheckKind::CustomSql { bounds, .. } => {
            match custom
                .iter()
                .find(|(id, _)| *id == check.id)
                .map(|(_, v)| v)
            {
                Some(Ok(v)) => compare_number(
                    &mut result,
                    "the query's result",
                    v,
                    *bounds,
                    Tolerance::default(),
                    None,
                ),
                Some(Err(e)) => result.fail(format!("the query failed: {e}")),
                None => skip(&mut result, "the query did not run"),
            }
        }
    }
    result
}

/// Rows with a key and distinct keys of a key set, from the scan's key aggregate or from the
/// key set's `GROUP BY`.
fn key_counts(columns: &[String], restored: &ScanValues, context: &Context) -> (u64, u64) {
    if let Some(expr) = keys::expr_for(columns, context) {
        return restored.get(&expr).and_then(keys::decode).unwrap_or((0, 0));
    }
    let (present, distinct) = plan::key_counts(columns);
    let get = |name: &str| restored.get(name).map_or(0, as_u64);
    (get(&present), get(&distinct))
}

fn skip(result: &mut CheckResult, reason: &str) {
    result.outcome = CheckOutcome::Skipped;
    result.message = Some(format!("not evaluated: {reason}"));
}

fn within_mostly(unexpected: u64, elements: u64, mostly: f64) -> bool {
    if unexpected == 0 {
        return true;
    }
    elements > 0 && (unexpected as f64) <= (1.0 - mostly) * elements as f64 + 1e-9
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn schema(
    result: &mut CheckResult,
    required: &[(String, Option<String>)],
    forbidden: &[String],
    equals_source: bool,
    context: &Context,
) {
    let have = &context.columns;
    let mut problems = Vec::new();
    for (name, wanted) in required {
        match (have.iter().find(|(n, _)| n == name), wanted) {
            (None, _) => problems.push(format!("required column `{name}` is missing")),
            (Some((_, t)), Some(w)) if t != w => {
                problems.push(format!("`{name}` is {t}, required {w}"))
            }
            _ => {}
        }
    }
    for name in forbidden {
        if have.iter().any(|(n, _)| n == name) {
            problems.push(format!("forbidden column `{name}` is present"));
        }
    }
    let as_map = |cols: &[(String, String)]| -> serde_json::Map<String, Value> {
        cols.iter().map(|(n, t)| (n.clone(), json!(t))).collect()
    };
    result.observed = Value::Object(as_map(have));
    let mut expected = serde_json::Map::new();
    if !required.is_empty() {
        expected.insert(
            "required".into(),
            required
                .iter()
                .map(|(n, t)| (n.clone(), json!(t)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
    }
    if !forbidden.is_empty() {
        expected.insert("forbidden".into(), json!(forbidden));
    }
    if equals_source {
        match &context.source_columns {
            Some(source) => {
                expected.insert("equals_source".into(), Value::Object(as_map(source)));
                if source != have {
                    let ours: Vec<String> = have.iter().map(|(n, t)| format!("{n} {t}")).collect();
                    let theirs: Vec<String> =
                        source.iter().map(|(n, t)| format!("{n} {t}")).collect();
                    problems.push(format!(
                        "the schema differs from the source's at the snapshot's version: restored ({}), source ({})",
                        ours.join(", "),
                        theirs.join(", ")
                    ));
                }
            }
            None => expected
                .insert("source_unavailable".into(), json!(true))
                .map_or((), |_| ()),
        }
    }
    result.expected = Value::Object(expected);
    if !problems.is_empty() {
        result.fail(problems.join("; "));
    }
}

/// Which source a comparison read: `at version 7`, or `as read now` for a live one.
fn at_version(version: Option<u64>) -> String {
    match version {
        Some(v) => format!("at version {v}"),
        None => "as read now".into(),
    }
}

/// What the source says for an expression, or why it cannot say.
enum SourceSays {
    Value {
        version: Option<u64>,
        value: ScalarValue,
    },
    Unavailable(String),
}

fn source_value(source: &SourceValues, expr: &str) -> SourceSays {
    match source {
        SourceValues::At {
            version, values, ..
        } => match values.get(expr) {
            Some(v) => SourceSays::Value {
                version: *version,
                value: v.clone(),
            },
            None => SourceSays::Unavailable("the source scan did not compute it".into()),
        },
        SourceValues::Unavailable(reason) => SourceSays::Unavailable(reason.clone()),
        SourceValues::NotNeeded => SourceSays::Unavailable("no source scan ran".into()),
    }
}

fn compare_number(
    result: &mut CheckResult,
    what: &str,
    observed: &ScalarValue,
    bounds: Bounds,
    tolerance: Tolerance,
    source: Option<SourceSays>,
) {
    result.observed = to_json(observed);
    let mut expected = serde_json::Map::new();
    let mut problems = Vec::new();
    let number = as_f64(observed);
    let observed_text = shown(observed);
    if let Some(min) = bounds.min {
        expected.insert("min".into(), json!(min));
        if number.is_none_or(|n| n < min) {
            problems.push(format!(
                "{what} is {observed_text}, below the minimum {min}"
            ));
        }
    }
    if let Some(max) = bounds.max {
        expected.insert("max".into(), json!(max));
        if number.is_none_or(|n| n > max) {
            problems.push(format!(
                "{what} is {observed_text}, above the maximum {max}"
            ));
        }
    }
    if let Some(equals) = bounds.equals {
        expected.insert("equals".into(), json!(equals));
        if number.is_none_or(|n| !tolerance.allows(n, equals)) {
            problems.push(format!("{what} is {observed_text}, not {equals}"));
        }
    }
    match source {
        None => {}
        Some(SourceSays::Value { version, value }) => {
            expected.insert("equals_source".into(), to_json(&value));
            expected.insert("source_version".into(), json!(version));
            if !same_number(observed, &value, tolerance) {
                let difference = match (as_f64(observed), as_f64(&value)) {
                    (Some(a), Some(b)) => format!(" (difference {})", trim_float(a - b)),
                    _ => String::new(),
                };
                problems.push(format!(
                    "{what} is {observed_text} in the restore but {} in the source {}{difference}",
                    shown(&value),
                    at_version(version)
                ));
            }
        }
        Some(SourceSays::Unavailable(reason)) => {
            expected.insert("equals_source".into(), Value::Null);
            expected.insert("source_unavailable".into(), json!(reason));
        }
    }
    result.expected = Value::Object(expected);
    if !problems.is_empty() {
        result.fail(problems.join("; "));
    }
}

/// Exact equality unless a tolerance is given; floating-point values may always differ by
/// rounding (relative 1e-9), since their order of addition depends on file layout.
fn same_number(a: &ScalarValue, b: &ScalarValue, tolerance: Tolerance) -> bool {
    let floats = matches!(
        a.data_type(),
        DataType::Float16 | DataType::Float32 | DataType::Float64
    );
    let tolerance = if floats {
        Tolerance {
            abs: tolerance.abs,
            rel: tolerance.rel.max(1e-9),
        }
    } else {
        tolerance
    };
    if tolerance != Tolerance::default()
        && let (Some(x), Some(y)) = (as_f64(a), as_f64(b))
    {
        return tolerance.allows(x, y);
    }
    a == b
}
