//! PostgreSQL dumps: the phases of restoring a custom-format dump of one table into a throwaway
//! server — `pg_restore`, `pg_amcheck --heapallindexed` — and the suite's aggregates over the
//! restored table read into DataFusion through binary COPY (one per core, over ranges of pages,
//! as the drill reads it), against PostgreSQL running the same
//! aggregates in SQL on the same restored database; with the peak memory of the DataFusion scan.
//!
//! The table's key is `id bigint PRIMARY KEY`, dense as a sequence hands it out (`dense`), or
//! scrambled over a range too wide for a bitmap (`scrambled`). DataFusion counts the keys as the
//! drill does (`restore_drill_key_counts`, one bit per possible value when the primary key's
//! index gives the range), PostgreSQL with `count(DISTINCT id)`.
//!
//! `cargo bench --bench pg_dump -- [ROWS] [RUNS] [dense|scrambled]` (defaults: 1,000,000 rows,
//! 5 runs, dense). Needs the PostgreSQL on 127.0.0.1:5432 (trust auth), where it creates and
//! drops a database of its own, and server binaries in /usr/lib/postgresql/N/bin. Prints the
//! median seconds of each phase.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Instant;

use restore_drill::kinds::postgres::archive::Format;
use restore_drill::kinds::postgres::copy::{CopyTable, quote_qualified};
use restore_drill::kinds::postgres::restore::{Owners, restore};
use restore_drill::kinds::postgres::server::{Binaries, Throwaway};
use restore_drill::kinds::postgres::target::RestoreTarget;
use restore_drill::kinds::postgres::{amcheck, catalog};
use restore_drill::verify::{keys, scan};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The aggregates of a typical suite: rows, a sum, nulls, a range, distinct keys (`{keys}`),
/// newest time.
const AGGREGATES: &str = "count(*), sum(amount), count(note), count(status), min(amount), max(amount), {keys}, max(placed)";

/// The process's peak resident memory in MiB since the last reset.
fn peak_mib() -> f64 {
    support::peak_kib() as f64 / 1024.0
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 with trust auth");
    tokio::spawn(connection);
    client
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rows: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let key = match args.get(2).map(String::as_str) {
        None | Some("dense") => "g",
        Some("scrambled") => "(g * 2654435761) % 4294967311",
        Some(other) => panic!("the key is `dense` or `scrambled`, not `{other}`"),
    };
    let binaries = Binaries::installed(0).expect("PostgreSQL server binaries");
    let database = format!("restore_drill_bench_{:08x}", rand::random::<u32>());
    let admin = connect(ADMIN_URL).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    connect(&url)
        .await
        .batch_execute(&format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), status text, note text, placed timestamptz);
             INSERT INTO orders SELECT {key}, (g % 100000) / 100.0,
                 CASE WHEN g % 97 = 0 THEN NULL ELSE (ARRAY['new','paid','shipped'])[g % 3 + 1] END,
                 CASE WHEN g % 13 = 0 THEN NULL ELSE 'order ' || g END,
                 timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
             FROM generate_series(1, {rows}) g;"
        ))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dump = work.path().join("orders.dump");
    let started = Instant::now();
    let out = std::process::Command::new(binaries.program("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(&dump)
        .args(["-d", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "{rows} rows; pg_dump -Fc: {:.2} s, {:.1} MiB",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&dump).unwrap().len() as f64 / 1048576.0
    );

    let mut phases: [Vec<f64>; 5] = Default::default();
    let mut peaks = Vec::new();
    for run in 0..runs {
        let folder = work.path().join(format!("run{run}"));
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = Instant::now();
        let mut server: RestoreTarget = Throwaway::start(binaries.clone(), &folder, "postgres")
            .await
            .unwrap()
            .into();
        phases[0].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let log = restore(&server, &dump, Format::Custom, Owners::Skip)
            .await
            .unwrap();
        assert_eq!(log.error_count, 0, "{log:?}");
        phases[1].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let checked = amcheck::run(&server).await;
        assert!(
            checked.completed && checked.corrupt.is_empty(),
            "{checked:?}"
        );
        phases[2].push(t.elapsed().as_secs_f64());

        let client = connect_restored(&server).await;
        let tables = catalog::tables(&client).await.unwrap();
        let orders = catalog::find(&tables, "public.orders").unwrap();
        let ctx = scan::session();
        let table = CopyTable::new(
            server.restored(),
            &quote_qualified(&orders.schema, &orders.name),
            &orders.columns,
        );
        let blocks = catalog::blocks(&client, orders).await.unwrap();
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        ctx.register_table(
            "orders",
            Arc::new(table.provider_in_parts(blocks, parts).unwrap()),
        )
        .unwrap();
        let keys = match catalog::indexed_range(&client, orders, "id").await {
            Some((min, max)) => keys::expr("id", Some((min, max))),
            None => keys::expr("id", None),
        };
        let datafusion_sql = format!("SELECT {} FROM orders", AGGREGATES.replace("{keys}", &keys));
        if run == 0 {
            println!("{datafusion_sql}");
        }
        reset_peak();
        let t = Instant::now();
        let answers = ctx
            .sql(&datafusion_sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        phases[3].push(t.elapsed().as_secs_f64());
        peaks.push(peak_mib());
        assert_eq!(answers[0].num_rows(), 1);
        let t = Instant::now();
        client
            .query_one(
                &format!(
                    "SELECT {} FROM orders",
                    AGGREGATES.replace("{keys}", "count(DISTINCT id)")
                ),
                &[],
            )
            .await
            .unwrap();
        phases[4].push(t.elapsed().as_secs_f64());
        drop(client);
        server.stop().await.unwrap();
        std::fs::remove_dir_all(&folder).unwrap();
    }
    let names = [
        "start the throwaway server (initdb + start)",
        "pg_restore",
        "pg_amcheck --heapallindexed",
        "suite aggregates in DataFusion over binary COPY",
        "the same aggregates in PostgreSQL",
    ];
    for (name, values) in names.iter().zip(phases.clone()) {
        println!("{name:<50} median {:>8.3} s", support::median(values));
    }
    println!(
        "{:<50} {:>8.2}x",
        "DataFusion scan / PostgreSQL",
        support::median(phases[3].clone()) / support::median(phases[4].clone())
    );
    println!(
        "{:<50} median {:>8.1} MiB",
        "peak memory of the process during the scan",
        support::median(peaks)
    );
    admin
        .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .await
        .unwrap();
}

async fn connect_restored(server: &RestoreTarget) -> tokio_postgres::Client {
    let (client, connection) = server
        .restored()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}
