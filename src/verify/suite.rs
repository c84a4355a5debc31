//! A suite: the checks of a job, read from a TOML file with one `[[check]]` table per check.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::primitives::fields::{Fields, Located, Position, Problem, Problems, parse_document};

/// How much a failed check matters: `fail` makes the run fail, `warn` is reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fail,
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fail => "fail",
            Severity::Warn => "warn",
        }
    }
}

/// Bounds on a number; any may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub equals: Option<f64>,
}

impl Bounds {
    pub fn is_empty(&self) -> bool {
        self.min.is_none() && self.max.is_none() && self.equals.is_none()
    }
}

/// How close a number must be to the one it is compared with; exact when both are zero.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

impl Tolerance {
    pub(crate) fn allows(&self, a: f64, b: f64) -> bool {
        (a - b).abs() <= self.abs.max(self.rel * a.abs().max(b.abs()))
    }
}

/// A statistic of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Sum,
    Min,
    Max,
    Mean,
}

impl Stat {
    pub fn name(self) -> &'static str {
        match self {
            Stat::Sum => "sum",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Mean => "mean",
        }
    }

    /// The SQL aggregate function.
    pub(crate) fn function(self) -> &'static str {
        match self {
            Stat::Sum => "sum",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Mean => "avg",
        }
    }
}

/// A row-level condition: each row of the column either meets it or is unexpected.
#[derive(Debug, Clone, PartialEq)]
pub enum RowRule {
    /// Values within `[min, max]` (either bound optional).
    InRange { min: Option<f64>, max: Option<f64> },
    /// Values among these.
    InSet { values: Vec<String> },
    /// Values not among these.
    NotInSet { values: Vec<String> },
    /// Strings matching a regular expression (the whole value need not match; anchor it).
    MatchesRegex { pattern: String },
    /// Strings whose length (in characters) is within bounds.
    LengthBetween { min: Option<u64>, max: Option<u64> },
    /// Timestamps not after the snapshot's newest commit.
    NotInFuture,
    /// Rows for which a SQL boolean expression holds (a null result counts as unexpected).
    Condition { sql: String },
}

/// What a check asserts.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// The number of rows, within bounds and/or equal to the source's at the snapshot's version.
    RowCount { bounds: Bounds, equals_source: bool },
    /// The rows read equal the sum of `numRecords` in the log's file statistics.
    RowCountMatchesLog,
    /// A statistic of a column, within bounds and/or equal to the source's (with tolerance).
    Statistic {
        stat: Stat,
        column: String,
        bounds: Bounds,
        equals_source: bool,
        tolerance: Tolerance,
    },
    /// No nulls in the columns; with `mostly`, at least that fraction of values present.
    NotNull { columns: Vec<String>, mostly: f64 },
    /// No two rows share the same values in the columns (rows with a null key are not compared).
    Unique { columns: Vec<String> },
    /// The number of distinct values (of one column or a combination), within bounds.
    DistinctCount {
        columns: Vec<String>,
        bounds: Bounds,
    },
    /// Each non-null value of the column meets the rule; with `mostly`, at least that fraction.
    Rows {
        rule: RowRule,
        column: Option<String>,
        mostly: f64,
    },
    /// The newest value of a timestamp column is no older than `max_age` before the
    /// snapshot's newest commit.
    Freshness { column: String, max_age: Duration },
    /// Required columns (with types), forbidden columns, the source's schema.
    Schema {
        required: Vec<(String, Option<String>)>,
        forbidden: Vec<String>,
        equals_source: bool,
    },
    /// A SQL query over the restored table `t` returning one number, within bounds.
    CustomSql { sql: String, bounds: Bounds },
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::RowCount { .. } => "row_count",
            CheckKind::RowCountMatchesLog => "row_count_matches_log",
            CheckKind::Statistic { stat, .. } => stat.name(),
            CheckKind::NotNull { .. } => "not_null",
            CheckKind::Unique { .. } => "unique",
            CheckKind::DistinctCount { .. } => "distinct_count",
            CheckKind::Rows { rule, .. } => match rule {
                RowRule::InRange { .. } => "in_range",
                RowRule::InSet { .. } => "in_set",
                RowRule::NotInSet { .. } => "not_in_set",
                RowRule::MatchesRegex { .. } => "matches_regex",
                RowRule::LengthBetween { .. } => "length_between",
                RowRule::NotInFuture => "not_in_future",
                RowRule::Condition { .. } => "row_condition",
            },
            CheckKind::Freshness { .. } => "freshness",
            CheckKind::Schema { .. } => "schema",
            CheckKind::CustomSql { .. } => "custom_sql",
        }
    }

    /// The columns the check reads, each with the kind of type it needs.
    pub fn columns(&self) -> Vec<(&str, TypeNeed)> {
        match self {
            CheckKind::Statistic { stat, column, .. } => {
                let need = match stat {
                    Stat::Sum | Stat::Mean => TypeNeed::Numeric,
                    Stat::Min | Stat::Max => TypeNeed::Orderable,
                };
                vec![(column.as_str(), need)]
            }
            CheckKind::NotNull { columns, .. }
            | CheckKind::Unique { columns }
            | CheckKind::DistinctCount { columns, .. } => columns
                .iter()
                .map(|c| (c.as_str(), TypeNeed::Any))
                .collect(),
            CheckKind::Rows {
                rule,
                column: Some(column),
                ..
            } => {
                let need = match rule {
                    RowRule::InRange { .. } => TypeNeed::Numeric,
                    RowRule::MatchesRegex { .. } | RowRule::LengthBetween { .. } => {
                        TypeNeed::String
                    }
                    RowRule::NotInFuture => TypeNeed::Timestamp,
                    _ => TypeNeed::Any,
                };
                vec![(column.as_str(), need)]
            }
            CheckKind::Freshness { column, .. } => vec![(column.as_str(), TypeNeed::Timestamp)],
            _ => vec![],
        }
    }

    pub fn equals_source(&self) -> bool {
        matches!(
            self,
            CheckKind::RowCount {
                equals_source: true,
                ..
            } | CheckKind::Statistic {
                equals_source: true,
                ..
            } | CheckKind::Schema {
                equals_source: true,
                ..
            }
        )
    }
}

