//! A self-test's scratch server for a `pg_dump` job: the verified dump restored once, then for
//! each damage a copy of that database, under the source's database name, damaged with SQL and
//! dumped again in the dump's own format — a backup gone wrong the way a real one would.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::process::Command;

use super::archive::Format;
use super::copy::{db_error, quote_ident};
use super::restore::{self, RESTORED_DATABASE};
use super::server::{Binaries, Throwaway};
use super::settings::DumpSettings;
use super::snapshot::Dump;
use super::target::RestoreTarget;

/// The scratch database every damaged copy is made from.
const BASE: &str = "selftest_base";

/// What one damage does to the database before it is dumped again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Nothing: the undamaged copy.
    None,
    /// The table's data left out of the dump (`--exclude-table-data`).
    DataLeftOut,
    RowsLost,
    RowsDuplicated,
    ValuesNulled,
    ValuesDrifted,
    StringChanged,
    ColumnDropped,
}

/// A column of the table a damage changes.
struct Column {
    name: String,
    /// Its type as `information_schema` names it.
    kind: String,
    nullable: bool,
    /// Part of a primary key, unique or foreign key constraint.
    key: bool,
}

/// The scratch server and the database dumps are made of.
pub struct Lab {
    target: RestoreTarget,
    /// The source's database name, which every damaged dump's header must name.
    database: String,
    format: Format,
}

impl Lab {
    /// Starts a throwaway server in `folder` and restores `dump` (its files fetched to
    /// `fetched`) into it once.
    pub async fn start(
        settings: &DumpSettings,
        dump: &Dump,
        fetched: &Path,
        folder: &Path,
    ) -> Result<Lab, String> {
        let header = dump.header.as_ref().map_err(|e| e.to_string())?;
        let needed = header
            .server_major()
            .unwrap_or(0)
            .max(header.dump_major().unwrap_or(0));
        let binaries = match &settings.postgres_bin {
            Some(dir) => Binaries::at(dir).await?,
            None => Binaries::installed(needed)?,
        };
        let server = Throwaway::start(binaries, folder, &settings.postgres_user).await?;
        let target = RestoreTarget::from(server);
        let log = restore::restore(&target, fetched, header.format, settings.owners).await?;
        if log.error_count > 0 {
            return Err(format!(
                "the verified dump does not restore cleanly into the self-test's server: {}",
                log.errors.join("; ")
            ));
        }
        let database = settings
            .source
            .database()
            .or_else(|| header.database.clone())
            .unwrap_or_else(|| "postgres".into());
        let lab = Lab {
            target,
            database,
            format: header.format,
        };
        lab.execute(
            "postgres",
            &format!(
                "ALTER DATABASE {} RENAME TO {BASE}",
                quote_ident(RESTORED_DATABASE)
            ),
        )
        .await?;
        Ok(lab)
    }

