//! Bad input: a clear message naming file, line and column, exit 2, nothing written.

use std::path::Path;

use crate::helpers::{JOB, Lake, SUITE, cli, stderr, stdout};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const GOOD_JOB: &str = r#"[[job]]
name = "orders"
source = "lake/orders"
snapshots = { kind = "delta_copy", location = "backups", pattern = "orders_{date}" }
sandbox = "sandbox"
suite = "suite.toml"
objectives = { rpo = "26h", rto = "2h" }
"#;

/// `validate --offline` of a configuration beside the common suite: the files only.
fn validate(config_text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "suite.toml", SUITE);
    let config = write(dir.path(), "c.toml", config_text);
    let out = cli(&["validate", "--offline", "--config", &config]);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "suite.toml" && n != "c.toml")
        .collect();
    assert!(leftovers.is_empty(), "validate wrote {leftovers:?}");
    (out.status.code().unwrap(), stderr(&out) + &stdout(&out))
}

#[test]
fn a_valid_config_exits_0() {
    let (code, text) = validate(GOOD_JOB);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("valid (1 job, 4 checks)"), "{text}");
}

#[test]
fn malformed_toml_names_line_and_column() {
    let (code, text) = validate("[[job]]\nname = \"orders\nsource = 1\n");
    assert_eq!(code, 2);
    assert!(text.contains("c.toml:2:"), "{text}");
    assert!(text.contains("invalid TOML"), "{text}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_position() {
    let text = GOOD_JOB
        .replace("sandbox = \"sandbox\"", "sandobx = \"sandbox\"")
        .replace("rpo = \"26h\"", "rpo = \"26 hours\"")
        .replace("suite = \"suite.toml\"", "suite = \"missing.toml\"");
    let (code, out) = validate(&text);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("4 problems in the configuration"), "{out}");
    assert!(
        out.contains("c.toml:1:1: job `orders`: missing `sandbox`"),
        "{out}"
    );
    assert!(
        out.contains("c.toml:5:1: job `orders`: unknown key `sandobx`; did you mean `sandbox`?"),
        "{out}"
    );
    assert!(
        out.contains("c.toml:6:9: job `orders`: suite file"),
        "{out}"
    );
    assert!(out.contains("missing.toml does not exist"), "{out}");
    assert!(
        out.contains("c.toml:7:22: job `orders` objectives `rpo`: `26 hours` is not a duration"),
        "{out}"
    );
}

#[test]
fn problems_inside_the_suite_name_the_suite_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "suite.toml",
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmni = 1\n",
    );
    let config = write(dir.path(), "c.toml", GOOD_JOB);
    let out = cli(&["validate", "--offline", "--config", &config]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(
        text.contains("suite.toml:4:1: check `rows`: unknown key `mni`; did you mean `min`?"),
        "{text}"
    );
}

#[test]
fn a_sandbox_inside_the_source_or_the_backups_is_refused() {
    for sandbox in ["lake/orders/restore", "backups/sandbox", "."] {
        let text = GOOD_JOB.replace("sandbox = \"sandbox\"", &format!("sandbox = \"{sandbox}\""));
        let (code, out) = validate(&text);
        assert_eq!(code, 2, "{sandbox}: {out}");
        assert!(out.contains("overlaps the"), "{sandbox}: {out}");
        assert!(out.contains("c.toml:5:11"), "{sandbox}: {out}");
    }
}

#[test]
fn unset_environment_variables_are_named() {
    let text = GOOD_JOB.replace("lake/orders", "${RESTORE_DRILL_TEST_UNSET_VAR}/orders");
    let (code, out) = validate(&text);
    assert_eq!(code, 2);
    assert!(
        out.contains("c.toml:3:11: environment variable `RESTORE_DRILL_TEST_UNSET_VAR` is not set"),
        "{out}"
    );
}

