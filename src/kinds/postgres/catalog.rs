//! What a PostgreSQL database holds, read from its catalog: its tables and their columns.

use super::copy::{PgColumn, db_error};

/// A table (ordinary or partitioned) and its columns in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTableInfo {
    pub schema: String,
    pub name: String,
    pub columns: Vec<PgColumn>,
}

impl PgTableInfo {
    /// `schema.name`, as suites name tables.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Every user table of the database `client` is connected to, by `schema.name`.
pub async fn tables(client: &tokio_postgres::Client) -> Result<Vec<PgTableInfo>, String> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.atttypmod
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE c.relkind IN ('r', 'p')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
             ORDER BY n.nspname, c.relname, a.attnum",
            &[],
        )
        .await
        .map_err(|e| format!("reading the catalog: {}", db_error(&e)))?;
    let mut out: Vec<PgTableInfo> = Vec::new();
    for row in rows {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        if out
            .last()
            .is_none_or(|t| t.schema != schema || t.name != name)
        {
            out.push(PgTableInfo {
                schema,
                name,
                columns: Vec::new(),
            });
        }
        let column: Option<String> = row.get(2);
        if let Some(column) = column {
            let oid: u32 = row.get(4);
            out.last_mut()
                .expect("pushed above")
                .columns
                .push(PgColumn {
                    name: column,
                    type_name: row.get(3),
                    type_oid: oid,
                    typmod: row.get(5),
                });
        }
    }
    Ok(out)
}

/// A table's name as a suite writes it (`schema.table`, or `table` in `public`) as schema and
/// table.
pub fn split_name(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or(("public", name))
}

/// Finds `name` (`schema.table`, or `table` in `public`) among `tables`.
pub fn find<'a>(tables: &'a [PgTableInfo], name: &str) -> Option<&'a PgTableInfo> {
    let (schema, table) = split_name(name);
    tables
        .iter()
        .find(|t| t.schema == schema && t.name == table)
}

/// How many heap pages `table` has (partitioned tables: none of their own).
pub async fn blocks(client: &tokio_postgres::Client, table: &PgTableInfo) -> Result<u64, String> {
    let relation = super::copy::quote_qualified(&table.schema, &table.name);
    let row = client
        .query_one(
            "SELECT pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint",
            &[&relation],
        )
        .await
        .map_err(|e| format!("the size of {relation}: {}", db_error(&e)))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// The smallest and largest value of the integer column `column` of `table`, when a valid B-tree
/// index leads with it: PostgreSQL answers from the index's ends without reading the table.
pub async fn indexed_range(
    client: &tokio_postgres::Client,
    table: &PgTableInfo,
    column: &str,
) -> Option<(i64, i64)> {
    let integer = table.columns.iter().any(|c| {
        c.name == column && matches!(c.type_name.as_str(), "smallint" | "integer" | "bigint")
    });
    if !integer {
        return None;
    }
    let relation = super::copy::quote_qualified(&table.schema, &table.name);
    let indexed = client
        .query_opt(
            "SELECT 1 FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = $1::text::regclass AND a.attname = $2 AND i.indisvalid AND i.indpred IS NULL
             LIMIT 1",
            &[&relation, &column],
        )
        .await
        .ok()??;
    drop(indexed);
    let sql = format!(
        "SELECT min({c})::bigint, max({c})::bigint FROM {relation}",
        c = super::copy::quote_ident(column)
    );
    let row = client.query_one(&sql, &[]).await.ok()?;
    Some((row.get::<_, Option<i64>>(0)?, row.get::<_, Option<i64>>(1)?))
}

/// The schema objects of a database, each by a name that is the same on every server (`column
/// public.orders.id`) with its definition (`bigint not null`): tables, columns and their types,
/// constraints (primary keys, unique, foreign keys, checks), indexes, sequences and extensions.
pub async fn schema(
    client: &tokio_postgres::Client,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    const USER: &str =
        "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
    let sql = format!(
        "SELECT 'table ' || n.nspname || '.' || c.relname, ''
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND {USER}
         UNION ALL
         SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname,
                format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {USER}
         UNION ALL
         SELECT 'constraint ' || n.nspname || '.' || c.relname || '.' || con.conname, pg_get_constraintdef(con.oid)
           FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE {USER}
         UNION ALL
         SELECT 'index ' || n.nspname || '.' || i.relname, pg_get_indexdef(i.oid)
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
          WHERE {USER}
         UNION ALL
         SELECT 'sequence ' || n.nspname || '.' || c.relname, format_type(s.seqtypid, NULL) || ' increment ' || s.seqincrement
           FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE {USER}
         UNION ALL
         SELECT 'extension ' || extname, '' FROM pg_extension"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| format!("reading the schema: {}", db_error(&e)))?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// How the restored schema differs from the source's: what the source has and the restore
/// lacks or defines otherwise (`missing`), and what only the restore has (`extra`: the source
/// dropped it since the dump, as a migration would). `ignore_extra` names objects the drill
/// itself adds (the `amcheck` extension).
pub fn schema_differences(
    source: &std::collections::BTreeMap<String, String>,
    restored: &std::collections::BTreeMap<String, String>,
    ignore_extra: &[&str],
) -> (Vec<String>, Vec<String>) {
    let mut missing = Vec::new();
    for (name, definition) in source {
        match restored.get(name) {
            None => missing.push(format!("{name} is missing")),
            Some(other) if other != definition => missing.push(format!(
                "{name} is `{other}` in the restore but `{definition}` in the source"
            )),
            Some(_) => {}
        }
    }
    let extra = restored
        .keys()
        .filter(|name| !source.contains_key(*name) && !ignore_extra.contains(&name.as_str()))
        .map(|name| format!("{name} is not in the source"))
        .collect();
    (missing, extra)
}