    /// A dump at `out` of a copy of the database with `edit` applied to the table `table`
    /// (`schema.name`), its random choices from `seed`. Returns what was changed, or `Err` with
    /// why the edit cannot apply (a constraint refuses it, no column fits).
    pub async fn damaged_dump(
        &self,
        edit: Edit,
        table: &str,
        seed: u64,
        out: &Path,
    ) -> Result<Result<String, String>, String> {
        let db = &self.database;
        // One statement each: a database is created or dropped outside a transaction.
        self.execute(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(db)),
        )
        .await?;
        self.execute(
            "postgres",
            &format!("CREATE DATABASE {} TEMPLATE {BASE}", quote_ident(db)),
        )
        .await?;
        let changed = self.edit(edit, table, seed).await;
        let result = match changed {
            Ok(Ok(what)) => self.dump(edit, table, out).await.map(|()| Ok(what)),
            other => other,
        };
        self.execute("postgres", &format!("DROP DATABASE {}", quote_ident(db)))
            .await?;
        result
    }

    async fn edit(
        &self,
        edit: Edit,
        table: &str,
        seed: u64,
    ) -> Result<Result<String, String>, String> {
        let mut rng = StdRng::seed_from_u64(seed ^ edit as u64);
        let client = super::open(&self.target.config(&self.database)).await?;
        let (schema, name) = super::catalog::split_name(table);
        let columns = client
            .query(
                "SELECT c.column_name::text, c.data_type::text, c.is_nullable = 'YES',
                        EXISTS (SELECT 1 FROM information_schema.key_column_usage k
                                WHERE k.table_schema = c.table_schema AND k.table_name = c.table_name
                                  AND k.column_name = c.column_name)
                 FROM information_schema.columns c
                 WHERE c.table_schema = $1 AND c.table_name = $2 ORDER BY c.ordinal_position",
                &[&schema, &name],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let columns: Vec<Column> = columns
            .iter()
            .map(|r| Column {
                name: r.get(0),
                kind: r.get(1),
                nullable: r.get(2),
                key: r.get(3),
            })
            .collect();
        let quoted = format!("{}.{}", quote_ident(schema), quote_ident(name));
        let pick = |rng: &mut StdRng, fits: &dyn Fn(&Column) -> bool| {
            let fitting: Vec<&Column> = columns.iter().filter(|c| fits(c)).collect();
            (!fitting.is_empty()).then(|| fitting[rng.random_range(0..fitting.len())].name.clone())
        };
        let numeric = |t: &str| {
            [
                "smallint",
                "integer",
                "bigint",
                "numeric",
                "real",
                "double precision",
            ]
            .contains(&t)
        };
        let text = |t: &str| ["text", "character varying", "character"].contains(&t);
        // About one row in fifty, at least one, chosen by the seed.
        let sample = format!(
            "ctid = ANY(ARRAY(SELECT ctid FROM {quoted} ORDER BY md5(ctid::text || '{}') LIMIT greatest(1, (SELECT count(*) / 50 FROM {quoted}))))",
            rng.random::<u32>()
        );
        let (sql, what) = match edit {
            Edit::None | Edit::DataLeftOut => return Ok(Ok(String::new())),
            Edit::RowsLost => (
                format!("DELETE FROM {quoted} WHERE {sample}"),
                format!("rows deleted from {table}"),
            ),
            Edit::RowsDuplicated => (
                format!("INSERT INTO {quoted} SELECT * FROM {quoted} WHERE {sample}"),
                format!("rows of {table} inserted a second time"),
            ),
            Edit::ValuesNulled => {
                let Some(c) = pick(&mut rng, &|c| c.nullable && !c.key) else {
                    return Ok(Err(format!(
                        "{table} has no nullable column outside its keys"
                    )));
                };
                (
                    format!(
                        "UPDATE {quoted} SET {} = NULL WHERE {sample}",
                        quote_ident(&c)
                    ),
                    format!("`{c}` of {table} nulled"),
                )
            }
            Edit::ValuesDrifted => {
                let Some(c) = pick(&mut rng, &|c| numeric(&c.kind) && !c.key) else {
                    return Ok(Err(format!(
                        "{table} has no numeric column outside its keys"
                    )));
                };
                (
                    format!(
                        "UPDATE {quoted} SET {0} = {0} + 1 WHERE {sample}",
                        quote_ident(&c)
                    ),
                    format!("`{c}` of {table} shifted by 1"),
                )
            }
            Edit::StringChanged => {
                let Some(c) = pick(&mut rng, &|c| text(&c.kind) && !c.key) else {
                    return Ok(Err(format!("{table} has no text column outside its keys")));
                };
                (
                    format!(
                        "UPDATE {quoted} SET {0} = {0} || ' (self-test)' WHERE {sample}",
                        quote_ident(&c)
                    ),
                    format!("`{c}` of {table} changed"),
                )
            }
            Edit::ColumnDropped => {
                let Some(c) = pick(&mut rng, &|c| !c.key) else {
                    return Ok(Err(format!("{table} has no column outside its keys")));
                };
                (
                    format!("ALTER TABLE {quoted} DROP COLUMN {}", quote_ident(&c)),
                    format!("`{c}` dropped from {table}"),
                )
            }
        };
        match client.execute(sql.as_str(), &[]).await {
            Ok(rows) if edit == Edit::ColumnDropped || rows > 0 => Ok(Ok(match edit {
                Edit::ColumnDropped => what,
                _ => format!("{what} ({rows} rows)"),
            })),
            Ok(_) => Ok(Err(format!("{table} holds no row to change"))),
            Err(e) => Ok(Err(format!("the database refuses it: {}", db_error(&e)))),
        }
    }

    /// `pg_dump` of the database in the dump's format into `out`.
    async fn dump(&self, edit: Edit, table: &str, out: &Path) -> Result<(), String> {
        let format = match self.format {
            Format::Custom => vec!["-Fc"],
            Format::Directory => vec!["-Fd"],
            Format::Tar => vec!["-Ft"],
            Format::Plain => vec!["-Fp"],
            Format::PlainGzip => vec!["-Fp", "-Z", "6"],
        };
        let mut command = Command::new(self.target.binaries().program("pg_dump"));
        command
            .args(format)
            .arg("-f")
            .arg(out)
            .args(self.target.client_args(&self.database))
            .kill_on_drop(true);
        if edit == Edit::DataLeftOut {
            command.arg(format!("--exclude-table-data={table}"));
        }
        let done = command
            .output()
            .await
            .map_err(|e| format!("cannot run pg_dump: {e}"))?;
        if !done.status.success() {
            return Err(format!(
                "pg_dump of the self-test's copy failed: {}",
                String::from_utf8_lossy(&done.stderr).trim()
            ));
        }
        Ok(())
    }

    async fn execute(&self, database: &str, sql: &str) -> Result<(), String> {
        let client = super::open(&self.target.config(database)).await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("the self-test's server: {}", db_error(&e)))
    }

    /// Stops the scratch server.
    pub async fn stop(mut self) -> Result<(), String> {
        self.target.stop().await
    }
}