/// The kind of column type a check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeNeed {
    Any,
    Numeric,
    Orderable,
    String,
    Timestamp,
}

impl TypeNeed {
    /// Whether a Delta type (as the log writes it: `long`, `decimal(18,2)`, `string`, ...) fits.
    pub(crate) fn fits(self, delta_type: &str) -> bool {
        let numeric = matches!(
            delta_type,
            "byte" | "short" | "integer" | "long" | "float" | "double"
        ) || delta_type.starts_with("decimal");
        let temporal = matches!(delta_type, "timestamp" | "timestamp_ntz" | "date");
        match self {
            TypeNeed::Any => true,
            TypeNeed::Numeric => numeric,
            TypeNeed::Orderable => numeric || temporal || delta_type == "string",
            TypeNeed::String => delta_type == "string",
            TypeNeed::Timestamp => temporal,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            TypeNeed::Any => "any column",
            TypeNeed::Numeric => "a numeric column",
            TypeNeed::Orderable => "a numeric, string or date/time column",
            TypeNeed::String => "a string column",
            TypeNeed::Timestamp => "a timestamp or date column",
        }
    }
}

/// One check of a suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub id: String,
    pub severity: Severity,
    pub kind: CheckKind,
    /// Where the check's table starts in its file.
    pub at: Position,
}

/// The checks of a job, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Suite {
    pub checks: Vec<Check>,
}

impl Suite {
    /// Problems of checks whose columns the table lacks or whose types do not fit, as
    /// sentences naming the suite file and line; `columns` pairs names with Delta types.
    pub fn mismatches(&self, file: &Path, columns: &[(String, String)]) -> Vec<Problem> {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let mut out = Vec::new();
        for check in &self.checks {
            for (column, need) in check.kind.columns() {
                let message = match columns.iter().find(|(n, _)| n == column) {
                    None => format!(
                        "check `{}` reads column `{column}`, which the table does not have; its columns are: {}",
                        check.id,
                        names.join(", ")
                    ),
                    Some((_, t)) if !need.fits(t) => format!(
                        "check `{}` ({}) needs {} but `{column}` is {t}",
                        check.id,
                        check.kind.name(),
                        need.describe()
                    ),
                    Some(_) => continue,
                };
                out.push(Problem {
                    file: file.to_path_buf(),
                    at: check.at,
                    message,
                });
            }
        }
        out
    }
}

