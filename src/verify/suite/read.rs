//! Reading a suite file: one `[[check]]` table per check, every problem reported at once with
//! its line and column.

use std::path::Path;

use super::{Bounds, Check, CheckKind, RowRule, Severity, Stat, Suite, Tolerance};
use crate::primitives::fields::{Fields, Located, Position, Problem, Problems, parse_document};

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
    let table = f.string("table", p).map(|t| t.value);
    let severity = read_severity(&mut f, p);
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
        table,
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

/// `severity`: `fail` (the default) or `warn`.
pub(crate) fn read_severity(f: &mut Fields, p: &mut Problems) -> Option<Severity> {
    match f.string("severity", p) {
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
    }
}
