//! The one-scan compiler: every column check of a suite becomes an expression of a single
//! DataFusion aggregate over the table, identical expressions computed once.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::Array;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::SessionStateBuilder;
use deltalake::datafusion::prelude::SessionConfig;

use deltalake::datafusion::logical_expr::function::AccumulatorArgs;
use deltalake::datafusion::physical_expr::expressions::Literal;

use super::suite::Stat;
use deltalake::datafusion::prelude::SessionContext;

/// The name the table has in every query.
pub const TABLE: &str = "t";

/// Quotes a column name for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The aggregate expressions of one scan, without repeats. Adding is constant time, so a suite
/// of thousands of checks plans in linear time.
#[derive(Debug, Clone, Default)]
pub struct AggregatePlan {
    exprs: Vec<String>,
    known: std::collections::HashSet<String>,
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
    pub fn add_key_set(&mut self, columns: &[String]) {
        if !self.key_sets.iter().any(|k| k == columns) {
            self.key_sets.push(columns.to_vec());
        }
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
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A statistic of a column.
pub fn statistic(stat: Stat, column: &str) -> String {
    format!("{}({})", stat.function(), ident(column))
}

/// The number of non-null values of a column.
pub fn present(column: &str) -> String {
    format!("count({})", ident(column))
}

/// The number of rows for which a predicate holds.
pub fn count_where(predicate: &str) -> String {
    format!("count(*) FILTER (WHERE {predicate})")
}

/// The newest value of a date/time column, in Unix seconds.
pub fn newest_seconds(column: &str) -> String {
    format!("to_unixtime(max({}))", ident(column))
}

/// A predicate selecting the rows whose key occurs more than once.
pub fn duplicated_keys(columns: &[String]) -> String {
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
pub fn key_counts(columns: &[String]) -> (String, String) {
    let list = columns.join(", ");
    (
        format!("rows_with_key({list})"),
        format!("distinct_keys({list})"),
    )
}

/// The query counting a key set: one `GROUP BY` over the key columns only.
pub fn key_set_sql(columns: &[String]) -> String {
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
    values: std::collections::HashMap<String, ScalarValue>,
}

impl ScanValues {
    pub fn get(&self, expr: &str) -> Option<&ScalarValue> {
        self.values.get(expr)
    }
}

/// A DataFusion session for verification scans, with restore-drill's functions registered.
/// Answering aggregates from file statistics is turned off: a verification must read the data,
/// not the log's claims about it.
pub fn session() -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_config(SessionConfig::new())
        .with_default_features()
        .build();
    let rules: Vec<_> = state
        .physical_optimizers()
        .iter()
        .filter(|r| r.name() != "aggregate_statistics")
        .cloned()
        .collect();
    let state = SessionStateBuilder::new_from_existing(state)
        .with_physical_optimizer_rules(rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udaf(super::fingerprint::udaf());
    ctx.register_udaf(super::keys::udaf());
    ctx.register_udf(super::sample::key_hash_udf());
    ctx.register_udaf(super::sample::collect_udaf());
    ctx
}

/// Runs the plan's single aggregate over the table.
pub async fn run(plan: &AggregatePlan, table: &DeltaTable) -> Result<ScanValues, DataFusionError> {
    if plan.is_empty() {
        return Ok(ScanValues::default());
    }
    let ctx = session();
    let provider = crate::table::provider(&ctx, table).await?;
    ctx.register_table(TABLE, provider)?;
    let mut values = std::collections::HashMap::new();
    if !plan.exprs.is_empty() {
        let row = aggregate_row(&ctx, &plan.exprs).await?;
        values.extend(plan.exprs.iter().cloned().zip(row));
    }
    for keys in &plan.key_sets {
        let (rows, distinct) = key_counts(keys);
        let row = first_row(&ctx, &key_set_sql(keys)).await?;
        values.insert(distinct, row[0].clone());
        values.insert(rows, row[1].clone());
    }
    Ok(ScanValues { values })
}

/// Computes `exprs` in one aggregate over the table: the same result as `SELECT exprs FROM t`
/// (see [`AggregatePlan::sql`]), planned in time linear in the number of expressions. Each
/// expression is parsed on its own; the aggregate calls inside them are computed once each in
/// one aggregate (no projection over it: planning a wide projection costs time quadratic in its
/// width), and the few expressions that compute on aggregates (`to_unixtime(max(c))`) are then
/// evaluated over the aggregate's one row.
async fn aggregate_row(
    ctx: &SessionContext,
    exprs: &[String],
) -> Result<Vec<ScalarValue>, DataFusionError> {
    use deltalake::datafusion::common::Column;
    use deltalake::datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    use deltalake::datafusion::dataframe::DataFrame;
    use deltalake::datafusion::datasource::MemTable;
    use deltalake::datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, Projection};

    let table = ctx.table(TABLE).await?;
    let schema = table.schema().clone();
    let mut aggregates: Vec<Expr> = Vec::new();
    let mut index: std::collections::HashMap<Expr, usize> = std::collections::HashMap::new();
    // The position of an aggregate call in the one aggregate, added when new.
    let mut intern = |call: Expr| -> usize {
        let next = aggregates.len();
        *index.entry(call.clone()).or_insert_with(|| {
            aggregates.push(call.alias(format!("g{next}")));
            next
        })
    };
    // Per expression: the aggregate it is, or what it computes on aggregates.
    let mut outputs: Vec<Result<usize, Expr>> = Vec::with_capacity(exprs.len());
    for text in exprs {
        // `count(*)` comes back as an alias of `count(1)`: the name does not matter here.
        let expr = ctx.parse_sql_expr(text, &schema)?.unalias_nested().data;
        if matches!(expr, Expr::AggregateFunction(_)) {
            outputs.push(Ok(intern(expr)));
            continue;
        }
        let over_aggregates = expr
            .transform_down(|e| {
                if !matches!(e, Expr::AggregateFunction(_)) {
                    return Ok(Transformed::no(e));
                }
                Ok(Transformed::new(
                    Expr::Column(Column::new_unqualified(format!("g{}", intern(e)))),
                    true,
                    TreeNodeRecursion::Jump,
                ))
            })?
            .data;
        outputs.push(Err(over_aggregates));
    }
    let aggregate = Aggregate::try_new(
        Arc::new(table.into_unoptimized_plan()),
        Vec::new(),
        aggregates,
    )?;
    let batches = DataFrame::new(ctx.state(), LogicalPlan::Aggregate(aggregate))
        .collect()
        .await?;
    let batch = batches
        .into_iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| DataFusionError::Internal("the aggregate returned no row".into()))?;
    let derived: Vec<Expr> = outputs
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().err().map(|e| e.clone().alias(format!("d{i}"))))
        .collect();
    let mut derived_values = std::collections::HashMap::new();
    if !derived.is_empty() {
        let names: Vec<String> = derived
            .iter()
            .map(|e| e.schema_name().to_string())
            .collect();
        let row = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
        let input = ctx.read_table(Arc::new(row))?.into_unoptimized_plan();
        let projection = Projection::try_new(derived, Arc::new(input))?;
        let computed = DataFrame::new(ctx.state(), LogicalPlan::Projection(projection))
            .collect()
            .await?;
        if let Some(first) = computed.iter().find(|b| b.num_rows() > 0) {
            for (name, column) in names.into_iter().zip(first.columns()) {
                derived_values.insert(name, ScalarValue::try_from_array(column, 0)?);
            }
        }
    }
    outputs
        .iter()
        .enumerate()
        .map(|(i, o)| match o {
            Ok(at) => ScalarValue::try_from_array(batch.column(*at), 0),
            Err(_) => derived_values
                .remove(&format!("d{i}"))
                .ok_or_else(|| DataFusionError::Internal(format!("no value for {}", exprs[i]))),
        })
        .collect()
}

