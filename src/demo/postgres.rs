//! The demo's PostgreSQL part, when server binaries are on the machine: an `app` database in a
//! server started for the demo (a Unix socket in the demo folder, no TCP port), two dated dumps
//! of it (the older cut short, as an interrupted upload leaves it), a job and its suite.

use std::path::Path;

use anyhow::Context;
use chrono::{Duration, Utc};

use crate::kinds::postgres::server::{Binaries, Throwaway};

/// The PostgreSQL job's suite, written to `checks/app.toml`.
pub const SUITE: &str = r#"# Checks of the demo's app database, each naming the table it reads.

[[check]]
id = "orders-rows"
table = "public.orders"
kind = "row_count"
min = 1

[[check]]
id = "order-ids-unique"
table = "public.orders"
kind = "unique"
columns = ["id"]

[[check]]
id = "order-amounts"
table = "public.orders"
kind = "in_range"
column = "amount"
min = 0
max = 10000

[[check]]
id = "order-status-known"
table = "public.orders"
kind = "in_set"
column = "status"
values = ["new", "paid", "shipped"]

[[check]]
id = "customers-named"
table = "public.customers"
kind = "not_null"
columns = ["name"]

# The live table is read too: its row count and its fingerprint must equal the restore's.
[[check]]
id = "customers-as-in-source"
table = "public.customers"
kind = "row_count"
equals_source = true
"#;

/// The demo's source server and dumps.
pub(crate) struct PgDemo {
    /// The source database's server, stopped when the demo ends.
    pub server: Throwaway,
    pub healthy: String,
    pub damaged: String,
}

/// The job's configuration, for the demo's file.
pub(crate) fn job_text(root: &Path, demo: &PgDemo) -> String {
    format!(
        r#"
[[job]]
name = "app_db"
description = "The application's PostgreSQL database (served by the demo while it runs)"
owner = "data-platform@example.com"
source = "postgres:///app?host={socket}&user=restore_drill"
snapshots = {{ kind = "pg_dump", location = "{root}/backups/pg", pattern = "app_{{date}}.dump" }}
sandbox = "{root}/sandbox"
suite = "checks/app.toml"
objectives = {{ rpo = "26h", rto = "15m" }}
compare = {{ table = "public.orders", key = ["id"], as_of = "updated_at", sample_fraction = 0.1 }}
"#,
        socket = demo.server.socket_dir().display(),
        root = root.display()
    )
}

/// Starts the source server, fills its `app` database and writes two dated dumps; `None` when
/// no PostgreSQL server binaries are installed.
pub(crate) async fn prepare(root: &Path, rows: usize) -> anyhow::Result<Option<PgDemo>> {
    let Ok(binaries) = Binaries::installed(0) else {
        return Ok(None);
    };
    // The server's user (when this runs as root) must reach the demo folder.
    open_to_others(root)?;
    let folder = root.join("postgres-source");
    std::fs::create_dir_all(&folder)?;
    open_to_others(&folder)?;
    let server = Throwaway::start(binaries.clone(), &folder, "postgres")
        .await
        .map_err(anyhow::Error::msg)
        .context("starting the demo's PostgreSQL")?;
    let admin = connect(&server, "postgres").await?;
    admin.batch_execute("CREATE DATABASE app").await?;
    let app = connect(&server, "app").await?;
    let orders = rows.clamp(1_000, 200_000);
    app.batch_execute(&format!(
        "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL);
         INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 500) g;
         CREATE TABLE orders (
             id bigserial PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers,
             amount numeric(12,2) NOT NULL, status text NOT NULL,
             updated_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO orders (customer_id, amount, status, updated_at)
             SELECT g % 500 + 1, (g % 10000) / 3.0, (ARRAY['new','paid','shipped'])[g % 3 + 1],
                    now() - interval '2 hours'
             FROM generate_series(1, {orders}) g;
         CREATE INDEX orders_customer ON orders (customer_id);"
    ))
    .await?;
    let backups = root.join("backups/pg");
    std::fs::create_dir_all(&backups)?;
    let today = Utc::now();
    let name = |days: i64| {
        format!(
            "app_{}.dump",
            (today - Duration::days(days)).format("%Y-%m-%d")
        )
    };
    let (healthy, damaged) = (name(0), name(1));
    for file in [&healthy, &damaged] {
        let out = std::process::Command::new(binaries.program("pg_dump"))
            .arg("-Fc")
            .arg("-f")
            .arg(backups.join(file))
            .args(server.client_args("app"))
            .output()
            .context("running pg_dump")?;
        anyhow::ensure!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cut = backups.join(&damaged);
    let size = std::fs::metadata(&cut)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)?
        .set_len(size / 2)?;
    std::fs::write(root.join("checks/app.toml"), SUITE)?;
    Ok(Some(PgDemo {
        server,
        healthy,
        damaged,
    }))
}

async fn connect(server: &Throwaway, database: &str) -> anyhow::Result<tokio_postgres::Client> {
    crate::kinds::postgres::open(&server.config(database))
        .await
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("connecting to the demo's database {database}"))
}

/// Lets other users enter `dir` (read and traverse, not write).
fn open_to_others(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o055))
}
