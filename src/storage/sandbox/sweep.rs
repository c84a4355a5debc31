//! Sweeps: removing the run folders nobody needs any more.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::lock::{is_held, remove_lock};
use super::{SandboxRoot, remove_folder};
use crate::primitives::run_id::RunId;
use crate::storage::{Backend, Location, StorageError, s3};

impl SandboxRoot {
    /// Removes the run folders of `job` that nobody needs any more:
    /// - those whose process died mid-drill: their lock is still there and nobody holds it
    ///   (on S3: its lease expired before `now`);
    /// - sandboxes kept after a failure (no lock) once they are older than `keep_failed`, by
    ///   the time in their run id.
    ///
    /// Running drills, younger kept sandboxes and anything not named like a run folder are left
    /// alone. Returns what was removed and why.
    pub async fn sweep(
        &self,
        job: &str,
        now: DateTime<Utc>,
        keep_failed: Duration,
    ) -> Result<Vec<Swept>, StorageError> {
        let job_dir = self.root.child(job);
        let (folders, locks) = match job_dir.backend() {
            Backend::Local(dir) => local_level(dir)?,
            Backend::S3(s3) => {
                let (folders, objects) = s3::list_level(&s3.profile, s3.bucket, s3.prefix).await?;
                let locks = objects
                    .into_iter()
                    .filter_map(|name| name.strip_suffix(".lock").map(String::from))
                    .collect();
                (folders, locks)
            }
        };
        let mut removed = Vec::new();
        for run_id in locks.iter().filter(|r| RunId::parse(r).is_some()) {
            if is_held(&job_dir, run_id, now).await? {
                continue; // a drill is running there
            }
            let folder = job_dir.child(run_id);
            remove_folder(&folder).await?;
            remove_lock(&job_dir, run_id).await?;
            removed.push(Swept {
                location: folder,
                reason: SweepReason::ProcessDied,
            });
        }
        for run_id in folders
            .iter()
            .filter(|r| !locks.contains(r))
            .filter_map(|r| RunId::parse(r))
        {
            let old_enough = run_id
                .started_at()
                .is_some_and(|started| (now - started).to_std().is_ok_and(|age| age > keep_failed));
            if old_enough {
                let folder = job_dir.child(run_id.as_str());
                remove_folder(&folder).await?;
                removed.push(Swept {
                    location: folder,
                    reason: SweepReason::KeptLongEnough,
                });
            }
        }
        removed.sort_by_key(|s| s.location.to_string());
        Ok(removed)
    }
}

/// The run folders and the run ids with a lock file in a local job folder.
fn local_level(job_dir: &Path) -> Result<(Vec<String>, Vec<String>), StorageError> {
    let entries = match std::fs::read_dir(job_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(source) => {
            return Err(StorageError::Read {
                path: job_dir.to_path_buf(),
                source,
            });
        }
    };
    let (mut folders, mut locks) = (Vec::new(), Vec::new());
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(run_id) = name.strip_suffix(".lock") {
            locks.push(run_id.to_string());
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            folders.push(name);
        }
    }
    Ok((folders, locks))
}

/// A run folder a sweep removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    pub location: Location,
    pub reason: SweepReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepReason {
    /// Its drill's process ended before the drill did.
    ProcessDied,
    /// A failed drill's sandbox, kept for `keep_failed_sandbox`.
    KeptLongEnough,
}

impl SweepReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepReason::ProcessDied => "its drill's process ended before the drill finished",
            SweepReason::KeptLongEnough => "a failed drill's sandbox, kept for keep_failed_sandbox",
        }
    }
}
