//! `validate`: a configuration file, its suites and web config, and — unless `--offline` —
//! each job's suite against its source's schema and the server it restores into, if any.

use std::collections::HashMap;
use std::path::Path;

use futures::StreamExt;

use super::{CommandError, Exit, load};
use crate::config::Job;
use crate::kinds::{self, Described, Source};

/// How many sources are read at a time.
const CONCURRENCY: usize = 8;

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
    if !offline {
        problems.extend(check_sources(&config.jobs).await);
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

/// Each job's suite against its source's schema, and the server it restores into: the logs are
/// read, no data. A source on storage that several jobs name is read once; distinct sources are
/// read [`CONCURRENCY`] at a time.
async fn check_sources(jobs: &[Job]) -> Vec<String> {
    // Jobs by the place they read: a folder (with its storage profile) once for all of them; a
    // database per job (its credentials are the job's own).
    let mut groups: Vec<Vec<&Job>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for job in jobs {
        match &job.source {
            Source::Storage(location) => {
                let at = *index.entry(format!("{location:?}")).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[at].push(job);
            }
            Source::Postgres(_) => groups.push(vec![job]),
        }
    }
    let checked: Vec<Vec<String>> = futures::stream::iter(groups)
        .map(|group| async move {
            let mut problems = Vec::new();
            let first = group[0];
            let kind = kinds::of(&first.snapshots);
            let described = kind.describe_source().await;
            for job in group {
                if let Err(reason) = kinds::of(&job.snapshots).check_restore_target().await {
                    problems.push(format!("job `{}`: {reason}", job.name));
                }
                match &described {
                    Ok(Described::Table(info)) => {
                        problems.extend(job.misfits(&info.typed_columns()))
                    }
                    Ok(Described::Database(tables)) => problems.extend(job.table_misfits(tables)),
                    Err(reason) => problems.push(format!(
                        "job `{}`: the source {} cannot be opened: {reason}; check `source` and its storage profile (or validate with --offline where the data cannot be reached)",
                        job.name, job.source
                    )),
                }
            }
            problems
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    checked.into_iter().flatten().collect()
}