async fn first_row(ctx: &SessionContext, sql: &str) -> Result<Vec<ScalarValue>, DataFusionError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| DataFusionError::Internal("the aggregate returned no row".into()))?;
    batch
        .columns()
        .iter()
        .map(|column: &Arc<dyn Array>| ScalarValue::try_from_array(column, 0))
        .collect()
}

/// The first value of the first row of a query, e.g. a `custom_sql` check's number.
pub async fn single_value(ctx: &SessionContext, sql: &str) -> Result<ScalarValue, DataFusionError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| DataFusionError::Plan("the query returned no row".into()))?;
    if batch.num_columns() != 1 {
        return Err(DataFusionError::Plan(format!(
            "the query must return one column, it returned {}",
            batch.num_columns()
        )));
    }
    ScalarValue::try_from_array(batch.column(0), 0)
}

/// The rows of a query as JSON objects of text values; `redact`ed columns are masked.
pub async fn rows_as_json(
    ctx: &SessionContext,
    sql: &str,
    redact: &[String],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, DataFusionError> {
    use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
    let batches = ctx.sql(sql).await?.collect().await?;
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for batch in &batches {
        let schema = batch.schema();
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let mut m = serde_json::Map::new();
            for (i, field) in schema.fields().iter().enumerate() {
                let value = if redact.iter().any(|r| r == field.name()) {
                    serde_json::Value::String(super::sample::REDACTED.into())
                } else if batch.column(i).is_null(row) {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(formatters[i].value(row).to_string())
                };
                m.insert(field.name().clone(), value);
            }
            out.push(m);
        }
    }
    Ok(out)
}
