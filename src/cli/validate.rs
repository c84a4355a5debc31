//! `validate`: a configuration file, its suites and web config, and — unless `--offline` —
//! each job's suite against its source's schema and the server it restores into, if any.

use std::path::Path;

use super::{CommandError, Exit, load};
use crate::kinds::{self, Described};

/// Reports every problem at once; 0 when there is none.
pub(super) async fn validate(config_file: &Path, offline: bool) -> Exit {
    let config = load(config_file)?;
    let mut problems = Vec::new();
    if let Some(file) = &config.server.web_config
        && let Err(e) = crate::server::WebConfig::load(file)
    {
        problems.push(e.to_string());
    }
    // Smoke tests run on this machine: each command must be there, and executable.
    for job in &config.jobs {
        for test in &job.smoke {
            if let Err(reason) = test.check() {
                problems.push(format!(
                    "job `{}`: smoke test `{}`: {reason}",
                    job.name, test.name
                ));
            }
        }
    }
    // The suites against the sources' schemas: the logs are read, no data.
    for job in config.jobs.iter().filter(|_| !offline) {
        let kind = kinds::of(&job.snapshots);
        if let Err(reason) = kind.check_restore_target().await {
            problems.push(format!("job `{}`: {reason}", job.name));
        }
        let described = kind.describe_source().await;
        match described {
            Ok(Described::Table(info)) => problems.extend(job.misfits(&info.typed_columns())),
            Ok(Described::Database(tables)) => problems.extend(job.table_misfits(&tables)),
            Err(reason) => problems.push(format!(
                "job `{}`: the source {} cannot be opened: {reason}; check `source` and its storage profile (or validate with --offline where the data cannot be reached)",
                job.name, job.source
            )),
        }
    }
    if !problems.is_empty() {
        return Err(CommandError::problems(format!(
            "{} problem{} in the suites, the sources and the web config:\n{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n")
        )));
    }
    let checks: usize = config.jobs.iter().map(|j| j.suite.checks.len()).sum();
    println!(
        "{}: valid ({} job{}, {checks} checks)",
        config_file.display(),
        config.jobs.len(),
        if config.jobs.len() == 1 { "" } else { "s" }
    );
    Ok(0)
}