#[test]
fn storage_locations_and_profiles_are_checked() {
    let (code, out) = validate(&GOOD_JOB.replace("\"lake/orders\"", "\"gs://lake/orders\""));
    assert_eq!(code, 2);
    assert!(
        out.contains("c.toml:3:10: job `orders`: `source`: `gs://lake/orders`: `gs://` locations are not supported; use a local folder path, a file:// URL or an s3:// URL"),
        "{out}"
    );

    let text = format!(
        "[storage.minio]\nendpoint = \"minio:9000\"\naccess_key_id_env = \"MINIO_KEY\"\n\n{}",
        GOOD_JOB
            .replace("\"sandbox\"", "\"s3://dr-sandbox/restore-drill/\"")
            .replace("objectives =", "storage = \"mini\"\nobjectives =")
    );
    let (code, out) = validate(&text);
    assert_eq!(code, 2, "{out}");
    for expected in [
        "c.toml:2:12: [storage.minio]: `endpoint` must be an http:// or https:// URL",
        "c.toml:3:21: [storage.minio]: give both `access_key_id_env` and `secret_access_key_env`",
        "c.toml:11:11: job `orders`: no storage profile `mini`; define it as [storage.mini] (profiles: minio)",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn an_s3_sandbox_may_share_the_source_bucket_but_not_overlap_it() {
    let on_s3 = |sandbox: &str| {
        GOOD_JOB
            .replace("\"lake/orders\"", "\"s3://lake/orders/\"")
            .replace(
                "location = \"backups\"",
                "location = \"s3://backups/daily/\"",
            )
            .replace("\"sandbox\"", &format!("\"{sandbox}\""))
    };
    for disjoint in [
        "s3://lake/restore-drill/",
        "s3://lake/orders-sandbox/",
        "s3://backups/sandbox/",
    ] {
        let (code, out) = validate(&on_s3(disjoint));
        assert_eq!(code, 0, "{disjoint}: {out}");
    }
    for (overlapping, role) in [
        ("s3://lake/", "source s3://lake/orders/"),
        ("s3://lake/orders/sandbox/", "source s3://lake/orders/"),
        (
            "s3://backups/daily/x/",
            "snapshots.location s3://backups/daily/",
        ),
    ] {
        let (code, out) = validate(&on_s3(overlapping));
        assert_eq!(code, 2, "{overlapping}: {out}");
        assert!(
            out.contains(&format!(
                "c.toml:5:11: job `orders`: the sandbox {overlapping} overlaps the {role}"
            )),
            "{overlapping}: {out}"
        );
    }
}

#[test]
fn snapshot_kinds_are_checked() {
    let with = |snapshots: &str| {
        GOOD_JOB.replace(
            "{ kind = \"delta_copy\", location = \"backups\", pattern = \"orders_{date}\" }",
            snapshots,
        )
    };
    for good in [
        "{ kind = \"delta_time_travel\", lag = \"24h\" }",
        "{ kind = \"delta_time_travel\", version = 3 }",
        "{ kind = \"delta_time_travel\", timestamp = \"2026-11-28T00:00:00Z\" }",
        "{ kind = \"s3_versions\", location = \"s3://lake/orders/\", lag = \"1h\" }",
    ] {
        let (code, out) = validate(&with(good));
        assert_eq!(code, 0, "{good}: {out}");
    }
    for (bad, expected) in [
        (
            "{ kind = \"delta_time_travel\" }",
            "c.toml:4:13: job `orders` snapshots: give the point in time to restore: `lag`",
        ),
        (
            "{ kind = \"delta_time_travel\", lag = \"1h\", version = 2 }",
            "give only one of `lag`",
        ),
        (
            "{ kind = \"delta_time_travel\", timestamp = \"yesterday\" }",
            "`timestamp` `yesterday` is not an RFC 3339 time",
        ),
        (
            "{ kind = \"delta_time_travel\", lag = \"1h\", location = \"x\" }",
            "location",
        ),
        (
            "{ kind = \"s3_versions\", location = \"backups\", lag = \"1h\" }",
            "an s3_versions snapshot lives in a versioned S3 bucket",
        ),
        (
            "{ kind = \"s3_versions\", location = \"s3://lake/orders/\", version = 3 }",
            "version",
        ),
        (
            "{ kind = \"zfs\" }",
            "unknown snapshot kind `zfs`; use \"delta_copy\", \"delta_time_travel\", \"s3_versions\" or \"pg_dump\"",
        ),
    ] {
        let (code, out) = validate(&with(bad));
        assert_eq!(code, 2, "{bad}: {out}");
        assert!(
            out.contains(expected),
            "{bad}: missing {expected:?} in:\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_on_a_column_the_table_lacks_names_the_columns_it_has() {
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-28");
    let suite = "[[check]]\nid = \"x\"\nkind = \"not_null\"\ncolumns = [\"transaction_idd\"]\n";
    let config = lake.config(suite, "26h");
    let out = cli(&["run", "--config", config.to_str().unwrap(), JOB]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains("reads column `transaction_idd`, which the table does not have"),
        "{text}"
    );
    assert!(
        text.contains(
            "its columns are: transaction_id, account_id, amount, currency, status, booked_at"
        ),
        "{text}"
    );
    assert!(text.contains("suite.toml:1"), "{text}");
    assert!(
        lake.sandbox_contents().is_empty(),
        "nothing may be written: {:?}",
        lake.sandbox_contents()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_the_suite_against_the_source_schema() {
    let lake = Lake::new(1, 100).await;
    let suite = "[[check]]\nid = \"avg\"\nkind = \"mean\"\ncolumn = \"status\"\nmin = 0\n\n[[check]]\nid = \"x\"\nkind = \"not_null\"\ncolumns = [\"nope\"]\n";
    let config = lake.config(suite, "26h");
    let out = cli(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("2 problems in the suites"), "{text}");
    assert!(
        text.contains(
            "suite.toml:1:1: check `avg` (mean) needs a numeric column but `status` is string"
        ),
        "{text}"
    );
    assert!(
        text.contains("suite.toml:7:1: check `x` reads column `nope`"),
        "{text}"
    );
    assert!(lake.sandbox_contents().is_empty());
}

/// Jobs naming the same source share one reading of its log; each job's suite is still checked
/// against it, and a job on a source that cannot be opened is named alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_every_job_of_a_shared_source_and_names_the_one_that_cannot_open() {
    let lake = Lake::new(1, 100).await;
    std::fs::write(
        lake.root.join("good.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1\n",
    )
    .unwrap();
    std::fs::write(
        lake.root.join("bad.toml"),
        "[[check]]\nid = \"x\"\nkind = \"not_null\"\ncolumns = [\"nope\"]\n",
    )
    .unwrap();
    let job = |name: &str, source: &str, suite: &str| {
        format!(
            "[[job]]\nname = \"{name}\"\nsource = \"{source}\"\nsnapshots = {{ kind = \"delta_copy\", location = \"backups/daily\", pattern = \"transactions_{{date}}\" }}\nsandbox = \"sandbox\"\nsuite = \"{suite}\"\nobjectives = {{ rpo = \"26h\", rto = \"1h\" }}\n\n"
        )
    };
    let text = [
        job("first", "lake/transactions", "good.toml"),
        job("second", "lake/transactions", "bad.toml"),
        job("third", "lake/missing", "good.toml"),
        job("fourth", "lake/transactions", "good.toml"),
    ]
    .concat();
    let config = lake.root.join("shared.toml");
    std::fs::write(&config, text).unwrap();
    let out = cli(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("2 problems"), "{err}");
    assert!(
        err.contains("bad.toml:1:1: check `x` reads column `nope`"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "job `third`: the source {} cannot be opened",
            lake.root.join("lake/missing").display()
        )),
        "{err}"
    );
    assert!(!err.contains("good.toml"), "{err}");
}

#[test]
fn service_settings_and_schedules_are_checked_with_their_positions() {
    let text = format!(
        "[server]\nlisten = \"localhost\"\nmax_concurrent_drills = 0\nweb_config = \"missing.yml\"\nshutdown_grace = \"soon\"\n\n{}",
        GOOD_JOB.replace(
            "objectives =",
            "schedule = \"30 2 * * *\"\ntimeout = \"0s\"\njitter = \"2 minutes\"\nobjectives ="
        )
    );
    let (code, out) = validate(&text);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("7 problems in the configuration"), "{out}");
    for expected in [
        "c.toml:2:10: [server]: `listen` must be an address and port such as \"127.0.0.1:9841\"",
        "c.toml:3:25: [server]: `max_concurrent_drills` must be between 1 and 1024, found 0",
        "c.toml:4:14: [server]: `web_config` file",
        "c.toml:5:18: [server]: `shutdown_grace`:",
        "c.toml:13:12: job `orders`: `30 2 * * *` is not a cron expression: it has 5 fields; a schedule has 6",
        "c.toml:14:11: job `orders`: `timeout` must be longer than 0s",
        "c.toml:15:10: job `orders`: `jitter`:",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    let (code, out) = validate(&GOOD_JOB.replace(
        "objectives =",
        "schedule = \"0 30 2 * * *\"\ntimezone = \"Europe/Berln\"\nobjectives =",
    ));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("c.toml:8:12: job `orders`: unknown time zone `Europe/Berln`"),
        "{out}"
    );

    let (code, out) =
        validate(&GOOD_JOB.replace("objectives =", "timezone = \"UTC\"\nobjectives ="));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("`timezone` is set but `schedule` is not"),
        "{out}"
    );

    let (code, out) = validate(&GOOD_JOB.replace(
        "objectives =",
        "schedule = \"0 30 2 * * *\"\ntimezone = \"Europe/Berlin\"\ntimeout = \"3h\"\njitter = \"5m\"\nobjectives =",
    ));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn history_settings_are_checked() {
    let (code, out) = validate(&format!(
        "[history]\nkeep = \"12h\"\npostgres = \"not a url\"\njurnal = \"j\"\n\n{GOOD_JOB}"
    ));
    assert_eq!(code, 2, "{out}");
    for expected in [
        "c.toml:2:8: [history]: `keep` must be at least 1d",
        "c.toml:3:12: [history]: `postgres` is not a PostgreSQL URL",
        "c.toml:4:1: [history]: unknown key `jurnal`; did you mean `journal`?",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(!out.contains("not a url"), "the URL is echoed: {out}");
}

#[test]
fn replicas_are_checked_and_need_a_database_to_claim_drills_in() {
    let (code, out) = validate(&format!(
        "[server]\nreplicas = \"postgres\"\nclaim_lease = \"1s\"\n\n{GOOD_JOB}"
    ));
    assert_eq!(code, 2, "{out}");
    for expected in [
        "c.toml:2:12: [server]: `replicas = \"postgres\"` needs `[history] postgres`",
        "c.toml:3:15: [server]: `claim_lease` must be at least 3s",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let (code, out) = validate(&format!("[server]\nreplicas = \"many\"\n\n{GOOD_JOB}"));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("c.toml:2:12: [server]: `replicas` must be \"single\" (one serve process) or \"postgres\""),
        "{out}"
    );
    let (code, out) = validate(&format!(
        "[server]\nreplicas = \"postgres\"\nclaim_lease = \"30s\"\n\n[history]\npostgres = \"postgres://rd@db:5432/rd\"\n\n{GOOD_JOB}"
    ));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn validate_checks_the_web_config_too() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "suite.toml", SUITE);
    write(
        dir.path(),
        "web.yml",
        "basic_auth_users:\n  prometheus: not-a-hash\n",
    );
    let config = write(
        dir.path(),
        "c.toml",
        &format!("[server]\nweb_config = \"web.yml\"\n\n{GOOD_JOB}"),
    );
    let out = cli(&["validate", "--config", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "web.yml: basic_auth_users: the password of `prometheus` is not a bcrypt hash"
        ),
        "{err}"
    );
}

#[test]
fn validate_fails_on_a_source_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "suite.toml", SUITE);
    let config = write(dir.path(), "c.toml", GOOD_JOB);
    let out = cli(&["validate", "--config", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "job `orders`: the source {} cannot be opened",
            dir.path().join("lake/orders").display()
        )),
        "{text}"
    );
    assert!(text.contains("--offline"), "{text}");
}

#[test]
fn durations_that_would_overflow_are_refused() {
    let text = format!(
        "[history]\nkeep = \"100000000w\"\n\n{}",
        GOOD_JOB.replace(
            "objectives =",
            "schedule = \"0 30 2 * * *\"\njitter = \"5300w\"\nobjectives ="
        )
    );
    let (code, out) = validate(&text);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("c.toml:2:8: [history]: `keep`: `100000000w` is longer than 100 years"),
        "{out}"
    );
    assert!(
        out.contains("job `orders`: `jitter`: `5300w` is longer than 100 years"),
        "{out}"
    );
}

