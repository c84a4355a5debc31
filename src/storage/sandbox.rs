//! The sandbox: the only place a drill writes. Each run gets `<root>/<job>/<run-id>/` and a
//! lock file `<root>/<job>/<run-id>.lock` held while the run lives, so a sweep can tell the
//! folders of runs whose process died (lock file present, nobody holds it) from running drills
//! (lock held) and from sandboxes kept after a failure for inspection (no lock file).

use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use url::Url;

use super::{FileEntry, ReadOnlyDir, StorageError, directory_url};
use crate::storage::Location;

/// The root under which runs get their sandboxes. Creating a run is the only way to write.
#[derive(Debug, Clone)]
pub struct SandboxRoot {
    root: PathBuf,
}

impl SandboxRoot {
    pub fn new(location: &Location) -> Self {
        Self {
            root: location
                .local_path()
                .expect("sandboxes are local folders (checked when the configuration is read)")
                .to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Creates `<root>/<job>/<run_id>/`, which must not exist yet, and takes its lock.
    pub async fn create_run(&self, job: &str, run_id: &str) -> Result<RunSandbox, StorageError> {
        let job_dir = self.root.join(job);
        tokio::fs::create_dir_all(&job_dir)
            .await
            .map_err(|source| StorageError::Write {
                path: job_dir.clone(),
                source,
            })?;
        let lock_path = lock_file(&job_dir, run_id);
        let lock = File::create_new(&lock_path)
            .and_then(|f| f.try_lock().map(|()| f).map_err(std::io::Error::from))
            .map_err(|source| StorageError::Write {
                path: lock_path.clone(),
                source,
            })?;
        let path = job_dir.join(run_id);
        if let Err(source) = tokio::fs::create_dir(&path).await {
            let _ = std::fs::remove_file(&lock_path);
            return Err(StorageError::Write { path, source });
        }
        Ok(RunSandbox {
            root: path,
            _lock: Arc::new(lock),
            lock_path,
        })
    }

    /// Removes a run's folder and lock file, e.g. after its drill was cancelled. Retries a few
    /// times: writes of the cancelled drill that were already under way may still land.
    pub async fn discard_run(&self, job: &str, run_id: &str) -> Result<(), StorageError> {
        let job_dir = self.root.join(job);
        let folder = job_dir.join(run_id);
        let mut attempt = 0;
        loop {
            match remove_folder(&folder).await {
                Ok(()) => break,
                Err(e) if attempt >= 20 => return Err(e),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        remove_lock(&lock_file(&job_dir, run_id))
    }

    /// Removes the run folders of `job` that nobody needs any more:
    /// - those whose process died mid-drill: their lock file is still there and nobody holds it;
    /// - sandboxes kept after a failure (no lock file) once they are older than `keep_failed`,
    ///   by the time in their run id.
    ///
    /// Running drills (lock held), younger kept sandboxes and anything not named like a run
    /// folder are left alone. Returns what was removed and why, by path.
    pub async fn sweep(
        &self,
        job: &str,
        now: DateTime<Utc>,
        keep_failed: Duration,
    ) -> Result<Vec<Swept>, StorageError> {
        let job_dir = self.root.join(job);
        let entries = match std::fs::read_dir(&job_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StorageError::Read {
                    path: job_dir,
                    source,
                });
            }
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(run_id) = name.strip_suffix(".lock") {
                if !is_run_id(run_id) {
                    continue;
                }
                let lock_path = entry.path();
                let Ok(lock) = File::open(&lock_path) else {
                    continue;
                };
                if lock.try_lock().is_err() {
                    continue; // a drill is running there
                }
                let folder = job_dir.join(run_id);
                remove_folder(&folder).await?;
                remove_lock(&lock_path)?;
                drop(lock);
                removed.push(Swept {
                    path: folder,
                    reason: SweepReason::ProcessDied,
                });
            } else if is_run_id(&name)
                && entry.file_type().is_ok_and(|t| t.is_dir())
                && !lock_file(&job_dir, &name).exists()
                && run_time(&name).is_some_and(|started| {
                    (now - started).to_std().is_ok_and(|age| age > keep_failed)
                })
            {
                let folder = entry.path();
                remove_folder(&folder).await?;
                removed.push(Swept {
                    path: folder,
                    reason: SweepReason::KeptLongEnough,
                });
            }
        }
        removed.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(removed)
    }
}

/// A run folder a sweep removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    pub path: PathBuf,
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

/// The start time in a run id (`run-20261129T023000Z-4f3a9c`).
fn run_time(run_id: &str) -> Option<DateTime<Utc>> {
    let stamp = run_id.strip_prefix("run-")?.get(..16)?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

fn lock_file(job_dir: &Path, run_id: &str) -> PathBuf {
    job_dir.join(format!("{run_id}.lock"))
}

/// Whether a folder name looks like one of restore-drill's run folders (`run-<time>-<hex>`).
fn is_run_id(name: &str) -> bool {
    name.strip_prefix("run-").is_some_and(|rest| {
        rest.len() >= 16 && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

async fn remove_folder(folder: &Path) -> Result<(), StorageError> {
    match tokio::fs::remove_dir_all(folder).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::Write {
            path: folder.to_path_buf(),
            source,
        }),
    }
}

fn remove_lock(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The folder of one run: everything a drill writes goes below it.
#[derive(Debug, Clone)]
pub struct RunSandbox {
    root: PathBuf,
    /// Held while the run lives; the kernel lets go if the process dies.
    _lock: Arc<File>,
    lock_path: PathBuf,
}

impl RunSandbox {
    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn url(&self) -> Url {
        directory_url(&self.root)
    }

    /// The sandbox path of a relative path, refused if it would leave the sandbox.
    fn target(&self, relative: &Path) -> Result<PathBuf, StorageError> {
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(StorageError::OutsideSandbox {
                path: relative.to_path_buf(),
                sandbox: self.root.clone(),
            });
        }
        Ok(self.root.join(relative))
    }

    /// Copies the files of `from` into the sandbox, at most `concurrency` at a time, calling
    /// `copied(bytes)` after each file. Each copy's size is checked against the listing.
    pub async fn copy_in(
        &self,
        from: &ReadOnlyDir,
        files: &[FileEntry],
        concurrency: usize,
        copied: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StorageError> {
        let mut folders: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.relative.parent().map(Path::to_path_buf))
            .collect();
        folders.sort();
        folders.dedup();
        for folder in folders {
            let target = self.target(&folder)?;
            tokio::fs::create_dir_all(&target)
                .await
                .map_err(|source| StorageError::Write {
                    path: target.clone(),
                    source,
                })?;
        }
        // Owned entries: a closure over borrowed ones is not `Send` for every lifetime, which
        // a drill spawned on the runtime needs.
        futures::stream::iter(files.iter().cloned())
            .map(|file| async move {
                let target = self.target(&file.relative)?;
                let written = from.copy_file_to(&file.relative, &target).await?;
                if written != file.size {
                    return Err(StorageError::Read {
                        path: PathBuf::from(format!(
                            "{}{}",
                            from.location(),
                            file.relative.display()
                        )),
                        source: std::io::Error::other(format!(
                            "size changed during the copy: listed {} bytes, copied {written}",
                            file.size
                        )),
                    });
                }
                copied(written);
                Ok(())
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    /// Deletes the run's folder and everything in it, then its lock file.
    pub async fn remove(&self) -> Result<(), StorageError> {
        remove_folder(&self.root).await?;
        remove_lock(&self.lock_path)
    }

    /// Keeps the run's folder for inspection: without its lock file, no sweep touches it.
    pub fn keep(&self) -> Result<(), StorageError> {
        remove_lock(&self.lock_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_refuses_paths_that_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join("run-1.lock");
        let run = RunSandbox {
            root: PathBuf::from("/tmp/sandbox/job/run-1"),
            _lock: Arc::new(File::create(&lock_path).unwrap()),
            lock_path,
        };
        assert!(run.target(Path::new("part-0.parquet")).is_ok());
        assert!(run.target(Path::new("_delta_log/0.json")).is_ok());
        assert!(matches!(
            run.target(Path::new("../other/x")),
            Err(StorageError::OutsideSandbox { .. })
        ));
        assert!(run.target(Path::new("/etc/passwd")).is_err());
    }

    #[tokio::test]
    async fn sweep_removes_only_runs_whose_process_died() {
        let dir = tempfile::tempdir().unwrap();
        let root = SandboxRoot {
            root: dir.path().to_path_buf(),
        };
        let job = dir.path().join("orders");
        // A drill running now (this process holds its lock).
        let running = root
            .create_run("orders", "run-20261129T010000Z-aaaaaa")
            .await
            .unwrap();
        std::fs::write(running.path().join("part-0.parquet"), b"x").unwrap();
        // A drill whose process died: lock file present, held by nobody.
        let dead = root
            .create_run("orders", "run-20261129T020000Z-bbbbbb")
            .await
            .unwrap();
        std::fs::create_dir(dead.path().join("_delta_log")).unwrap();
        let dead_path = dead.path().to_path_buf();
        drop(dead);
        // A failed drill's sandbox, kept for inspection: no lock file.
        let kept = root
            .create_run("orders", "run-20261129T030000Z-cccccc")
            .await
            .unwrap();
        kept.keep().unwrap();
        // Something else entirely.
        std::fs::create_dir(job.join("notes")).unwrap();
        std::fs::write(job.join("notes.lock"), b"").unwrap();

        let now = DateTime::parse_from_rfc3339("2026-11-29T04:00:00Z")
            .unwrap()
            .to_utc();
        let removed = root
            .sweep("orders", now, Duration::from_secs(48 * 3600))
            .await
            .unwrap();
        assert_eq!(
            removed,
            vec![Swept {
                path: dead_path.clone(),
                reason: SweepReason::ProcessDied
            }]
        );
        assert!(!dead_path.exists());
        assert!(!job.join("run-20261129T020000Z-bbbbbb.lock").exists());
        assert!(running.path().join("part-0.parquet").exists());
        assert!(job.join("run-20261129T010000Z-aaaaaa.lock").exists());
        assert!(kept.path().exists());
        assert!(job.join("notes").exists() && job.join("notes.lock").exists());
        assert_eq!(
            root.sweep("nobody", now, Duration::ZERO).await.unwrap(),
            Vec::new()
        );
        // Two days later the kept sandbox has been kept long enough; the running drill stays.
        let later = now + chrono::Duration::hours(49);
        let removed = root
            .sweep("orders", later, Duration::from_secs(48 * 3600))
            .await
            .unwrap();
        assert_eq!(
            removed,
            vec![Swept {
                path: kept.path().to_path_buf(),
                reason: SweepReason::KeptLongEnough
            }]
        );
        assert!(running.path().exists() && job.join("notes").exists());

        running.remove().await.unwrap();
        assert!(!running.path().exists());
        assert!(!job.join("run-20261129T010000Z-aaaaaa.lock").exists());
    }
}
