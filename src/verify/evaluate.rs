//! Turning a suite into scan expressions, and scan values into check results.

use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::common::ScalarValue;
use serde::Serialize;
use serde_json::{Value, json};

use super::fingerprint::{self, Fingerprint};
use super::scan::{self, AggregatePlan, ScanValues};
use super::suite::{Bounds, Check, CheckKind, Severity, Suite};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    Passed,
    Failed,
    /// Could not be evaluated (e.g. the data could not be read); the reason is in `message`.
    Skipped,
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
        version: u64,
        values: ScanValues,
        /// The source's columns at that version.
        columns: Vec<String>,
    },
    Unavailable(String),
}

/// The single aggregate over the restored table: every check's expressions, and the
/// fingerprint of all columns (which reads every value, so every data file is decoded).
pub fn plan_restored(suite: &Suite, columns: &[String]) -> AggregatePlan {
    let mut plan = plan_checks(suite);
    plan.add(fingerprint::expr(columns));
    plan
}

/// The expressions of the suite's checks alone (the restored scan without the fingerprint).
pub fn plan_checks(suite: &Suite) -> AggregatePlan {
    let mut plan = AggregatePlan::default();
    plan.add(scan::row_count());
    for check in &suite.checks {
        match &check.kind {
            CheckKind::RowCount { .. } => {}
            CheckKind::Sum { column, .. } => {
                plan.add(scan::sum(column));
            }
            CheckKind::NotNull { columns } => {
                for c in columns {
                    plan.add(scan::null_count(c));
                }
            }
            CheckKind::Unique { columns } => {
                let (present, distinct) = scan::key_counts(columns);
                plan.add(present);
                plan.add(distinct);
            }
        }
    }
    plan
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
                plan.add(scan::row_count());
            }
            CheckKind::Sum {
                column,
                equals_source: true,
                ..
            } => {
                plan.add(scan::sum(column));
            }
            _ => {}
        }
    }
    plan.add(fingerprint::expr(columns));
    plan
}

/// The `fingerprint` check: the restored table's contents equal the source's at the
/// snapshot's version.
pub fn compare_fingerprints(
    restored: &ScanValues,
    restored_columns: &[String],
    source: &SourceValues,
) -> CheckResult {
    let mut result = CheckResult::new("fingerprint", "fingerprint", Severity::Fail);
    let ours = restored
        .get(&fingerprint::expr(restored_columns))
        .and_then(|v| Fingerprint::from_scalar(v, restored_columns));
    result.observed = json!(ours);
    let (version, theirs) = match source {
        SourceValues::At {
            version,
            values,
            columns,
        } => (
            *version,
            values
                .get(&fingerprint::expr(columns))
                .and_then(|v| Fingerprint::from_scalar(v, columns)),
        ),
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
        (Some(a), Some(b)) => {
            let mut parts = Vec::new();
            if a.rows != b.rows {
                parts.push(format!(
                    "{} rows restored, {} in the source",
                    a.rows, b.rows
                ));
            }
            let columns = a.differing_columns(&b);
            if !columns.is_empty() {
                parts.push(format!(
                    "columns whose values differ: {}",
                    columns.join(", ")
                ));
            }
            if parts.is_empty() {
                parts.push("values are arranged differently across rows".into());
            }
            result.fail(format!(
                "the restored contents differ from the source at version {version}: {}",
                parts.join("; ")
            ));
        }
        _ => result.fail("a fingerprint could not be computed".into()),
    }
    result
}

/// Evaluates every check of the suite from the scans' values.
pub fn evaluate(suite: &Suite, restored: &ScanValues, source: &SourceValues) -> Vec<CheckResult> {
    suite
        .checks
        .iter()
        .map(|check| evaluate_one(check, restored, source))
        .collect()
}