#[test]
fn a_sandbox_over_another_jobs_data_is_refused() {
    let second = |sandbox: &str| {
        format!(
            "{GOOD_JOB}\n[[job]]\nname = \"payments\"\nsource = \"lake/payments\"\nsnapshots = {{ kind = \"delta_copy\", location = \"backups/payments\", pattern = \"payments_{{date}}\" }}\nsandbox = \"{sandbox}\"\nsuite = \"suite.toml\"\nobjectives = {{ rpo = \"26h\", rto = \"2h\" }}\n"
        )
    };
    // The same sandbox root for both jobs is fine, and so is a separate one.
    for fine in ["sandbox", "sandbox-payments"] {
        let (code, out) = validate(&second(fine));
        assert_eq!(code, 0, "{fine}: {out}");
    }
    for (sandbox, overlapped) in [
        ("lake/orders/tmp", "source"),
        ("backups", "snapshots.location"),
        ("sandbox/payments", "sandbox"),
    ] {
        let (code, out) = validate(&second(sandbox));
        assert_eq!(code, 2, "{sandbox}: {out}");
        assert!(
            out.contains("c.toml:13:11: job `payments`: the sandbox")
                && out.contains(&format!("overlaps the {overlapped}"))
                && out.contains("of job `orders`"),
            "{sandbox}: {out}"
        );
    }
}