const KINDS: &str = "row_count, row_count_matches_log, sum, min, max, mean, not_null, unique, distinct_count, in_range, in_set, not_in_set, matches_regex, length_between, not_in_future, row_condition, freshness, schema, custom_sql";

/// Reads a suite file; every problem in it is reported at once.
pub fn load_suite(path: &Path) -> Result<Suite, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: path.to_path_buf(),
            at: Position { line: 1, column: 1 },
            message: format!("cannot read the suite file: {e}"),
        }]
    })?;
    parse_suite(path, &text)
}

/// Parses suite text; `file` is used in problem messages.
pub fn parse_suite(file: &Path, text: &str) -> Result<Suite, Vec<Problem>> {
    let mut p = Problems::new(file, text);
    let Some(doc) = parse_document(&mut p, text) else {
        return Err(p.into_vec());
    };
    let mut top = Fields::new(doc.as_table(), Position { line: 1, column: 1 }, "suite");
    let mut suite = Suite::default();
    match top.item("check", &p) {
        None => p.report(
            top.at(),
            "the suite has no checks; add `[[check]]` tables with `id` and `kind`",
        ),
        Some((item, at)) => match item.as_array_of_tables() {
            None => p.report(at, "`check` must be an array of tables: write `[[check]]`"),
            Some(tables) => {
                let mut first_line = std::collections::HashMap::new();
                for (i, table) in tables.iter().enumerate() {
                    let at = p.position_of(table.span());
                    let fields = Fields::new(table, at, format!("check #{}", i + 1));
                    if let Some(check) = read_check(fields, &mut p) {
                        if let Some(line) = first_line.get(&check.id) {
                            p.report(
                                check.at,
                                format!(
                                    "check id `{}` is used twice (first at line {line}); ids must be unique",
                                    check.id
                                ),
                            );
                        } else {
                            first_line.insert(check.id.clone(), check.at.line);
                        }
                        suite.checks.push(check);
                    }
                }
            }
        },
    }
    top.finish(&mut p);
    if p.is_empty() {
        Ok(suite)
    } else {
        Err(p.into_vec())
    }
}

/// Ids the drill uses for its own checks.
const RESERVED: [&str; 7] = [
    "structure",
    "fingerprint",
    "sample",
    "rpo",
    "rto",
    "source",
    "time_travel_window",
];

fn read_check(mut f: Fields, p: &mut Problems) -> Option<Check> {
    let id = f.required_string("id", "a name for the check, e.g. \"rows\"", p);
    if let Some(id) = &id {
        f.set_context(format!("check `{}`", id.value));
        if RESERVED.contains(&id.value.as_str()) {
            p.report(
                id.at,
                format!(
                    "check id `{}` is reserved for the drill's own checks ({}); choose another",
                    id.value,
                    RESERVED.join(", ")
                ),
            );
        }
    }
    let kind = f.required_string("kind", KINDS, p);
    let severity = match f.string("severity", p) {
        None => Some(Severity::Fail),
        Some(s) => match s.value.as_str() {
            "fail" => Some(Severity::Fail),
            "warn" => Some(Severity::Warn),
            other => {
                p.report(
                    s.at,
                    format!(
                        "{}: severity `{other}` is unknown; use \"fail\" or \"warn\"",
                        f.context()
                    ),
                );
                None
            }
        },
    };
    let kind_name = kind.as_ref().map(|k| k.value.clone());
    let kind = match kind_name.as_deref() {
        Some(name) => read_kind(name, &mut f, p).or_else(|| {
            if !KINDS.split(", ").any(|k| k == name) {
                let at = kind.as_ref().map_or(f.at(), |k| k.at);
                p.report(
                    at,
                    format!(
                        "{}: unknown kind `{name}`; known kinds: {KINDS}",
                        f.context()
                    ),
                );
            }
            None
        }),
        None => None,
    };
    let at = f.at();
    f.finish(p);
    Some(Check {
        id: id?.value,
        severity: severity?,
        kind: kind?,
        at,
    })
}