fn evaluate_one(check: &Check, restored: &ScanValues, source: &SourceValues) -> CheckResult {
    let mut result = CheckResult::new(&check.id, check.kind.name(), check.severity);
    let value = |expr: &str| restored.get(expr).cloned().unwrap_or(ScalarValue::Null);
    match &check.kind {
        CheckKind::RowCount {
            bounds,
            equals_source,
        } => {
            let rows = value(&scan::row_count());
            compare_number(
                &mut result,
                "row count",
                &rows,
                *bounds,
                equals_source.then(|| source_value(source, &scan::row_count())),
            );
        }
        CheckKind::Sum {
            column,
            bounds,
            equals_source,
        } => {
            let expr = scan::sum(column);
            compare_number(
                &mut result,
                &format!("sum of `{column}`"),
                &value(&expr),
                *bounds,
                equals_source.then(|| source_value(source, &expr)),
            );
        }
        CheckKind::NotNull { columns } => {
            let mut total = 0u64;
            let mut per_column = serde_json::Map::new();
            let mut offending = Vec::new();
            for c in columns {
                let nulls = as_u64(&value(&scan::null_count(c)));
                total += nulls;
                per_column.insert(c.clone(), json!(nulls));
                if nulls > 0 {
                    offending.push(format!("{nulls} in `{c}`"));
                }
            }
            result.observed = json!({ "null_count": total, "by_column": per_column });
            result.expected = json!({ "null_count": 0 });
            if total > 0 {
                result.fail(format!(
                    "null values where none are allowed: {}",
                    offending.join(", ")
                ));
            }
        }
        CheckKind::Unique { columns } => {
            let (present, distinct) = scan::key_counts(columns);
            let present = as_u64(&value(&present));
            let distinct = as_u64(&value(&distinct));
            let duplicates = present.saturating_sub(distinct);
            result.observed = json!({ "duplicate_rows": duplicates, "distinct_keys": distinct, "rows_with_key": present });
            result.expected = json!({ "duplicate_rows": 0 });
            if duplicates > 0 {
                result.fail(format!(
                    "{duplicates} row(s) repeat a key already seen in ({}); {distinct} distinct keys among {present} rows",
                    columns.join(", ")
                ));
            }
        }
    }
    result
}

/// What the source says for an expression, or why it cannot say.
enum SourceSays {
    Value { version: u64, value: ScalarValue },
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
    source: Option<SourceSays>,
) {
    result.observed = to_json(observed);
    let mut expected = serde_json::Map::new();
    let mut problems = Vec::new();
    let number = as_f64(observed);
    if let Some(min) = bounds.min {
        expected.insert("min".into(), json!(min));
        if number.is_none_or(|n| n < min) {
            problems.push(format!("{what} is {observed}, below the minimum {min}"));
        }
    }
    if let Some(max) = bounds.max {
        expected.insert("max".into(), json!(max));
        if number.is_none_or(|n| n > max) {
            problems.push(format!("{what} is {observed}, above the maximum {max}"));
        }
    }
    match source {
        None => {}
        Some(SourceSays::Value { version, value }) => {
            expected.insert("equals_source".into(), to_json(&value));
            expected.insert("source_version".into(), json!(version));
            if !same_number(observed, &value) {
                let difference = match (as_f64(observed), as_f64(&value)) {
                    (Some(a), Some(b)) => format!(" (difference {})", trim_float(a - b)),
                    _ => String::new(),
                };
                problems.push(format!(
                    "{what} is {observed} in the restore but {value} in the source at version {version}{difference}"
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

/// Exact equality, except that floating-point sums may differ by rounding (relative 1e-9),
/// since their order of addition depends on file layout.
fn same_number(a: &ScalarValue, b: &ScalarValue) -> bool {
    let floats = matches!(
        a.data_type(),
        DataType::Float16 | DataType::Float32 | DataType::Float64
    );
    if floats && let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) {
        return (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    }
    a == b
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A scalar as f64, if it is a number.
pub fn as_f64(v: &ScalarValue) -> Option<f64> {
    if v.is_null() {
        return None;
    }
    match v.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(f)) => Some(f),
        _ => None,
    }
}

fn as_u64(v: &ScalarValue) -> u64 {
    as_f64(v).map_or(0, |f| f.max(0.0) as u64)
}

/// A scalar as JSON: integers stay integers, other numbers become JSON numbers, the rest text.
pub fn to_json(v: &ScalarValue) -> Value {
    match v {
        _ if v.is_null() => Value::Null,
        ScalarValue::Int8(Some(i)) => json!(i),
        ScalarValue::Int16(Some(i)) => json!(i),
        ScalarValue::Int32(Some(i)) => json!(i),
        ScalarValue::Int64(Some(i)) => json!(i),
        ScalarValue::UInt8(Some(i)) => json!(i),
        ScalarValue::UInt16(Some(i)) => json!(i),
        ScalarValue::UInt32(Some(i)) => json!(i),
        ScalarValue::UInt64(Some(i)) => json!(i),
        _ => match as_f64(v) {
            Some(f) => json!(f),
            None => json!(v.to_string()),
        },
    }
}