const PG_JOB: &str = r#"[[job]]
name = "app"
source = "postgres://reader@db.internal:5432/app"
snapshots = { kind = "pg_dump", location = "backups", pattern = "app_{date}.dump" }
sandbox = "sandbox"
suite = "tables.toml"
objectives = { rpo = "26h", rto = "2h" }
"#;

const TABLE_SUITE: &str = r#"
[[check]]
id = "orders-rows"
table = "public.orders"
kind = "row_count"
min = 1
"#;

#[test]
fn pg_dump_jobs_are_checked() {
    let check = |config_text: &str| {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "suite.toml", SUITE);
        write(dir.path(), "tables.toml", TABLE_SUITE);
        let config = write(dir.path(), "c.toml", config_text);
        let out = cli(&["validate", "--offline", "--config", &config]);
        (out.status.code().unwrap(), stderr(&out) + &stdout(&out))
    };
    let (code, out) = check(PG_JOB);
    assert_eq!(code, 0, "{out}");
    for (from, to, expected) in [
        (
            "reader@db",
            "reader:hunter2@db",
            "`source` holds a password; remove it from the URL and name the environment variable that holds it with `source_password_env`",
        ),
        (
            "\"postgres://reader@db.internal:5432/app\"",
            "\"/data/app\"",
            "a pg_dump job's `source` is the live database as a URL",
        ),
        ("5432/app", "5432", "`source` names no database"),
        (
            "pattern = \"app_{date}.dump\" }",
            "pattern = \"app_{date}.dump\", owners = \"maybe\" }",
            "`owners` `maybe` is unknown",
        ),
        (
            "pattern = \"app_{date}.dump\" }",
            "pattern = \"app_{date}.dump\", dump_timezone = \"Mars/Base\" }",
            "`dump_timezone` `Mars/Base` is not a time zone",
        ),
        (
            "sandbox = \"sandbox\"",
            "sandbox = \"s3://dr/sandbox/\"",
            "a pg_dump job restores into a server on local disk",
        ),
        (
            "suite = \"tables.toml\"",
            "suite = \"tables.toml\"\ncompare = { key = [\"id\"], sample_rows = 10, table = \"orders\" }",
            "`compare` names no `as_of`: a live database changes after its dump",
        ),
        (
            "suite = \"tables.toml\"",
            "suite = \"tables.toml\"\nrpo_column = \"updated_at\"",
            "`rpo_column` `updated_at` names no table; a pg_dump job's is schema.table.column",
        ),
        (
            "suite = \"tables.toml\"",
            "suite = \"suite.toml\"",
            "names no `table`; a pg_dump job's checks each name the table they read",
        ),
        (
            "pattern = \"app_{date}.dump\"",
            "pattern = \"app_{date}.dump\", sandbox_server = \"postgres://drill:hunter2@sandbox-db/postgres\"",
            "`sandbox_server` holds a password; remove it from the URL and name the environment variable that holds it with `sandbox_server_password_env`",
        ),
        (
            "pattern = \"app_{date}.dump\"",
            "pattern = \"app_{date}.dump\", sandbox_server = \"postgresql://drill@DB.internal/app\"",
            "`sandbox_server` postgresql://drill@DB.internal/app names the source's own server and database",
        ),
    ] {
        let (code, out) = check(&PG_JOB.replace(from, to));
        assert_eq!(code, 2, "{to}: {out}");
        assert!(
            out.contains(expected),
            "{to}: missing {expected:?} in:\n{out}"
        );
        assert!(
            !out.contains("hunter2"),
            "the password is never shown: {out}"
        );
    }
    // A Delta job's checks name no table.
    let (code, out) = check(&GOOD_JOB.replace("suite.toml", "tables.toml"));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("but the job drills one Delta table; remove `table`"),
        "{out}"
    );
}