/// Reads the parameters of a kind; `None` (with problems reported) when they do not hold.
fn read_kind(name: &str, f: &mut Fields, p: &mut Problems) -> Option<CheckKind> {
    let stat = match name {
        "sum" => Some(Stat::Sum),
        "min" => Some(Stat::Min),
        "max" => Some(Stat::Max),
        "mean" => Some(Stat::Mean),
        _ => None,
    };
    let kind = match name {
        "row_count" => {
            let bounds = bounds(f, p);
            let equals_source = flag(f, "equals_source", p);
            needs_threshold(f, p, name, &bounds, equals_source)?;
            CheckKind::RowCount {
                bounds,
                equals_source,
            }
        }
        "row_count_matches_log" => CheckKind::RowCountMatchesLog,
        _ if stat.is_some() => {
            let column = f.required_string("column", "the column", p);
            let bounds = bounds(f, p);
            let equals_source = flag(f, "equals_source", p);
            let tolerance = Tolerance {
                abs: non_negative(f, "abs_tolerance", p).unwrap_or(0.0),
                rel: non_negative(f, "rel_tolerance", p).unwrap_or(0.0),
            };
            needs_threshold(f, p, name, &bounds, equals_source)?;
            CheckKind::Statistic {
                stat: stat?,
                column: column?.value,
                bounds,
                equals_source,
                tolerance,
            }
        }
        "not_null" => {
            let mostly = mostly(f, p);
            CheckKind::NotNull {
                columns: columns(f, p)?,
                mostly: mostly?,
            }
        }
        "unique" => CheckKind::Unique {
            columns: columns(f, p)?,
        },
        "distinct_count" => {
            let columns = columns(f, p);
            let bounds = bounds(f, p);
            needs_threshold(f, p, name, &bounds, false)?;
            CheckKind::DistinctCount {
                columns: columns?,
                bounds,
            }
        }
        "in_range" => {
            let b = bounds(f, p);
            if b.min.is_none() && b.max.is_none() {
                p.report(
                    f.at(),
                    format!(
                        "{}: an `in_range` check needs `min`, `max` or both",
                        f.context()
                    ),
                );
                return None;
            }
            rows(
                f,
                p,
                RowRule::InRange {
                    min: b.min,
                    max: b.max,
                },
                true,
            )?
        }
        "in_set" | "not_in_set" => {
            let values = f.strings("values", p);
            let values = match values {
                Some(v) if !v.value.is_empty() => v.value,
                _ => {
                    p.report(
                        f.at(),
                        format!(
                            "{}: `{name}` needs `values`, a non-empty list of strings",
                            f.context()
                        ),
                    );
                    return None;
                }
            };
            let rule = if name == "in_set" {
                RowRule::InSet { values }
            } else {
                RowRule::NotInSet { values }
            };
            rows(f, p, rule, true)?
        }
        "matches_regex" => {
            let pattern = f.required_string("pattern", "a regular expression", p)?;
            if let Err(e) = regex::Regex::new(&pattern.value) {
                p.report(
                    pattern.at,
                    format!("{}: invalid regular expression: {e}", f.context()),
                );
                return None;
            }
            rows(
                f,
                p,
                RowRule::MatchesRegex {
                    pattern: pattern.value,
                },
                true,
            )?
        }
        "length_between" => {
            let min = f.integer("min", p);
            let max = f.integer("max", p);
            if min.is_none() && max.is_none() {
                p.report(
                    f.at(),
                    format!(
                        "{}: a `length_between` check needs `min`, `max` or both",
                        f.context()
                    ),
                );
                return None;
            }
            if !ordered(f, p, &min, &max) {
                return None;
            }
            let rule = RowRule::LengthBetween {
                min: min.map(|v| v.value.max(0) as u64),
                max: max.map(|v| v.value.max(0) as u64),
            };
            rows(f, p, rule, true)?
        }
        "not_in_future" => rows(f, p, RowRule::NotInFuture, true)?,
        "row_condition" => {
            let sql = f.required_string(
                "condition",
                "a SQL boolean expression over the row's columns",
                p,
            )?;
            rows(f, p, RowRule::Condition { sql: sql.value }, false)?
        }
        "freshness" => {
            let column = f.required_string("column", "a timestamp column", p);
            let age = f.required_string("max_age", "a duration, e.g. \"26h\"", p);
            let max_age = match age {
                Some(a) => match crate::primitives::duration::parse_duration(&a.value) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        p.report(a.at, format!("{}: `max_age`: {e}", f.context()));
                        None
                    }
                },
                None => None,
            };
            CheckKind::Freshness {
                column: column?.value,
                max_age: max_age?,
            }
        }
        "schema" => {
            let required = f.table("required", format!("{} required", f.context()), p);
            let required = required.map(|mut r| {
                let mut out = Vec::new();
                for name in r.keys() {
                    let t = r.string_key(&name, p).map(|v| v.value);
                    out.push((name, t.filter(|t| !t.is_empty())));
                }
                out
            });
            let forbidden = f
                .strings("forbidden", p)
                .map(|v| v.value)
                .unwrap_or_default();
            let equals_source = flag(f, "equals_source", p);
            let required = required.unwrap_or_default();
            if required.is_empty() && forbidden.is_empty() && !equals_source {
                p.report(f.at(), format!("{}: a `schema` check needs `required`, `forbidden` or `equals_source = true`", f.context()));
                return None;
            }
            CheckKind::Schema {
                required,
                forbidden,
                equals_source,
            }
        }
        "custom_sql" => {
            let sql = f.required_string(
                "sql",
                "a query over the restored table `t` returning one number",
                p,
            );
            let bounds = bounds(f, p);
            needs_threshold(f, p, name, &bounds, false)?;
            CheckKind::CustomSql {
                sql: sql?.value,
                bounds,
            }
        }
        _ => return None,
    };
    Some(kind)
}

