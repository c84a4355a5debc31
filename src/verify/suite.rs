//! A suite: the checks of a job, read from a TOML file with one `[[check]]` table per check.

use std::path::Path;

use serde::Serialize;

use crate::config::fields::{Fields, Located, Position, Problem, Problems, parse_document};

/// How much a failed check matters: `fail` makes the run fail, `warn` is reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Bounds on a number; either may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// What a check asserts.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// The number of rows, within bounds and/or equal to the source's at the snapshot's version.
    RowCount { bounds: Bounds, equals_source: bool },
    /// The sum of a numeric column, within bounds and/or equal to the source's.
    Sum {
        column: String,
        bounds: Bounds,
        equals_source: bool,
    },
    /// No nulls in any of the columns.
    NotNull { columns: Vec<String> },
    /// No two rows share the same values in the columns (rows with a null key are not compared).
    Unique { columns: Vec<String> },
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::RowCount { .. } => "row_count",
            CheckKind::Sum { .. } => "sum",
            CheckKind::NotNull { .. } => "not_null",
            CheckKind::Unique { .. } => "unique",
        }
    }

    /// The columns the check reads.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            CheckKind::RowCount { .. } => vec![],
            CheckKind::Sum { column, .. } => vec![column.as_str()],
            CheckKind::NotNull { columns } | CheckKind::Unique { columns } => {
                columns.iter().map(String::as_str).collect()
            }
        }
    }

    pub fn equals_source(&self) -> bool {
        matches!(
            self,
            CheckKind::RowCount {
                equals_source: true,
                ..
            } | CheckKind::Sum {
                equals_source: true,
                ..
            }
        )
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

const KINDS: &str = "row_count, sum, not_null, unique";

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
                for (i, table) in tables.iter().enumerate() {
                    let at = p.position_of(table.span());
                    let fields = Fields::new(table, at, format!("check #{}", i + 1));
                    if let Some(check) = read_check(fields, &mut p) {
                        if let Some(first) = suite.checks.iter().find(|c| c.id == check.id) {
                            p.report(
                                check.at,
                                format!(
                                    "check id `{}` is used twice (first at line {}); ids must be unique",
                                    check.id, first.at.line
                                ),
                            );
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

fn read_check(mut f: Fields, p: &mut Problems) -> Option<Check> {
    let id = f.required_string("id", "a name for the check, e.g. \"rows\"", p);
    if let Some(id) = &id {
        f.set_context(format!("check `{}`", id.value));
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
    let kind = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("row_count") => {
            let bounds = bounds(&mut f, p);
            let equals_source = flag(&mut f, "equals_source", p);
            Some(CheckKind::RowCount {
                bounds,
                equals_source,
            })
        }
        Some("sum") => {
            let column = f.required_string("column", "the column to add up", p);
            let bounds = bounds(&mut f, p);
            let equals_source = flag(&mut f, "equals_source", p);
            column.map(|c| CheckKind::Sum {
                column: c.value,
                bounds,
                equals_source,
            })
        }
        Some("not_null") => columns(&mut f, p).map(|columns| CheckKind::NotNull { columns }),
        Some("unique") => columns(&mut f, p).map(|columns| CheckKind::Unique { columns }),
        Some(other) => {
            let at = kind.as_ref().map_or(f.at(), |k| k.at);
            p.report(
                at,
                format!(
                    "{}: unknown kind `{other}`; known kinds: {KINDS}",
                    f.context()
                ),
            );
            None
        }
        None => None,
    };
    if let Some(kind) = &kind
        && let CheckKind::RowCount {
            bounds: Bounds {
                min: None,
                max: None,
            },
            equals_source: false,
        }
        | CheckKind::Sum {
            bounds: Bounds {
                min: None,
                max: None,
            },
            equals_source: false,
            ..
        } = kind
    {
        p.report(
            f.at(),
            format!(
                "{}: a `{}` check needs `min`, `max` or `equals_source = true`",
                f.context(),
                kind.name()
            ),
        );
    }
    let at = f.at();
    f.finish(p);
    Some(Check {
        id: id?.value,
        severity: severity?,
        kind: kind?,
        at,
    })
}

fn bounds(f: &mut Fields, p: &mut Problems) -> Bounds {
    let min = f.number("min", p);
    let max = f.number("max", p);
    if let (Some(lo), Some(hi)) = (&min, &max)
        && lo.value > hi.value
    {
        p.report(
            hi.at,
            format!(
                "{}: `max` ({}) is below `min` ({})",
                f.context(),
                hi.value,
                lo.value
            ),
        );
    }
    Bounds {
        min: min.map(|v| v.value),
        max: max.map(|v| v.value),
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
                    max: None
                },
                equals_source: true
            }
        );
        assert_eq!(suite.checks[2].severity, Severity::Warn);
        assert_eq!(suite.checks[3].kind.columns(), vec!["amount"]);
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
    fn duplicate_ids_are_refused() {
        let errors = parse(
            "[[check]]\nid = \"a\"\nkind = \"row_count\"\nmin = 1\n[[check]]\nid = \"a\"\nkind = \"row_count\"\nmin = 2\n",
        )
        .unwrap_err();
        assert!(errors[0].contains("used twice"), "{errors:?}");
    }
}
