//! What is checked or shared across the jobs of a configuration: no sandbox over another job's
//! data, and each suite file read once however many jobs name it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::Job;
use crate::primitives::fields::{Position, Problem, Problems};
use crate::storage::Resolved;
use crate::verify::suite::{Suite, load_suite};

/// No job's sandbox may overlap any job's source or backups, nor another job's sandbox unless
/// both name the same root (each drill writes below `<root>/<job>/<run-id>/`). Each place is
/// resolved once and each pair of distinct places compared once, so thousands of jobs sharing a
/// few roots are checked in time linear in the jobs.
pub(super) fn sandboxes_apart(jobs: &[Job], positions: &[Position], p: &mut Problems) {
    const ROLES: [&str; 3] = ["source", "snapshots.location", "sandbox"];
    let mut distinct: Vec<Resolved> = Vec::new();
    let mut index: HashMap<Resolved, usize> = HashMap::new();
    // Per job, the distinct place of its source, backups and sandbox.
    // (A database source has no place on storage.)
    let ids: Vec<[Option<usize>; 3]> = jobs
        .iter()
        .map(|job| {
            places(job).map(|place| {
                let resolved = place?.resolved();
                Some(*index.entry(resolved.clone()).or_insert_with(|| {
                    distinct.push(resolved);
                    distinct.len() - 1
                }))
            })
        })
        .collect();
    // The jobs with each (role, place).
    let mut holders: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for (j, places) in ids.iter().enumerate() {
        for (role, place) in places.iter().enumerate() {
            if let Some(place) = place {
                holders.entry((role, *place)).or_default().push(j);
            }
        }
    }
    let mut overlapping: HashMap<(usize, usize), bool> = HashMap::new();
    for (j, (job, at)) in jobs.iter().zip(positions).enumerate() {
        let Some(sandbox) = ids[j][2] else {
            continue;
        };
        for (&(role, place), others) in &holders {
            let same_root = ROLES[role] == "sandbox" && place == sandbox;
            let overlaps = *overlapping
                .entry((sandbox, place))
                .or_insert_with(|| distinct[sandbox].overlaps(&distinct[place]));
            if same_root || !overlaps {
                continue;
            }
            for &o in others.iter().filter(|&&o| jobs[o].name != job.name) {
                let other = &jobs[o];
                let Some(location) = places(other)[role] else {
                    continue;
                };
                p.report(
                    *at,
                    format!(
                        "job `{}`: the sandbox {} overlaps the {} {location} of job `{}`; a drill must never write where another job's data, backups or drills live — give each job a separate folder, or the same sandbox root",
                        job.name, job.sandbox, ROLES[role], other.name
                    ),
                );
            }
        }
    }
}

/// A job's source, backups and sandbox, where each is on storage.
fn places(job: &Job) -> [Option<&crate::storage::Location>; 3] {
    [
        job.source.location(),
        Some(job.snapshots.location()),
        Some(&job.sandbox),
    ]
}

/// The suite files read so far: each is read, parsed and hashed once however many jobs name it,
/// and its problems are reported once.
#[derive(Default)]
pub(super) struct Suites {
    read: HashMap<PathBuf, Option<(Suite, String)>>,
    pub(super) problems: Vec<Problem>,
}

impl Suites {
    /// The suite at `path` and the SHA-256 of its text; `None` when it has problems.
    pub(super) fn get(&mut self, path: &Path) -> Option<(Suite, String)> {
        let Suites { read, problems } = self;
        read.entry(path.to_path_buf())
            .or_insert_with(|| match load_suite(path) {
                Ok(suite) => {
                    let sha256 = std::fs::read(path)
                        .map(|bytes| crate::primitives::hash::sha256_hex(&bytes))
                        .unwrap_or_default();
                    Some((suite, sha256))
                }
                Err(found) => {
                    problems.extend(found);
                    None
                }
            })
            .clone()
    }
}
