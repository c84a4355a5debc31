//! Running the one-scan plan: a DataFusion session with restore-drill's functions, the scan
//! of a table, and the single-value and example-row queries evaluated after it.

use std::sync::Arc;

use deltalake::arrow::array::Array;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::SessionStateBuilder;
use deltalake::datafusion::prelude::SessionConfig;

use deltalake::datafusion::prelude::SessionContext;

use super::plan::{AggregatePlan, ScanValues, TABLE, key_counts, key_set_sql};

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
    ctx.register_udaf(super::keys::hashed_udaf());
    ctx.register_udf(super::sample::key_hash_udf());
    ctx.register_udaf(super::sample::collect_udaf());
    ctx
}

/// Runs the plan's single aggregate over the table registered in `ctx` (a [`session`]) as
/// [`TABLE`].
pub async fn run(
    plan: &AggregatePlan,
    ctx: &SessionContext,
) -> Result<ScanValues, DataFusionError> {
    if plan.is_empty() {
        return Ok(ScanValues::default());
    }
    let mut values = std::collections::HashMap::new();
    if !plan.exprs().is_empty() {
        let row = aggregate_row(ctx, plan.exprs()).await?;
        values.extend(plan.exprs().iter().cloned().zip(row));
    }
    for keys in plan.key_sets() {
        let (rows, distinct) = key_counts(keys);
        let row = first_row(ctx, &key_set_sql(keys)).await?;
        values.insert(distinct, row[0].clone());
        values.insert(rows, row[1].clone());
    }
    Ok(ScanValues::new(values))
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
pub(crate) async fn single_value(
    ctx: &SessionContext,
    sql: &str,
) -> Result<ScalarValue, DataFusionError> {
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
pub(crate) async fn rows_as_json(
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
