//! The metric set's own tests.

use super::*;

/// A configuration of one job with `owner`.
fn job(dir: &std::path::Path, owner: &str) -> Job {
    std::fs::write(
        dir.join("suite.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1\n",
    )
    .unwrap();
    let text = format!(
        "[[job]]\nname = \"orders\"\nowner = \"{owner}\"\nsource = \"lake\"\nsnapshots = {{ kind = \"delta_copy\", location = \"backups\", pattern = \"orders_{{date}}\" }}\nsandbox = \"sandbox\"\nsuite = \"suite.toml\"\nobjectives = {{ rpo = \"1d\", rto = \"1h\" }}\n"
    );
    let config = crate::config::parse(&dir.join("c.toml"), &text, |_| None).unwrap();
    config.jobs.into_iter().next().unwrap()
}

#[test]
fn a_new_owner_replaces_the_job_info_series() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = DrillMetrics::new();
    metrics.register_job(&job(dir.path(), "team-a"));
    metrics.register_job(&job(dir.path(), "team-b"));
    let text = metrics.render();
    let info: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("restore_drill_job_info{"))
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(info[0].contains("owner=\"team-b\""), "{}", info[0]);
    metrics.forget_job("orders");
    assert!(!metrics.render().contains("restore_drill_job_info{"));
}

#[test]
fn a_scrape_shows_every_change_since_the_last_even_when_it_answers_from_the_last_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = DrillMetrics::new();
    metrics.register_job(&job(dir.path(), "team-a"));
    let skipped = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("restore_drill_skipped_runs_total{job=\"orders\"} "))
            .map(String::from)
    };
    assert_eq!(skipped(&metrics.render()).as_deref(), Some("0"));
    assert_eq!(skipped(&metrics.render()).as_deref(), Some("0"));
    metrics.skipped("orders");
    assert_eq!(skipped(&metrics.render()).as_deref(), Some("1"));
    metrics.set_running(3);
    let text = metrics.render();
    assert!(text.contains("restore_drill_running_drills 3"), "{text}");
    // The process's own series are read at every scrape.
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
    metrics.forget_job("orders");
    assert_eq!(skipped(&metrics.render()), None);
}
