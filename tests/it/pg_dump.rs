//! PostgreSQL dumps made by `pg_dump` from a real database on 127.0.0.1:5432, in every format:
//! found by name and read by their archive headers, restored into a throwaway server started in
//! a run folder (Unix socket only), their errors and missing tables named, `pg_amcheck` naming a
//! corrupted index, and the restored tables scanned through DataFusion with the same answers
//! PostgreSQL gives.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use restore_drill::kinds::delta::snapshot::SnapshotPattern;
use restore_drill::kinds::postgres::archive::Format;
use restore_drill::kinds::postgres::copy::{CopyTable, quote_qualified};
use restore_drill::kinds::postgres::restore::{Owners, restore};
use restore_drill::kinds::postgres::server::{Binaries, Throwaway};
use restore_drill::kinds::postgres::target::RestoreTarget;
use restore_drill::kinds::postgres::{amcheck, catalog, snapshot};
use restore_drill::storage::Location;
use restore_drill::verify::scan;

use crate::history::Database;

/// The newest PostgreSQL binaries on the machine (`pg_dump` of the same version writes the
/// dumps).
fn binaries() -> Binaries {
    Binaries::installed(0).expect("PostgreSQL server binaries in /usr/lib/postgresql/N/bin")
}

/// A source database with two tables owned by a role of their own, one granted to another.
pub(crate) async fn source() -> Database {
    let db = Database::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE rd_dump_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             DO $$ BEGIN CREATE ROLE rd_dump_reader NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             CREATE TABLE orders (
                 id bigint PRIMARY KEY, amount numeric(12,2), note text, placed timestamptz,
                 day date, flag boolean, score double precision, code uuid, small smallint,
                 updated_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO orders
                 SELECT g, (g * 7 % 1000) / 4.0, CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || g END,
                        timestamptz '2026-11-30 00:00:00+00' + g * interval '1 minute',
                        date '2026-01-01' + (g % 300), g % 2 = 0, g / 4.0,
                        md5(g::text)::uuid, (g % 100)::smallint, now() - interval '1 hour'
                 FROM generate_series(1, 5000) g;
             CREATE TABLE customers (id integer PRIMARY KEY, name varchar(40) NOT NULL);
             INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 300) g;
             ALTER TABLE orders OWNER TO rd_dump_owner;
             GRANT SELECT ON orders TO rd_dump_reader;",
        )
        .await
        .unwrap();
    db
}

