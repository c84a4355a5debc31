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

/// Finds `name` (`schema.table`, or `table` in `public`) among `tables`.
pub fn find<'a>(tables: &'a [PgTableInfo], name: &str) -> Option<&'a PgTableInfo> {
    let (schema, table) = name.split_once('.').unwrap_or(("public", name));
    tables
        .iter()
        .find(|t| t.schema == schema && t.name == table)
}