fn needs_threshold(
    f: &Fields,
    p: &mut Problems,
    kind: &str,
    bounds: &Bounds,
    equals_source: bool,
) -> Option<()> {
    if bounds.is_empty() && !equals_source {
        let source = if matches!(kind, "distinct_count" | "custom_sql") {
            ""
        } else {
            " or `equals_source = true`"
        };
        p.report(
            f.at(),
            format!(
                "{}: a `{kind}` check needs `min`, `max` or `equals`{source}",
                f.context()
            ),
        );
        return None;
    }
    Some(())
}

fn rows(f: &mut Fields, p: &mut Problems, rule: RowRule, with_column: bool) -> Option<CheckKind> {
    let column = if with_column {
        Some(f.required_string("column", "the column", p)?.value)
    } else {
        None
    };
    Some(CheckKind::Rows {
        rule,
        column,
        mostly: mostly(f, p)?,
    })
}

fn mostly(f: &mut Fields, p: &mut Problems) -> Option<f64> {
    match f.number("mostly", p) {
        None => Some(1.0),
        Some(m) if m.value > 0.0 && m.value <= 1.0 => Some(m.value),
        Some(m) => {
            p.report(
                m.at,
                format!(
                    "{}: `mostly` is a fraction above 0 and at most 1, found {}",
                    f.context(),
                    m.value
                ),
            );
            None
        }
    }
}

fn non_negative(f: &mut Fields, key: &'static str, p: &mut Problems) -> Option<f64> {
    let v = f.number(key, p)?;
    if v.value < 0.0 {
        p.report(
            v.at,
            format!("{}: `{key}` must not be negative", f.context()),
        );
        return None;
    }
    Some(v.value)
}

/// Reports a `max` below its `min`; true when they are in order (or either is absent).
fn ordered<T: PartialOrd + std::fmt::Display>(
    f: &Fields,
    p: &mut Problems,
    min: &Option<Located<T>>,
    max: &Option<Located<T>>,
) -> bool {
    match (min, max) {
        (Some(lo), Some(hi)) if lo.value > hi.value => {
            p.report(
                hi.at,
                format!(
                    "{}: `max` ({}) is below `min` ({})",
                    f.context(),
                    hi.value,
                    lo.value
                ),
            );
            false
        }
        _ => true,
    }
}

fn bounds(f: &mut Fields, p: &mut Problems) -> Bounds {
    let min = f.number("min", p);
    let max = f.number("max", p);
    let equals = f.number("equals", p);
    ordered(f, p, &min, &max);
    if let Some(eq) = &equals
        && (min.as_ref().is_some_and(|m| m.value > eq.value)
            || max.as_ref().is_some_and(|m| m.value < eq.value))
    {
        p.report(
            eq.at,
            format!(
                "{}: `equals` ({}) lies outside `min`/`max`",
                f.context(),
                eq.value
            ),
        );
    }
    Bounds {
        min: min.map(|v| v.value),
        max: max.map(|v| v.value),
        equals: equals.map(|v| v.value),
    }
}

