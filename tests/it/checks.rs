//! Each check kind, holding and failing, on a table whose values are known: 3,000 demo
//! transactions (ids 1..=3000, currencies EUR/USD/GBP/CHF, statuses settled/pending/refunded).

use restore_drill::drill::{DrillReport, Outcome};
use restore_drill::verify::{CheckOutcome, CheckResult};

use crate::helpers::{Lake, findings};

async fn drill(suite: &str) -> DrillReport {
    let lake = Lake::new(3, 1_000).await;
    lake.snapshot("2026-11-28");
    let config = lake.config(suite, "26h");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}redact = [\"account_id\"]\n")).unwrap();
    lake.drill(&config, None).await
}

fn check<'r>(report: &'r DrillReport, id: &str) -> &'r CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check `{id}`; {}", findings(report)))
}

fn outcome(report: &DrillReport, id: &str) -> CheckOutcome {
    check(report, id).outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_holds_on_good_data() {
    let report = drill(
        r#"
[[check]]
id = "rows"
kind = "row_count"
equals = 3000
equals_source = true

[[check]]
id = "rows-log"
kind = "row_count_matches_log"

[[check]]
id = "min-id"
kind = "min"
column = "transaction_id"
equals = 1
equals_source = true

[[check]]
id = "max-id"
kind = "max"
column = "transaction_id"
max = 3000

[[check]]
id = "mean-id"
kind = "mean"
column = "transaction_id"
equals = 1500.5

[[check]]
id = "amount"
kind = "sum"
column = "amount"
equals_source = true
rel_tolerance = 0.0

[[check]]
id = "present"
kind = "not_null"
columns = ["transaction_id", "currency"]

[[check]]
id = "keys"
kind = "unique"
columns = ["transaction_id"]

[[check]]
id = "currencies"
kind = "distinct_count"
columns = ["currency"]
equals = 4

[[check]]
id = "range"
kind = "in_range"
column = "transaction_id"
min = 1
max = 3000

[[check]]
id = "set"
kind = "in_set"
column = "currency"
values = ["EUR", "USD", "GBP", "CHF"]

[[check]]
id = "not-set"
kind = "not_in_set"
column = "status"
values = ["deleted"]

[[check]]
id = "regex"
kind = "matches_regex"
column = "currency"
pattern = "^[A-Z]{3}$"

[[check]]
id = "length"
kind = "length_between"
column = "status"
min = 7
max = 8

[[check]]
id = "future"
kind = "not_in_future"
column = "booked_at"

[[check]]
id = "condition"
kind = "row_condition"
condition = "account_id >= 1000"

[[check]]
id = "fresh"
kind = "freshness"
column = "booked_at"
max_age = "3650d"

[[check]]
id = "schema"
kind = "schema"
required = { transaction_id = "long", amount = "decimal(18,2)", currency = "" }
forbidden = ["password"]
equals_source = true

[[check]]
id = "custom"
kind = "custom_sql"
sql = "SELECT count(*) FROM t WHERE status = 'settled'"
min = 1
"#,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    for c in &report.checks {
        assert_eq!(c.outcome, CheckOutcome::Passed, "{c:?}");
    }
    assert_eq!(check(&report, "set").element_count, Some(3000));
    assert_eq!(check(&report, "set").unexpected_count, Some(0));
    // The column checks ran in one aggregate over the restored table; custom SQL on its own.
    let queries = &report.verify.as_ref().unwrap().queries;
    let restored: Vec<&str> = queries
        .iter()
        .filter(|q| q.target == "restored")
        .map(|q| q.sql.as_str())
        .collect();
    // The integer key and the string key are both counted in the one aggregate (the string by
    // its hashes): no GROUP BY of their own.
    assert_eq!(restored.len(), 1, "{restored:#?}");
    assert!(
        restored[0].contains("restore_drill_key_hashes(\"currency\")"),
        "{restored:#?}"
    );
    assert_eq!(queries.iter().filter(|q| q.target == "custom").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_fails_with_a_message_and_evidence() {
    let report = drill(
        r#"
[[check]]
id = "rows"
kind = "row_count"
equals = 2999

[[check]]
id = "max-id"
kind = "max"
column = "transaction_id"
max = 2000

[[check]]
id = "mean-id"
kind = "mean"
column = "transaction_id"
equals = 1500
abs_tolerance = 0.25

[[check]]
id = "currencies"
kind = "distinct_count"
columns = ["currency"]
min = 5

[[check]]
id = "range"
kind = "in_range"
column = "transaction_id"
min = 1
max = 2999

[[check]]
id = "set"
kind = "in_set"
column = "currency"
values = ["EUR", "USD"]
severity = "warn"

[[check]]
id = "not-set"
kind = "not_in_set"
column = "status"
values = ["refunded"]

[[check]]
id = "regex"
kind = "matches_regex"
column = "status"
pattern = "^settled$"

[[check]]
id = "length"
kind = "length_between"
column = "status"
max = 7

[[check]]
id = "condition"
kind = "row_condition"
condition = "transaction_id < 2990"

[[check]]
id = "fresh"
kind = "freshness"
column = "booked_at"
max_age = "1s"

[[check]]
id = "schema"
kind = "schema"
required = { transaction_id = "integer", missing_column = "" }
forbidden = ["account_id"]

[[check]]
id = "custom"
kind = "custom_sql"
sql = "SELECT count(*) FROM t WHERE status = 'settled'"
max = 10
"#,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    for c in report
        .checks
        .iter()
        .filter(|c| !matches!(c.kind.as_str(), "structure" | "fingerprint" | "rpo" | "rto"))
    {
        assert_eq!(c.outcome, CheckOutcome::Failed, "{c:?}");
        assert!(c.message.is_some(), "{c:?}");
    }
    let range = check(&report, "range");
    assert_eq!(range.unexpected_count, Some(1));
    assert!(
        range
            .message
            .as_deref()
            .unwrap()
            .starts_with("1 of 3000 values of `transaction_id` do not hold"),
        "{range:?}"
    );
    // Examples of a failed row-level check: the offending rows, redacted columns masked.
    assert_eq!(range.examples.len(), 1);
    assert_eq!(range.examples[0]["transaction_id"], "3000");
    assert_eq!(range.examples[0]["account_id"], "***");
    assert_eq!(check(&report, "condition").examples.len(), 11);
    assert_eq!(
        check(&report, "regex").examples.len(),
        20,
        "at most 20 examples"
    );
    let schema = check(&report, "schema").message.clone().unwrap();
    assert!(
        schema.contains("`transaction_id` is long, required integer"),
        "{schema}"
    );
    assert!(
        schema.contains("required column `missing_column` is missing"),
        "{schema}"
    );
    assert!(
        schema.contains("forbidden column `account_id` is present"),
        "{schema}"
    );
    assert!(
        check(&report, "rows")
            .message
            .as_deref()
            .unwrap()
            .contains("not 2999")
    );
    // A `warn` check is a warning finding, not a failure on its own.
    let warn = report.findings.iter().find(|f| f.check == "set").unwrap();
    assert_eq!(warn.severity.as_str(), "warn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_alone_pass_and_mostly_allows_a_fraction() {
    let report = drill(
        r#"
[[check]]
id = "set"
kind = "in_set"
column = "currency"
values = ["EUR", "USD", "GBP"]
severity = "warn"

[[check]]
id = "mostly"
kind = "not_in_set"
column = "currency"
values = ["CHF"]
mostly = 0.5
"#,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    assert_eq!(outcome(&report, "set"), CheckOutcome::Failed);
    assert_eq!(outcome(&report, "mostly"), CheckOutcome::Passed);
    assert!(check(&report, "mostly").unexpected_count.unwrap() > 0);
    assert_eq!(report.findings.len(), 1, "{}", findings(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_does_not_fit_the_column_type_stops_the_drill_before_anything_is_written() {
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-28");
    let suite = "[[check]]\nid = \"s\"\nkind = \"sum\"\ncolumn = \"currency\"\nmin = 0\n\n[[check]]\nid = \"r\"\nkind = \"matches_regex\"\ncolumn = \"amount\"\npattern = \"x\"\n";
    let report = lake.drill(&lake.config(suite, "26h"), None).await;
    assert_eq!(report.outcome, Outcome::Error);
    let error = report.error.unwrap();
    assert!(
        error.contains(
            "suite.toml:1:1: check `s` (sum) needs a numeric column but `currency` is string"
        ),
        "{error}"
    );
    assert!(error.contains("suite.toml:7:1: check `r` (matches_regex) needs a string column but `amount` is decimal(18,2)"), "{error}");
    assert!(lake.sandbox_contents().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimum_and_maximum_of_a_timestamp_show_as_times() {
    let report = drill(
        "[[check]]\nid = \"first\"\nkind = \"min\"\ncolumn = \"booked_at\"\nequals_source = true\n\n[[check]]\nid = \"last\"\nkind = \"max\"\ncolumn = \"booked_at\"\nequals_source = true\n",
    )
    .await;
    assert_eq!(report.outcome, Outcome::Passed, "{}", findings(&report));
    for id in ["first", "last"] {
        let result = check(&report, id);
        let observed = result.observed.as_str().unwrap_or_default();
        assert!(
            observed.starts_with("2026-11-") && observed.ends_with('Z'),
            "{id}: {:?}",
            result.observed
        );
        assert_eq!(result.expected["equals_source"], result.observed, "{id}");
    }
}
