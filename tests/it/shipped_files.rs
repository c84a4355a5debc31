//! Every shipped suite and example configuration parses.

use std::path::Path;

#[test]
fn every_suite_in_checks_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let suite = restore_drill::verify::suite::load_suite(&path)
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            assert!(!suite.checks.is_empty(), "{}", path.display());
            parsed += 1;
        }
    }
    assert!(parsed >= 1);
}

#[test]
fn every_example_config_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = restore_drill::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.jobs.is_empty());
            parsed += 1;
        }
    }
    assert!(parsed >= 1);
}