fn flag(f: &mut Fields, key: &'static str, p: &mut Problems) -> bool {
    f.boolean(key, p).is_some_and(|b| b.value)
}

fn columns(f: &mut Fields, p: &mut Problems) -> Option<Vec<String>> {
    let present = f.strings("columns", p);
    match present {
        Some(Located { value, at }) if value.is_empty() => {
            p.report(at, format!("{}: `columns` is empty", f.context()));
            None
        }
        Some(c) => Some(c.value),
        None => {
            p.report(
                f.at(),
                format!(
                    "{}: missing `columns` (a list of column names)",
                    f.context()
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite, Vec<String>> {
        parse_suite(Path::new("suite.toml"), text)
            .map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn reads_the_four_kinds() {
        let suite = parse(
            r#"
[[check]]
id = "rows"
kind = "row_count"
min = 1
equals_source = true

[[check]]
id = "ids-present"
kind = "not_null"
columns = ["transaction_id"]

[[check]]
id = "ids-unique"
kind = "unique"
columns = ["transaction_id"]
severity = "warn"

[[check]]
id = "amount-total"
kind = "sum"
column = "amount"
equals_source = true
"#,
        )
        .unwrap();
        assert_eq!(suite.checks.len(), 4);
        assert_eq!(
            suite.checks[0].kind,
            CheckKind::RowCount {
                bounds: Bounds {
                    min: Some(1.0),
                    ..Default::default()
                },
                equals_source: true
            }
        );
        assert_eq!(suite.checks[2].severity, Severity::Warn);
        assert_eq!(
            suite.checks[3].kind.columns(),
            vec![("amount", TypeNeed::Numeric)]
        );
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let errors = parse(
            r#"
[[check]]
id = "rows"
kind = "row_cnt"

[[check]]
id = "sum"
kind = "sum"
colum = "amount"
min = "x"
"#,
        )
        .unwrap_err();
        let all = errors.join("\n");
        assert!(
            all.contains("suite.toml:4:8: check `rows`: unknown kind `row_cnt`"),
            "{all}"
        );
        assert!(
            all.contains(
                "suite.toml:9:1: check `sum`: unknown key `colum`; did you mean `column`?"
            ),
            "{all}"
        );
        assert!(
            all.contains("`min` must be a number, found string"),
            "{all}"
        );
        assert!(all.contains("missing `column`"), "{all}");
    }

    #[test]
    fn bad_parameters_are_reported_before_any_data_is_read() {
        let errors = parse(
            r#"
[[check]]
id = "re"
kind = "matches_regex"
column = "c"
pattern = "(unclosed"

[[check]]
id = "range"
kind = "in_range"
column = "c"

[[check]]
id = "bounds"
kind = "row_count"
min = 10
max = 5

[[check]]
id = "most"
kind = "not_null"
columns = ["c"]
mostly = 1.5

[[check]]
id = "structure"
kind = "row_count_matches_log"
"#,
        )
        .unwrap_err()
        .join("\n");
        assert!(
            errors.contains("suite.toml:6:11: check `re`: invalid regular expression"),
            "{errors}"
        );
        assert!(
            errors.contains("check `range`: an `in_range` check needs `min`, `max` or both"),
            "{errors}"
        );
        assert!(
            errors.contains("suite.toml:17:7: check `bounds`: `max` (5) is below `min` (10)"),
            "{errors}"
        );
        assert!(
            errors.contains("`mostly` is a fraction above 0 and at most 1, found 1.5"),
            "{errors}"
        );
        assert!(
            errors.contains("check id `structure` is reserved"),
            "{errors}"
        );
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let errors = parse(
            "[[check]]\nid = \"a\"\nkind = \"row_count\"\nmin = 1\n[[check]]\nid = \"a\"\nkind = \"row_count\"\nmin = 2\n",
        )
        .unwrap_err();
        assert!(errors[0].contains("used twice"), "{errors:?}");
    }
}
