//! The metrics a passed and then a failed drill export.

use restore_drill::metrics::DrillMetrics;

use crate::helpers::{JOB, Lake, SUITE, data_files};

fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_last_drill_of_the_job() {
    let lake = Lake::new(2, 1_000).await;
    let snapshot = lake.snapshot("2026-11-28");
    let config = lake.config(SUITE, "26h");
    let metrics = DrillMetrics::new();

    let passed = lake.drill(&config, None).await;
    metrics.observe(&passed);
    let text = metrics.render();
    let job = format!("job=\"{JOB}\"");
    assert_eq!(
        value(&text, &format!("restore_drill_last_run_success{{{job}}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, &format!("restore_drill_restored_rows{{{job}}}")),
        Some(2_000.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("restore_drill_rpo_objective_seconds{{{job}}}")
        ),
        Some(93_600.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("restore_drill_check_success{{check=\"fingerprint\",{job}}}")
        ),
        Some(1.0)
    );
    let success_at = value(
        &text,
        &format!("restore_drill_last_success_timestamp_seconds{{{job}}}"),
    )
    .unwrap();

    std::fs::remove_file(data_files(&snapshot).remove(0)).unwrap();
    let failed = lake.drill(&config, None).await;
    metrics.observe(&failed);
    let text = metrics.render();
    assert_eq!(
        value(&text, &format!("restore_drill_last_run_success{{{job}}}")),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("restore_drill_runs_total{{{job},outcome=\"passed\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("restore_drill_runs_total{{{job},outcome=\"failed\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("restore_drill_runs_total{{{job},outcome=\"error\"}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("restore_drill_check_success{{check=\"structure\",{job}}}")
        ),
        Some(0.0)
    );
    // Checks that could not be evaluated this time no longer claim the old result.
    assert_eq!(
        value(
            &text,
            &format!("restore_drill_check_success{{check=\"fingerprint\",{job}}}")
        ),
        None
    );
    // Nor does a value the failed drill did not measure (it read no rows).
    assert_eq!(
        value(&text, &format!("restore_drill_restored_rows{{{job}}}")),
        None
    );
    // The last success keeps its time.
    assert_eq!(
        value(
            &text,
            &format!("restore_drill_last_success_timestamp_seconds{{{job}}}")
        ),
        Some(success_at)
    );
    let build = text
        .lines()
        .find(|l| l.starts_with("restore_drill_build_info{"))
        .unwrap_or_else(|| panic!("no build_info in\n{text}"));
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build.contains("revision=\"")
            && !build.contains("revision=\"\""),
        "{build}"
    );
    // The service's own resources.
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
}
