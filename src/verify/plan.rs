//! The one-scan plan: every column check of a suite becomes an expression of a single
//! DataFusion aggregate over the table, identical expressions computed once; the SQL text of
//! those expressions, and the values a scan answers them with.

use std::collections::{HashMap, HashSet};

use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::logical_expr::function::AccumulatorArgs;
use deltalake::datafusion::physical_expr::expressions::Literal;

use super::suite::Stat;

/// The name the table has in every query.
pub(crate) const TABLE: &str = "t";

/// Quotes a column name for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The aggregate expressions of one scan, without repeats. Adding is constant time, so a suite
/// of thousands of checks plans in linear time.
#[derive(Debug, Clone, Default)]
pub struct AggregatePlan {
    exprs: Vec<String>,
    known: HashSet<String>,
    /// Key sets counted by a `GROUP BY` each (shared by every check on the same keys).
    key_sets: Vec<Vec<String>>,
}

impl AggregatePlan {
    /// Adds an expression unless the identical one is already there; returns it for lookup.
    pub fn add(&mut self, expr: String) -> String {
        if self.known.insert(expr.clone()) {
            self.exprs.push(expr.clone());
        }
        expr
    }

    /// Adds a key set to count, unless the same set is already there.
    pub(crate) fn add_key_set(&mut self, columns: &[String]) {
        if !self.key_sets.iter().any(|k| k == columns) {
            self.key_sets.push(columns.to_vec());
        }
    }

    /// The aggregate expressions, in the order they were added.
    pub(crate) fn exprs(&self) -> &[String] {
        &self.exprs
    }

    /// The key sets to count.
    pub(crate) fn key_sets(&self) -> &[Vec<String>] {
        &self.key_sets
    }

    pub fn is_empty(&self) -> bool {
        self.exprs.is_empty() && self.key_sets.is_empty()
    }

    /// Every statement the plan runs: the aggregate, then one `GROUP BY` per key set.
    pub fn queries(&self) -> Vec<String> {
        std::iter::once(self.sql())
            .chain(self.key_sets.iter().map(|k| key_set_sql(k)))
            .collect()
    }

    /// The single SQL statement of the scan.
    pub fn sql(&self) -> String {
        let select: Vec<String> = self
            .exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS a{i}"))
            .collect();
        format!("SELECT {} FROM {TABLE}", select.join(", "))
    }
}

/// `count(*)`.
pub fn row_count() -> String {
    "count(*)".into()
}

/// An aggregate's argument that is an integer literal (e.g. a bound passed in the SQL).
pub(crate) fn integer_argument(args: &AccumulatorArgs, index: usize) -> Option<i64> {
    let e = args.exprs.get(index)?.downcast_ref::<Literal>()?;
    match e
        .value()
        .cast_to(&deltalake::arrow::datatypes::DataType::Int64)
        .ok()?
    {
        ScalarValue::Int64(v) => v,
        _ => None,
    }
}

/// A string as a SQL literal.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A statistic of a column.
pub(crate) fn statistic(stat: Stat, column: &str) -> String {
    format!("{}({})", stat.function(), ident(column))
}

/// The number of non-null values of a column.
pub fn present(column: &str) -> String {
    format!("count({})", ident(column))
}

/// The number of rows for which a predicate holds.
pub(crate) fn count_where(predicate: &str) -> String {
    format!("count(*) FILTER (WHERE {predicate})")
}

/// The newest value of a date/time column, in Unix seconds.
pub(crate) fn newest_seconds(column: &str) -> String {
    format!("to_unixtime(max({}))", ident(column))
}

/// A predicate selecting the rows whose key occurs more than once.
pub(crate) fn duplicated_keys(columns: &[String]) -> String {
    let keys: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let keys = keys.join(", ");
    format!("({keys}) IN (SELECT {keys} FROM {TABLE} GROUP BY {keys} HAVING count(*) > 1)")
}

/// The number of nulls in a column.
pub fn null_count(column: &str) -> String {
    format!("count(*) FILTER (WHERE {} IS NULL)", ident(column))
}

/// The names under which a key set's counts are found in the scan values: rows whose key
/// columns are all present, and the distinct keys among them. Key sets are counted by a
/// `GROUP BY` of their own (see `AggregatePlan::add_key_set`).
pub(crate) fn key_counts(columns: &[String]) -> (String, String) {
    let list = columns.join(", ");
    (
        format!("rows_with_key({list})"),
        format!("distinct_keys({list})"),
    )
}

/// The query counting a key set: one `GROUP BY` over the key columns only.
pub(crate) fn key_set_sql(columns: &[String]) -> String {
    let keys: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let present: Vec<String> = keys.iter().map(|k| format!("{k} IS NOT NULL")).collect();
    format!(
        "SELECT count(*) AS distinct_keys, sum(n) AS rows_with_key FROM (SELECT count(*) AS n FROM {TABLE} WHERE {} GROUP BY {}) AS keys",
        present.join(" AND "),
        keys.join(", ")
    )
}

/// The result row of a scan, by expression.
#[derive(Debug, Clone, Default)]
pub struct ScanValues {
    values: HashMap<String, ScalarValue>,
}

impl ScanValues {
    pub fn new(values: HashMap<String, ScalarValue>) -> Self {
        Self { values }
    }

    pub fn get(&self, expr: &str) -> Option<&ScalarValue> {
        self.values.get(expr)
    }
}
