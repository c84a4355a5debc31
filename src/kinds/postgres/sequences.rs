//! Sequences against the columns they feed: a restored sequence behind its column's maximum
//! makes the next insert collide with an existing key — a restore that looks whole but cannot
//! take writes.

use super::copy::db_error;

/// A sequence that would hand out a value its column already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceBehind {
    pub sequence: String,
    pub column: String,
    /// The value the sequence hands out next.
    pub next: i64,
    pub column_max: i64,
}

impl std::fmt::Display for SequenceBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sequence {} hands out {} next but {} already holds {}: the next insert would collide with an existing row",
            self.sequence, self.next, self.column, self.column_max
        )
    }
}

/// Every sequence owned by a column (`serial`, identity, `OWNED BY`) whose next value is not
/// above the column's maximum.
pub async fn behind(client: &tokio_postgres::Client) -> Result<Vec<SequenceBehind>, String> {
    let owned = client
        .query(
            "SELECT s.seqrelid::regclass::text, c.oid::regclass::text, quote_ident(a.attname)
             FROM pg_sequence s
             JOIN pg_depend d ON d.objid = s.seqrelid AND d.classid = 'pg_class'::regclass
                 AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
             JOIN pg_class c ON c.oid = d.refobjid
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
             WHERE a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| format!("reading the sequences: {}", db_error(&e)))?;
    let mut out = Vec::new();
    for row in owned {
        let (sequence, table, column): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let state = client
            .query_one(
                &format!(
                    "SELECT CASE WHEN is_called THEN last_value + (SELECT seqincrement FROM pg_sequence WHERE seqrelid = '{seq}'::regclass) ELSE last_value END, (SELECT max({column})::bigint FROM {table}) FROM {sequence}",
                    seq = sequence.replace('\'', "''"),
                ),
                &[],
            )
            .await
            .map_err(|e| format!("reading sequence {sequence}: {}", db_error(&e)))?;
        let (next, max): (i64, Option<i64>) = (state.get(0), state.get(1));
        if let Some(max) = max
            && next <= max
        {
            out.push(SequenceBehind {
                sequence,
                column: format!("{table}.{column}"),
                next,
                column_max: max,
            });
        }
    }
    Ok(out)
}