/// `pg_dump` of `db` in `format` (`c`, `d`, `t`, `p`; `p` compressed with `gzip`) to `path`,
/// with extra arguments.
fn dump(db: &Database, format: &str, gzip: bool, path: &Path, extra: &[&str]) {
    let mut args = vec![
        format!("-F{format}"),
        "-f".into(),
        path.display().to_string(),
        "-d".into(),
        db.url(),
    ];
    if gzip {
        args.push("-Z6".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = std::process::Command::new(binaries().program("pg_dump"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A run folder the server's user can reach.
fn run_folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, run)
}

/// A throwaway server in the run folder `run`.
async fn start(run: &Path) -> RestoreTarget {
    Throwaway::start(binaries(), run, "postgres")
        .await
        .unwrap()
        .into()
}

/// The throwaway server of a target [`start`] made.
fn throwaway(target: &mut RestoreTarget) -> &mut Throwaway {
    match target {
        RestoreTarget::Throwaway(server) => server,
        RestoreTarget::Shared(_) => panic!("not a throwaway server"),
    }
}

async fn restored_client(server: &RestoreTarget) -> tokio_postgres::Client {
    let (client, connection) = server
        .restored()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The answers of one aggregate query over `orders` (count, sum of a decimal, nulls, newest
/// timestamp, oldest date, sum of a double, distinct uuids, sum of a smallint), as text, from
/// PostgreSQL.
async fn postgres_answers(client: &tokio_postgres::Client) -> Vec<String> {
    let row = client
        .query_one(
            "SELECT count(*)::text, sum(amount)::text, count(note)::text, to_char(max(placed) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), min(day)::text, sum(score)::bigint::text, count(DISTINCT code)::text, sum(small)::text FROM orders",
            &[],
        )
        .await
        .unwrap();
    (0..8).map(|i| row.get::<_, String>(i)).collect()
}

/// The same aggregates over the restored `orders`, scanned through DataFusion.
async fn datafusion_answers(server: &RestoreTarget) -> Vec<String> {
    let client = restored_client(server).await;
    let tables = catalog::tables(&client).await.unwrap();
    let orders = catalog::find(&tables, "public.orders").unwrap();
    let table = CopyTable::new(
        server.restored(),
        &quote_qualified(&orders.schema, &orders.name),
        &orders.columns,
    );
    // Read in three ranges of pages at once, as the drill reads a restored table.
    let blocks = catalog::blocks(&client, orders).await.unwrap();
    assert!(blocks >= 6, "{blocks} pages");
    let ctx = scan::session();
    ctx.register_table(
        "orders",
        std::sync::Arc::new(table.provider_in_parts(blocks, 3).unwrap()),
    )
    .unwrap();
    let sql = "SELECT CAST(count(*) AS VARCHAR), CAST(sum(amount) AS VARCHAR), CAST(count(note) AS VARCHAR), to_char(max(placed), '%Y-%m-%dT%H:%M:%S'), CAST(min(day) AS VARCHAR), CAST(CAST(sum(score) AS BIGINT) AS VARCHAR), CAST(count(DISTINCT code) AS VARCHAR), CAST(sum(small) AS VARCHAR) FROM orders";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let batch = &batches[0];
    (0..8)
        .map(|i| {
            deltalake::arrow::util::display::array_value_to_string(batch.column(i), 0).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn every_format_is_found_restored_and_scanned_like_postgresql() {
    let db = source().await;
    let expected = postgres_answers(&db.client().await).await;
    for (format, gzip, name, want) in [
        ("c", false, "app_2026-12-01.dump", Format::Custom),
        ("d", false, "app_2026-12-01", Format::Directory),
        ("t", false, "app_2026-12-01.tar", Format::Tar),
        ("p", false, "app_2026-12-01.sql", Format::Plain),
        ("p", true, "app_2026-12-01.sql.gz", Format::PlainGzip),
    ] {
        let backups = tempfile::tempdir().unwrap();
        dump(&db, format, gzip, &backups.path().join(name), &[]);
        // An older dump and a file the pattern does not match lie beside it.
        dump(
            &db,
            "c",
            false,
            &backups.path().join("app_2026-11-30.dump"),
            &[],
        );
        std::fs::write(backups.path().join("notes.txt"), "not a dump").unwrap();
        let suffix = name.strip_prefix("app_2026-12-01").unwrap();
        let pattern = SnapshotPattern::parse(&format!("app_{{date}}{suffix}")).unwrap();
        let location =
            Location::parse(&backups.path().display().to_string(), Path::new("/")).unwrap();
        let dumps = snapshot::list(&location, &pattern, chrono_tz::UTC)
            .await
            .unwrap();
        let found = dumps.iter().find(|d| d.name == name).unwrap_or_else(|| {
            panic!(
                "{name} not found among {:?}",
                dumps.iter().map(|d| &d.name).collect::<Vec<_>>()
            )
        });
        let header = found.header.as_ref().unwrap();
        assert_eq!(header.format, want, "{name}");
        if want.is_archive() {
            assert_eq!(header.database.as_deref(), Some(db.name.as_str()));
            // The archive's own time: the dump was made a moment ago, not at the name's midnight.
            let age = chrono::Utc::now() - found.time;
            assert!(
                age.num_seconds().abs() < 600,
                "{name}: dump time {}",
                found.time
            );
        }
        let chosen = snapshot::choose(&location, &pattern, chrono_tz::UTC, None)
            .await
            .unwrap();
        assert_eq!(chosen.name, name, "the newest by name is chosen");

        // Fetched into the run folder (as the drill copies it), then restored.
        let (_dir, run) = run_folder();
        for file in &found.files {
            let target = run.join(&file.relative);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(backups.path().join(&file.relative), &target).unwrap();
        }
        let mut server = start(&run).await;
        let socket = throwaway(&mut server).socket_dir();
        assert!(
            !socket.join(".s.PGSQL.5432").as_os_str().is_empty() && socket.starts_with(&run),
            "the server listens inside the run folder"
        );
        let log = restore(
            &server,
            &run.join(found.restore_path()),
            want,
            Owners::Create,
        )
        .await
        .unwrap();
        assert_eq!(log.errors, Vec::<String>::new(), "{name}: {log:?}");
        assert_eq!(
            log.dump_tables,
            vec!["public.customers", "public.orders"],
            "{name}"
        );
        assert!(
            log.roles_created.contains(&"rd_dump_owner".to_string()),
            "{log:?}"
        );
        let client = restored_client(&server).await;
        let owner: String = client
            .query_one(
                "SELECT tableowner::text FROM pg_tables WHERE tablename = 'orders'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(owner, "rd_dump_owner", "ownership restored as it was");
        assert_eq!(postgres_answers(&client).await, expected, "{name}");
        assert_eq!(datafusion_answers(&server).await, expected, "{name}");
        let checked = amcheck::run(&server).await;
        assert!(
            checked.completed && checked.corrupt.is_empty(),
            "{checked:?}"
        );
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_truncated_dump_and_a_left_out_table_are_named() {
    let db = source().await;
    let backups = tempfile::tempdir().unwrap();
    let whole = backups.path().join("whole.dump");
    dump(&db, "c", false, &whole, &[]);
    let bytes = std::fs::read(&whole).unwrap();
    let (_dir, run) = run_folder();
    let cut = run.join("cut.dump");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let mut server = start(&run).await;
    let log = restore(&server, &cut, Format::Custom, Owners::Create)
        .await
        .unwrap();
    assert!(log.error_count > 0, "{log:?}");
    assert!(
        log.errors
            .iter()
            .any(|e| e.contains("TABLE DATA") || e.contains("input file")),
        "the error names what could not be read: {:?}",
        log.errors
    );
    server.stop().await.unwrap();

    // `-T customers`: the dump's table of contents lacks it, so a suite naming it can tell.
    let (_dir, run) = run_folder();
    let partial = run.join("partial.dump");
    dump(&db, "c", false, &partial, &["-T", "customers"]);
    let mut server = start(&run).await;
    let log = restore(&server, &partial, Format::Custom, Owners::Skip)
        .await
        .unwrap();
    assert_eq!(log.errors, Vec::<String>::new());
    assert_eq!(log.dump_tables, vec!["public.orders"]);
    let tables = catalog::tables(&restored_client(&server).await)
        .await
        .unwrap();
    assert!(catalog::find(&tables, "customers").is_none());
    assert!(catalog::find(&tables, "public.orders").is_some());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn amcheck_names_a_corrupted_index() {
    let db = source().await;
    let (_dir, run) = run_folder();
    let file = run.join("app.dump");
    dump(&db, "c", false, &file, &[]);
    let mut server = start(&run).await;
    let log = restore(&server, &file, Format::Custom, Owners::Create)
        .await
        .unwrap();
    assert_eq!(log.errors, Vec::<String>::new());
    let client = restored_client(&server).await;
    let index: String = client
        .query_one("SELECT pg_relation_filepath('orders_pkey')", &[])
        .await
        .unwrap()
        .get(0);
    client.batch_execute("CHECKPOINT").await.unwrap();
    drop(client);
    server.stop().await.unwrap();
    // Zero the index's first leaf page (block 1; block 0 is its metapage).
    let path = throwaway(&mut server).data_dir().join(index);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8192..16384].fill(0);
    std::fs::write(&path, bytes).unwrap();
    throwaway(&mut server).launch().await.unwrap();
    let checked = amcheck::run(&server).await;
    assert!(
        checked.corrupt.iter().any(|c| c.contains("orders_pkey")),
        "{checked:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_left_running_is_stopped_before_its_folder_goes() {
    let (_dir, run) = run_folder();
    let mut server = start(&run).await;
    let pid_file = throwaway(&mut server).data_dir().join("postmaster.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // A drill cancelled mid-way drops its server.
    drop(server);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the server stopped with the drill"
    );
}

#[tokio::test]
async fn removing_a_run_folder_stops_the_server_its_drill_left_running() {
    use restore_drill::storage::SandboxRoot;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = Location::parse(&dir.path().display().to_string(), Path::new("/")).unwrap();
    let run = SandboxRoot::new(&root)
        .create_run("app", "20261201T000000Z-000001")
        .await
        .unwrap();
    let folder = run.local_path().unwrap().to_path_buf();
    for parent in [folder.parent().unwrap(), &folder] {
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut server = start(&folder).await;
    let pid =
        std::fs::read_to_string(throwaway(&mut server).data_dir().join("postmaster.pid")).unwrap();
    let proc = format!("/proc/{}", pid.lines().next().unwrap());
    // The drill's process died without stopping it: nothing drops the handle.
    std::mem::forget(server);
    assert!(Path::new(&proc).exists());
    run.remove().await.unwrap();
    assert!(!Path::new(&proc).exists(), "the server was stopped");
    assert!(!folder.exists());
}

#[tokio::test]
async fn a_sequence_behind_its_column_is_named() {
    use restore_drill::kinds::postgres::sequences;
    let db = Database::new().await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE events (id serial PRIMARY KEY, at timestamptz);
             INSERT INTO events (at) SELECT now() FROM generate_series(1, 100);
             CREATE TABLE tickets (id bigint GENERATED ALWAYS AS IDENTITY, note text);
             INSERT INTO tickets (note) SELECT 'n' FROM generate_series(1, 10);
             SELECT setval('events_id_seq', 40);",
        )
        .await
        .unwrap();
    let (_dir, run) = run_folder();
    let file = run.join("app.dump");
    dump(&db, "c", false, &file, &[]);
    let mut server = start(&run).await;
    restore(&server, &file, Format::Custom, Owners::Create)
        .await
        .unwrap();
    let found = sequences::behind(&restored_client(&server).await)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].sequence, "events_id_seq");
    assert_eq!(found[0].column, "events.id");
    assert_eq!((found[0].next, found[0].column_max), (41, 100));
    assert!(found[0].to_string().contains("would collide"));
    server.stop().await.unwrap();
}

/// A folder with a pg_dump job's configuration, suite, backups and sandbox, all reachable by the
/// server's user.
struct DumpJob {
    dir: tempfile::TempDir,
}

const DUMP_SUITE: &str = r#"
[[check]]
id = "orders-rows"
table = "public.orders"
kind = "row_count"
min = 5000

[[check]]
id = "orders-ids"
table = "public.orders"
kind = "unique"
columns = ["id"]

[[check]]
id = "orders-amount"
table = "public.orders"
kind = "sum"
column = "amount"
min = 1

[[check]]
id = "orders-notes"
table = "public.orders"
kind = "not_null"
columns = ["note"]
mostly = 0.85

[[check]]
id = "customers-rows"
table = "customers"
kind = "row_count"
min = 300
"#;

/// A check of the customers' row count against the live database's.
const CUSTOMERS_SAME: &str = r#"
[[check]]
id = "customers-same"
table = "customers"
kind = "row_count"
equals_source = true
"#;

impl DumpJob {
    fn new(db: &Database, suite: &str) -> DumpJob {
        DumpJob::with(db, suite, "", "")
    }

    /// A job with more keys in its `snapshots` table (`snapshots`, starting with a comma) and
    /// below its `[[job]]` (`job`).
    fn with(db: &Database, suite: &str, snapshots: &str, job: &str) -> DumpJob {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("backups")).unwrap();
        std::fs::write(dir.path().join("suite.toml"), suite).unwrap();
        std::fs::write(
            dir.path().join("restore-drill.toml"),
            format!(
                r#"
[[job]]
name = "app"
source = "{}"
snapshots = {{ kind = "pg_dump", location = "backups", pattern = "app_{{date}}.dump"{snapshots} }}
sandbox = "sandbox"
suite = "suite.toml"
objectives = {{ rpo = "26h", rto = "1h" }}
{job}
"#,
                db.url()
            ),
        )
        .unwrap();
        DumpJob { dir }
    }

    /// `pg_dump -Fc` of `db` as the job's newest dump, with extra arguments.
    fn dump_of(&self, db: &Database, extra: &[&str]) {
        dump(
            db,
            "c",
            false,
            &self.backups().join("app_2026-12-01.dump"),
            extra,
        );
    }

    fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn config(&self) -> String {
        self.dir
            .path()
            .join("restore-drill.toml")
            .display()
            .to_string()
    }

    /// `run --json`: the exit code and the report.
    fn run(&self) -> (i32, serde_json::Value) {
        let out = crate::helpers::cli(&["run", "--config", &self.config(), "app", "--json"]);
        let report = serde_json::from_str(&crate::helpers::stdout(&out)).unwrap_or_else(|e| {
            panic!(
                "{e}: stdout {} stderr {}",
                crate::helpers::stdout(&out),
                crate::helpers::stderr(&out)
            )
        });
        (out.status.code().unwrap(), report)
    }
}

/// The message of the check `id` of a report.
fn message(report: &serde_json::Value, id: &str) -> String {
    check(report, id)["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

use crate::helpers::check;

#[tokio::test]
async fn a_pg_dump_job_is_listed_planned_validated_and_drilled() {
    use crate::helpers::{cli, stderr, stdout};
    let db = source().await;
    let job = DumpJob::new(&db, DUMP_SUITE);
    job.dump_of(&db, &[]);

    let out = cli(&["snapshots", "--config", &job.config(), "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("app_2026-12-01.dump") && stdout(&out).contains("custom"));
    let out = cli(&["run", "--config", &job.config(), "app", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("pg_restore"), "{}", stdout(&out));
    let out = cli(&["validate", "--config", &job.config()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let (code, report) = job.run();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["outcome"], "passed");
    assert_eq!(check(&report, "structure")["outcome"], "passed");
    assert_eq!(check(&report, "orders-rows")["observed"], 5000);
    assert_eq!(check(&report, "customers-rows")["observed"], 300);
    assert_eq!(check(&report, "orders-ids")["outcome"], "passed");
    // The primary key's index gives the key's range: one bit per possible id counts them.
    let counted_by_range = report["verify"]["queries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| {
            q["sql"]
                .as_str()
                .unwrap()
                .contains("restore_drill_key_counts(\"id\", 1, 5000)")
        });
    assert!(counted_by_range, "{:#}", report["verify"]["queries"]);
    assert_eq!(report["rpo_basis"], "now");
    assert_eq!(check(&report, "source")["outcome"], "passed", "{report:#}");
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["fetch", "restore", "verify", "compare"]);
    let rto: f64 = report["phases"].as_array().unwrap()[..3]
        .iter()
        .map(|p| p["seconds"].as_f64().unwrap())
        .sum();
    let reported = report["rto_seconds"].as_f64().unwrap();
    assert!(
        (rto - reported).abs() < 0.01,
        "RTO {reported} is fetch + restore + verify {rto}"
    );
    let database = &report["verify"]["structure"]["database"];
    assert_eq!(database["restore"]["tool"], "pg_restore");
    assert_eq!(database["amcheck"]["completed"], true);
    assert!(
        !job.dir
            .path()
            .join("sandbox/app")
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().path().is_dir()),
        "the run folder is removed after a pass"
    );
}

#[tokio::test]
async fn a_pg_dump_drill_fails_naming_what_is_wrong() {
    let db = source().await;
    // A suite naming a column the source lacks is a validate error.
    let job = DumpJob::new(
        &db,
        &DUMP_SUITE.replace("columns = [\"note\"]", "columns = [\"memo\"]"),
    );
    let out = crate::helpers::cli(&["validate", "--config", &job.config()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::helpers::stderr(&out).contains("memo"),
        "{}",
        crate::helpers::stderr(&out)
    );

    // A table left out of the dump.
    let job = DumpJob::new(&db, DUMP_SUITE);
    job.dump_of(&db, &["-T", "customers"]);
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    assert!(message(&report, "customers-rows").contains("has no table customers"));

    // A dump cut short.
    let job = DumpJob::new(&db, DUMP_SUITE);
    let whole = job.backups().join("whole");
    dump(&db, "c", false, &whole, &[]);
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::remove_file(&whole).unwrap();
    std::fs::write(
        job.backups().join("app_2026-12-01.dump"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    let structure = check(&report, "structure");
    assert_eq!(structure["outcome"], "failed");
    assert!(
        structure["message"]
            .as_str()
            .unwrap()
            .contains("pg_restore reported"),
        "{structure:#}"
    );
    let kept: Vec<_> = job
        .dir
        .path()
        .join("sandbox/app")
        .read_dir()
        .unwrap()
        .collect();
    assert!(!kept.is_empty(), "a failed drill keeps its run folder");

    // A sequence behind its column.
    db.client()
        .await
        .batch_execute("CREATE TABLE events (id serial PRIMARY KEY); INSERT INTO events SELECT FROM generate_series(1, 50); SELECT setval('events_id_seq', 10);")
        .await
        .unwrap();
    let job = DumpJob::new(&db, DUMP_SUITE);
    job.dump_of(&db, &[]);
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    assert!(
        message(&report, "structure")
            .contains("events_id_seq hands out 11 next but events.id already holds 50")
    );

    // No dump matching the pattern.
    let job = DumpJob::new(&db, DUMP_SUITE);
    std::fs::write(job.backups().join("other.dump"), "x").unwrap();
    let out = crate::helpers::cli(&["run", "--config", &job.config(), "app"]);
    assert_eq!(out.status.code(), Some(2));
    let said = format!(
        "{}{}",
        crate::helpers::stdout(&out),
        crate::helpers::stderr(&out)
    );
    assert!(
        said.contains("app_{date}.dump") && said.contains("backups"),
        "{said}"
    );
}

#[tokio::test]
async fn a_pg_dump_is_compared_with_the_live_database() {
    let db = source().await;
    // A table the suite does not read, left out of the dump: the schema comparison names it.
    let job = DumpJob::new(
        &db,
        &DUMP_SUITE.replace("table = \"customers\"", "table = \"orders\""),
    );
    job.dump_of(&db, &["-T", "customers"]);
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    let said = message(&report, "source");
    assert!(said.contains("table public.customers is missing"), "{said}");

    // A dump of another database with the same tables.
    let other = source().await;
    let job = DumpJob::new(&db, DUMP_SUITE);
    job.dump_of(&other, &[]);
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    assert!(
        message(&report, "source").contains(&format!("the dump is of database `{}`", other.name)),
        "{report:#}"
    );

    // The source changed since the dump (a table added): a warning, and the drill passes.
    let job = DumpJob::new(&db, DUMP_SUITE);
    job.dump_of(&db, &[]);
    db.client()
        .await
        .batch_execute("CREATE TABLE added_later (id int)")
        .await
        .unwrap();
    let (code, report) = job.run();
    assert_eq!(
        code, 1,
        "a table the restore lacks fails by default: {report:#}"
    );
    let config = std::fs::read_to_string(job.config()).unwrap().replace(
        "pattern = \"app_{date}.dump\" }",
        "pattern = \"app_{date}.dump\", schema_differences = \"warn\" }",
    );
    std::fs::write(job.config(), config).unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 0, "{report:#}");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["severity"] == "warn"
                && f["message"]
                    .as_str()
                    .unwrap()
                    .contains("table public.added_later is missing")),
        "{report:#}"
    );

    // A source that cannot be reached is an error, never a pass.
    let config = std::fs::read_to_string(job.config())
        .unwrap()
        .replace("127.0.0.1:5432", "127.0.0.1:1");
    std::fs::write(job.config(), config).unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["outcome"], "error");
}

#[tokio::test]
async fn rows_are_compared_with_the_live_database_as_of_the_dump() {
    let db = source().await;
    let job = DumpJob::new(&db, DUMP_SUITE);
    let with_compare = std::fs::read_to_string(job.config()).unwrap().replace(
        "objectives = {",
        "compare = { table = \"public.orders\", key = [\"id\"], as_of = \"updated_at\", sample_fraction = 1.0 }\nrpo_column = \"public.orders.updated_at\"\nobjectives = {",
    );
    std::fs::write(job.config(), with_compare).unwrap();
    job.dump_of(&db, &[]);
    let client = db.client().await;
    // After the dump: rows changed (by as_of), deleted and added — none is a difference.
    client
        .batch_execute(
            "UPDATE orders SET note = 'changed later', updated_at = now() WHERE id <= 10;
             DELETE FROM orders WHERE id BETWEEN 11 AND 15;
             INSERT INTO orders (id, amount) SELECT g, 1 FROM generate_series(10001, 10020) g;",
        )
        .await
        .unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 0, "{report:#}");
    let sample = check(&report, "sample");
    assert_eq!(sample["outcome"], "passed", "{sample:#}");
    assert_eq!(sample["observed"]["changed_later"], 30, "{sample:#}");
    assert_eq!(sample["observed"]["extra"], 5, "{sample:#}");
    assert_eq!(report["compare"]["mode"], "as_of");
    // The RPO from the data: the source's newest updated_at (now) against the restored data's
    // (an hour ago).
    assert_eq!(report["rpo_basis"], "rpo_column", "{report:#}");
    let rpo = report["rpo_seconds"].as_f64().unwrap();
    assert!((3500.0..3700.0).contains(&rpo), "RPO {rpo}");

    // A value that differs from the source in a row the source did not change since: the
    // restored data is wrong.
    client
        .batch_execute("UPDATE orders SET amount = amount + 1 WHERE id = 20")
        .await
        .unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    let said = message(&report, "sample");
    assert!(said.contains("1 changed (amount: 1)"), "{said}");

    // Rows the source held before the dump that the dump lacks.
    client
        .batch_execute(
            "UPDATE orders SET amount = amount - 1 WHERE id = 20;
             INSERT INTO orders (id, amount, updated_at)
                 SELECT g, 1, now() - interval '2 hours' FROM generate_series(20001, 20003) g;",
        )
        .await
        .unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    let said = message(&report, "sample");
    assert!(said.contains("3 missing from the restore"), "{said}");
}

#[tokio::test]
async fn a_plain_dump_restored_without_its_owners_says_which_setting_to_use() {
    let db = source().await;
    let (_dir, run) = run_folder();
    let file = run.join("app.sql");
    dump(&db, "p", false, &file, &[]);
    let mut server = start(&run).await;
    let log = restore(&server, &file, Format::Plain, Owners::Skip)
        .await
        .unwrap();
    assert!(
        log.errors
            .iter()
            .any(|e| e.contains("role \"rd_dump_owner\" does not exist")),
        "{log:?}"
    );
    assert!(
        log.errors
            .last()
            .unwrap()
            .contains("set `owners = \"create\"`"),
        "{log:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_archive_time_is_read_in_the_dumping_machines_zone() {
    let db = source().await;
    let backups = tempfile::tempdir().unwrap();
    dump(
        &db,
        "c",
        false,
        &backups.path().join("app_2026-12-01.dump"),
        &[],
    );
    let location = Location::parse(&backups.path().display().to_string(), Path::new("/")).unwrap();
    let pattern = SnapshotPattern::parse("app_{date}.dump").unwrap();
    let utc = snapshot::choose(&location, &pattern, chrono_tz::UTC, None)
        .await
        .unwrap();
    // The header holds the local time of the machine that dumped (here UTC); read as Berlin
    // time in December (UTC+1), the same clock reading is an hour earlier.
    let berlin = snapshot::choose(&location, &pattern, chrono_tz::Europe::Berlin, None)
        .await
        .unwrap();
    assert_eq!((utc.time - berlin.time).num_seconds(), 3600);
}

#[tokio::test]
async fn a_job_may_name_the_server_binaries_it_restores_with() {
    let db = source().await;
    let job = DumpJob::new(&db, DUMP_SUITE);
    let bin = binaries().dir;
    let config = std::fs::read_to_string(job.config()).unwrap().replace(
        "pattern = \"app_{date}.dump\" }",
        &format!(
            "pattern = \"app_{{date}}.dump\", postgres_bin = \"{}\" }}",
            bin.display()
        ),
    );
    std::fs::write(job.config(), config).unwrap();
    job.dump_of(&db, &[]);
    let out = crate::helpers::cli(&["run", "--config", &job.config(), "app", "--dry-run"]);
    assert!(
        crate::helpers::stdout(&out).contains(&bin.display().to_string()),
        "{}",
        crate::helpers::stdout(&out)
    );
    let (code, report) = job.run();
    assert_eq!(code, 0, "{report:#}");

    let config = std::fs::read_to_string(job.config())
        .unwrap()
        .replace(&bin.display().to_string(), "/nonexistent/bin");
    std::fs::write(job.config(), config).unwrap();
    let out = crate::helpers::cli(&["validate", "--offline", "--config", &job.config()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::helpers::stderr(&out)
            .contains("`postgres_bin` /nonexistent/bin holds no pg_restore and pg_ctl"),
        "{}",
        crate::helpers::stderr(&out)
    );
}

/// Whether the server on 127.0.0.1:5432 holds the database `name`.
async fn database_exists(name: &str) -> bool {
    let admin = Database::admin().await;
    admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_sandbox_server_gets_a_database_of_each_run_dropped_with_its_folder() {
    let db = source().await;
    let sandbox_server = format!(", sandbox_server = \"{}\"", crate::history::ADMIN_URL);
    let job = DumpJob::with(
        &db,
        DUMP_SUITE,
        &sandbox_server,
        "keep_failed_sandbox = \"1s\"",
    );
    // A pass: restored into a database of the run's own, dropped afterwards.
    job.dump_of(&db, &[]);
    let out = crate::helpers::cli(&["run", "--config", &job.config(), "app", "--dry-run"]);
    assert!(
        crate::helpers::stdout(&out)
            .contains("on the sandbox server postgres://postgres@127.0.0.1:5432/postgres"),
        "{}{}",
        crate::helpers::stdout(&out),
        crate::helpers::stderr(&out)
    );

    let (code, report) = job.run();
    assert_eq!(code, 0, "{report:#}");
    let into = report["verify"]["structure"]["database"]["restore"]["into"]
        .as_str()
        .unwrap()
        .to_string();
    let database = into
        .strip_prefix("database ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    assert!(database.starts_with("restore_drill_run_"), "{into}");
    assert!(!database_exists(&database).await, "{database} was dropped");

    // A failure: the database is kept with the run folder, and dropped when the folder is swept.
    let bytes = std::fs::read(job.backups().join("app_2026-12-01.dump")).unwrap();
    std::fs::write(
        job.backups().join("app_2026-12-02.dump"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    let into = report["verify"]["structure"]["database"]["restore"]["into"]
        .as_str()
        .unwrap();
    let kept = into
        .strip_prefix("database ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    assert!(
        database_exists(&kept).await,
        "{kept} is kept for inspection"
    );
    std::fs::remove_file(job.backups().join("app_2026-12-02.dump")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, report) = job.run();
    assert_eq!(code, 0, "{report:#}");
    assert!(
        !database_exists(&kept).await,
        "{kept} was dropped when its kept folder was swept"
    );

    // `validate` reaches the sandbox server: one that does not answer, or whose user may not
    // create databases, is a problem naming it.
    Database::admin()
        .await
        .batch_execute("DO $$ BEGIN CREATE ROLE rd_no_createdb LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        .await
        .unwrap();
    for (server, expected) in [
        (
            "postgres://postgres@127.0.0.1:1/postgres",
            "the sandbox server postgres://postgres@127.0.0.1:1/postgres cannot be reached",
        ),
        (
            "postgres://rd_no_createdb@127.0.0.1:5432/postgres",
            "its user `rd_no_createdb` may not create databases",
        ),
    ] {
        let job = DumpJob::with(
            &db,
            DUMP_SUITE,
            &format!(", sandbox_server = \"{server}\""),
            "",
        );
        let out = crate::helpers::cli(&["validate", "--config", &job.config()]);
        assert_eq!(out.status.code(), Some(2));
        let said = crate::helpers::stderr(&out);
        assert!(said.contains(expected), "{said}");
    }

    // The source's own database as the sandbox server is refused when the file is loaded.
    let job = DumpJob::with(
        &db,
        DUMP_SUITE,
        &format!(
            ", sandbox_server = \"{}\"",
            db.url().replace("127.0.0.1", "localhost")
        ),
        "",
    );
    let out = crate::helpers::cli(&["validate", "--config", &job.config()]);
    assert_eq!(out.status.code(), Some(2));
    let said = crate::helpers::stderr(&out);
    assert!(
        said.contains("`sandbox_server`") && said.contains("never restores where the source lives"),
        "{said}"
    );
}

#[tokio::test]
async fn checks_equal_to_the_source_and_fingerprints_compare_with_the_live_tables() {
    let db = source().await;
    let suite = format!(
        "{DUMP_SUITE}{CUSTOMERS_SAME}
[[check]]
id = \"orders-amount-same\"
table = \"public.orders\"
kind = \"sum\"
column = \"amount\"
equals_source = true
"
    );
    let job = DumpJob::with(
        &db,
        &suite,
        "",
        "compare = { table = \"public.orders\", key = [\"id\"], as_of = \"updated_at\", sample_fraction = 0.1 }",
    );
    job.dump_of(&db, &[]);
    let (code, report) = job.run();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(check(&report, "customers-same")["observed"], 300);
    assert_eq!(
        check(&report, "customers-same")["expected"]["equals_source"],
        300
    );
    for table in ["public.customers", "public.orders"] {
        let fingerprint = check(&report, &format!("fingerprint {table}"));
        assert_eq!(fingerprint["outcome"], "passed", "{fingerprint:#}");
    }

    // A value changed inside the dump: the table's fingerprint differs from the live table's,
    // naming the column, while its row count still agrees.
    let plain = job.backups().join("plain.sql");
    // `--verbose` writes the dump's time into the script.
    dump(&db, "p", false, &plain, &["--verbose"]);
    let text = std::fs::read_to_string(&plain).unwrap();
    std::fs::remove_file(&plain).unwrap();
    assert!(text.contains("\n7\tcustomer 7\n"));
    std::fs::write(
        job.backups().join("app_2026-12-01.dump"),
        text.replace("\n7\tcustomer 7\n", "\n7\tcustomer 7b\n"),
    )
    .unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    let said = message(&report, "fingerprint public.customers");
    assert!(
        said.contains("columns whose values differ: name") && said.contains("as read now"),
        "{said}"
    );
    assert_eq!(check(&report, "customers-same")["outcome"], "passed");
    assert_eq!(
        check(&report, "fingerprint public.orders")["outcome"],
        "passed"
    );

    // Rows the source changed after the dump (by `as_of`): that table is judged on its bounds,
    // with a warning, and the drill passes.
    job.dump_of(&db, &[]);
    db.client()
        .await
        .batch_execute("UPDATE orders SET amount = amount + 1, updated_at = now() WHERE id <= 10")
        .await
        .unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        check(&report, "fingerprint public.orders")["outcome"],
        "skipped"
    );
    assert_eq!(check(&report, "orders-amount-same")["outcome"], "passed");
    let warned = report["findings"].as_array().unwrap().iter().any(|f| {
        f["message"].as_str().unwrap().contains(
            "10 rows of the source's table public.orders have `updated_at` later than the dump",
        )
    });
    assert!(warned, "{report:#}");

    // A table without `as_of` is compared exactly: a row deleted since the dump differs.
    db.client()
        .await
        .batch_execute("DELETE FROM customers WHERE id = 300")
        .await
        .unwrap();
    let (code, report) = job.run();
    assert_eq!(code, 1, "{report:#}");
    let said = message(&report, "customers-same");
    assert!(
        said.contains("300 in the restore but 299 in the source as read now"),
        "{said}"
    );
}

#[tokio::test]
async fn a_dump_is_restored_for_real_into_a_new_database_and_replace_renames_the_old_one() {
    let db = source().await;
    let suite = format!("{DUMP_SUITE}{CUSTOMERS_SAME}");
    let job = DumpJob::new(&db, &suite);
    let config = job.config();
    crate::helpers::prepend(Path::new(&config), "[history]\njournal = \"journal\"");
    job.dump_of(&db, &[]);
    let (code, drilled) = job.run();
    assert_eq!(code, 0, "{drilled:#}");
    let name = format!("{}_restored", db.name);
    let target = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore", "--config", &config, "app", "--to", &target, "--reason", "INC-5",
        ];
        args.extend_from_slice(extra);
        crate::helpers::cli(&args)
    };
    let customers = |database: String| async move {
        let (client, connection) = tokio_postgres::connect(
            &format!("postgres://postgres@127.0.0.1:5432/{database}"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT count(*) FROM customers", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };

    // Into a new database: verified against the drill's fingerprint of each table, and kept.
    let out = restore(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::helpers::stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_str(&crate::helpers::stdout(&out)).unwrap();
    let fingerprint = check(&report, "fingerprint public.customers");
    assert_eq!(fingerprint["outcome"], "passed", "{fingerprint:#}");
    assert_eq!(
        fingerprint["observed"],
        check(&drilled, "fingerprint public.customers")["observed"]
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != "source"),
        "a restore does not compare with the live source"
    );
    assert_eq!(customers(name.clone()).await, 300);

    // A database of that name exists now: refused, then renamed aside with --replace.
    let out = restore(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::helpers::stderr(&out).contains("already holds data; nothing was written"),
        "{}",
        crate::helpers::stderr(&out)
    );
    // The rename waits for no one: sessions still connected (the count above, closing) refuse
    // it, and the output says to pause what uses the database.
    let admin = Database::admin().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 0 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = restore(&["--replace", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::helpers::stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_str(&crate::helpers::stdout(&out)).unwrap();
    let aside = report["recovery"]["moved_aside"].as_str().unwrap();
    let aside_name = aside.rsplit('/').next().unwrap().to_string();
    let run_id = report["run_id"]
        .as_str()
        .unwrap()
        .replace('-', "_")
        .to_lowercase();
    assert!(
        aside_name.ends_with(&format!("_moved_aside_{run_id}")),
        "{aside}"
    );
    assert_eq!(customers(aside_name.clone()).await, 300);
    assert_eq!(customers(name.clone()).await, 300);
    for database in [name, aside_name] {
        admin
            .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_self_test_damages_dumps_of_the_restored_database_and_drills_each() {
    let db = source().await;
    let job = DumpJob::new(&db, DUMP_SUITE);
    job.dump_of(&db, &[]);
    let (_, report) = crate::helpers::selftest(Path::new(&job.config()), "app", "9");
    assert_eq!(report["status"], "judged", "{report:#}");
    let line = |damage: &str| {
        report["damages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["damage"] == damage)
            .unwrap()
            .clone()
    };
    // A dump has no commit log and its time is pg_dump's; the orders' primary key refuses
    // duplicate rows, so no dump can hold them.
    for damage in ["missing_commit", "old_snapshot", "rows_duplicated"] {
        assert_eq!(line(damage)["outcome"], "n/a", "{report:#}");
    }
    // This suite compares no value of the orders with the source: a changed value passes.
    let drifted = line("values_drifted");
    assert_eq!(drifted["outcome"], "missed", "{drifted:#}");
    assert!(
        drifted["suggestion"]
            .as_str()
            .unwrap()
            .contains("`sum` with `equals_source = true`")
    );
    for (damage, by) in [
        ("truncated_file", "structure"),
        ("column_dropped", "source"),
    ] {
        let l = line(damage);
        assert_eq!(l["outcome"], "caught", "{l:#}");
        assert!(
            l["caught_by"].as_array().unwrap().iter().any(|c| c == by),
            "{l:#}"
        );
    }
    // Cleaned like a drill: every run folder and its server gone.
    let runs: Vec<_> = std::fs::read_dir(job.dir.path().join("sandbox/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(runs.is_empty(), "{runs:?}");
}
