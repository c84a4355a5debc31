//! A suite: the checks of a job, read from a TOML file with one `[[check]]` table per check
//! (`read.rs`), and whether they fit a table's columns.

mod read;

pub(crate) use read::read_severity;
pub use read::{load_suite, parse_suite};

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::primitives::fields::{Position, Problem};

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
                    RowRule::InSet { .. }
                    | RowRule::NotInSet { .. }
                    | RowRule::Condition { .. } => TypeNeed::Any,
                };
                vec![(column.as_str(), need)]
            }
            CheckKind::Freshness { column, .. } => vec![(column.as_str(), TypeNeed::Timestamp)],
            // Row counts, schemas and queries name no column the scan reads; a row rule without
            // a column is a SQL condition over the whole row.
            CheckKind::RowCount { .. }
            | CheckKind::RowCountMatchesLog
            | CheckKind::Rows { column: None, .. }
            | CheckKind::Schema { .. }
            | CheckKind::CustomSql { .. } => vec![],
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
    /// The table the check reads (`schema.name`), for a job whose snapshots hold a database.
    pub table: Option<String>,
    /// Where the check's table starts in its file.
    pub at: Position,
}

/// The checks of a job, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Suite {
    pub checks: Vec<Check>,
}

impl Suite {
    /// The tables the checks name, in the order they are first named.
    pub fn tables(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for table in self.checks.iter().filter_map(|c| c.table.as_deref()) {
            if !out.contains(&table) {
                out.push(table);
            }
        }
        out
    }

    /// The checks that read `table`.
    pub fn for_table(&self, table: &str) -> Suite {
        Suite {
            checks: self
                .checks
                .iter()
                .filter(|c| c.table.as_deref() == Some(table))
                .cloned()
                .collect(),
        }
    }
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
