//! The sandbox: the only place a drill writes. Each run gets `<root>/<job>/<run-id>/` and a
//! lock `<root>/<job>/<run-id>.lock` beside it, held while the run lives, so a sweep can tell
//! the folders of runs whose process died (lock present, not held) from running drills (held)
//! and from sandboxes kept after a failure for inspection (no lock).
//!
//! On local disk the lock is a file under an OS lock, which the kernel lets go when the process
//! dies. On S3 it is a marker object holding a lease that the run renews every few minutes; a
//! lease that expired belongs to a run whose process died.

mod lock;
mod servers;
mod sweep;

pub(crate) use servers::SERVER_DATA;
pub use servers::{SharedDatabase, record_shared_database, stop_server};

pub use sweep::{SweepReason, Swept};

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use url::Url;

use super::s3::S3Profile;
use super::s3_write::{self, CopyLimits, CopySource};
use super::{Backend, FileEntry, Location, ReadOnlyDir, StorageError};
use lock::{RunLock, create_local, create_s3, remove_lock};

/// The root under which runs get their sandboxes. Creating a run is the only way to write.
#[derive(Debug, Clone)]
pub struct SandboxRoot {
    root: Location,
}

impl SandboxRoot {
    pub fn new(location: &Location) -> Self {
        Self {
            root: location.clone(),
        }
    }

    pub fn location(&self) -> &Location {
        &self.root
    }

    /// Creates `<root>/<job>/<run_id>/`, which must not exist yet, and takes its lock.
    pub async fn create_run(&self, job: &str, run_id: &str) -> Result<RunSandbox, StorageError> {
        let job_dir = self.root.child(job);
        let folder = job_dir.child(run_id);
        let lock = match job_dir.backend() {
            Backend::Local(dir) => create_local(dir, run_id).await?,
            Backend::S3(dir) => create_s3(&dir, run_id).await?,
        };
        Ok(RunSandbox {
            location: folder,
            lock: Arc::new(lock),
        })
    }

    /// Removes a run's folder and lock, e.g. after its drill was cancelled. Retries for up to
    /// ten seconds: writes of the cancelled drill that were already under way may still land
    /// (on a busy machine, a while after the cancel), so a folder counts as gone only when it
    /// is still gone a moment after its removal.
    pub(crate) async fn discard_run(&self, job: &str, run_id: &str) -> Result<(), StorageError> {
        let job_dir = self.root.child(job);
        let folder = job_dir.child(run_id);
        let mut attempt = 0;
        loop {
            let removed = remove_folder(&folder).await;
            if removed.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if folder.local_path().is_none_or(|path| !path.exists()) {
                    break;
                }
            }
            if attempt >= 100 {
                removed?;
                break;
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        remove_lock(&job_dir, run_id).await
    }
}

/// Deletes a run folder and everything below it (on S3: every object under its prefix, in
/// batches).
async fn remove_folder(folder: &Location) -> Result<(), StorageError> {
    let path = match folder.backend() {
        Backend::S3(s3) => {
            return s3_write::delete_prefix(&s3.profile, s3.bucket, s3.prefix)
                .await
                .map(|_| ());
        }
        Backend::Local(path) => path,
    };
    let folder = path.to_path_buf();
    let released = tokio::task::spawn_blocking(move || servers::release_run_server(&folder))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    if let Err(reason) = released {
        return Err(StorageError::Server {
            path: path.to_path_buf(),
            reason,
        });
    }
    match tokio::fs::remove_dir_all(path).await {
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
    location: Location,
    lock: Arc<RunLock>,
}

impl RunSandbox {
    /// The folder of a restore for real (`restore --to`): written like a run's folder, but
    /// without a lock, never swept, and never removed or kept by restore-drill.
    pub fn target(location: &Location) -> RunSandbox {
        RunSandbox {
            location: location.clone(),
            lock: Arc::new(RunLock::Target),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The run's folder when the sandbox is on local disk.
    pub fn local_path(&self) -> Option<&Path> {
        self.location.local_path()
    }

    /// The run's folder as a URL, for deltalake.
    pub fn url(&self) -> Url {
        self.location.url()
    }

    /// Options deltalake needs to read and write the run's folder.
    pub(crate) fn storage_options(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, StorageError> {
        self.location.storage_options()
    }

    /// A relative path below the run's folder, refused if it would leave it.
    fn inside<'a>(&self, relative: &'a Path) -> Result<&'a Path, StorageError> {
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(StorageError::OutsideSandbox {
                path: relative.to_path_buf(),
                sandbox: PathBuf::from(self.location.to_string()),
            });
        }
        Ok(relative)
    }

    /// Every file in the run's folder, with its size.
    pub async fn list_files(&self) -> Result<Vec<FileEntry>, StorageError> {
        ReadOnlyDir::new(&self.location).list_files().await
    }

    /// The whole content of one file of the run, in memory.
    pub async fn read(&self, relative: &Path) -> Result<bytes::Bytes, StorageError> {
        ReadOnlyDir::new(&self.location)
            .read(self.inside(relative)?)
            .await
    }

    /// Copies the files of `from` into the sandbox, at most `concurrency` at a time, calling
    /// `copied(bytes)` after each file. Into S3 from the same service, objects are copied on
    /// the server (and must still have the ETag listed); otherwise they are streamed. Each
    /// streamed copy's size is checked against the listing.
    pub(crate) async fn copy_in(
        &self,
        from: &ReadOnlyDir,
        files: &[FileEntry],
        concurrency: usize,
        copied: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StorageError> {
        let target = self.location.backend();
        if let Backend::Local(root) = target {
            make_folders(root, files, |r| self.inside(r).map(|_| ())).await?;
        }
        let server_side = match (&target, from.location().backend()) {
            (Backend::S3(to), Backend::S3(source)) if to.profile.same_service(&source.profile) => {
                Some((source.bucket.to_string(), source.prefix.to_string()))
            }
            _ => None,
        };
        let denied = AtomicBool::new(false);
        // Owned entries: a closure over borrowed ones is not `Send` for every lifetime, which
        // a drill spawned on the runtime needs.
        futures::stream::iter(files.iter().cloned())
            .map(|file| {
                let (target, denied, server_side) = (&target, &denied, &server_side);
                async move {
                    let relative = self.inside(&file.relative)?;
                    let written = match target {
                        Backend::Local(root) => {
                            from.copy_file_to(&file, &root.join(relative)).await?
                        }
                        Backend::S3(to) => {
                            let key = to.key(relative);
                            let to = (to.profile.as_ref(), to.bucket, key.as_str());
                            let server_side =
                                server_side.as_ref().map(|(b, p)| (b.as_str(), p.as_str()));
                            copy_to_s3(from, &file, server_side, to, denied).await?
                        }
                    };
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
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    /// Deletes the run's folder and everything in it, then its lock.
    /// A restore's target is never removed: this does nothing for it.
    pub async fn remove(&self) -> Result<(), StorageError> {
        if self.is_target() {
            return Ok(());
        }
        self.stop_renewing();
        remove_folder(&self.location).await?;
        self.drop_lock().await
    }

    /// Keeps the run's folder for inspection: without its lock, no sweep touches it until it
    /// is older than `keep_failed_sandbox`.
    pub async fn keep(&self) -> Result<(), StorageError> {
        if self.is_target() {
            return Ok(());
        }
        self.stop_renewing();
        if let Some(folder) = self.local_path().map(Path::to_path_buf) {
            let _ = tokio::task::spawn_blocking(move || {
                servers::stop_server(&folder.join(servers::SERVER_DATA))
            })
            .await;
        }
        self.drop_lock().await
    }

    /// Whether this is a restore's target rather than a run's folder.
    pub fn is_target(&self) -> bool {
        matches!(self.lock.as_ref(), RunLock::Target)
    }

    fn stop_renewing(&self) {
        if let RunLock::S3 { renewal, .. } = self.lock.as_ref() {
            renewal.abort();
        }
    }

    async fn drop_lock(&self) -> Result<(), StorageError> {
        match self.lock.as_ref() {
            RunLock::Target => Ok(()),
            RunLock::Local { path, .. } => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StorageError::Write {
                    path: path.clone(),
                    source,
                }),
            },
            RunLock::S3 {
                bucket,
                key,
                profile,
                ..
            } => s3_write::delete_keys(profile, bucket, std::slice::from_ref(key)).await,
        }
    }
}

/// Copies one file of `from` to `to` (profile, bucket, key): on the server when `server_side`
/// gives the snapshot's bucket and prefix on the same service — unless the sandbox's key was
/// refused reading it (`denied`, then set once and logged) — else streamed through this
/// process. Returns the bytes copied.
async fn copy_to_s3(
    from: &ReadOnlyDir,
    file: &FileEntry,
    server_side: Option<(&str, &str)>,
    (profile, bucket, key): (&S3Profile, &str, &str),
    denied: &AtomicBool,
) -> Result<u64, StorageError> {
    if let Some((source_bucket, source_prefix)) = server_side
        && !denied.load(Ordering::Relaxed)
    {
        let source_key = format!("{source_prefix}{}", file.relative.display());
        let source = CopySource {
            bucket: source_bucket,
            key: &source_key,
            version_id: file.version_id.as_deref(),
            etag: file.etag.as_deref(),
        };
        let limits = CopyLimits::default();
        match s3_write::copy_object(profile, source, file.size, bucket, key, limits).await {
            Ok(()) => return Ok(file.size),
            Err(e) if s3_write::is_access_denied(&e) => {
                if !denied.swap(true, Ordering::Relaxed) {
                    tracing::warn!(from = %from.location(), error = %e, "the sandbox's key may not read the snapshot, so objects are streamed through restore-drill instead of copied on the server; grant it read access for faster restores");
                }
            }
            Err(e) => return Err(e),
        }
    }
    let reader = from.open(file).await?;
    s3_write::upload(profile, reader, file.size, bucket, key).await
}

/// Makes the local folders the files go into.
async fn make_folders(
    root: &Path,
    files: &[FileEntry],
    check: impl Fn(&Path) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut folders: Vec<&Path> = files.iter().filter_map(|f| f.relative.parent()).collect();
    folders.sort();
    folders.dedup();
    for folder in folders {
        check(folder)?;
        let target = root.join(folder);
        tokio::fs::create_dir_all(&target)
            .await
            .map_err(|source| StorageError::Write {
                path: target.clone(),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[tokio::test]
    async fn sandbox_refuses_paths_that_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = SandboxRoot::new(&Location::from_path(dir.path()));
        let run = root
            .create_run("orders", "run-20261129T010000Z-aaaaaa")
            .await
            .unwrap();
        assert!(run.inside(Path::new("part-0.parquet")).is_ok());
        assert!(run.inside(Path::new("_delta_log/0.json")).is_ok());
        assert!(matches!(
            run.inside(Path::new("../other/x")),
            Err(StorageError::OutsideSandbox { .. })
        ));
        assert!(run.inside(Path::new("/etc/passwd")).is_err());
        assert!(run.read(Path::new("../../x")).await.is_err());
    }

    #[tokio::test]
    async fn sweep_removes_only_runs_whose_process_died() {
        let dir = tempfile::tempdir().unwrap();
        let root = SandboxRoot::new(&Location::from_path(dir.path()));
        let job = dir.path().join("orders");
        // A drill running now (this process holds its lock).
        let running = root
            .create_run("orders", "run-20261129T010000Z-aaaaaa")
            .await
            .unwrap();
        std::fs::write(running.local_path().unwrap().join("part-0.parquet"), b"x").unwrap();
        // A drill whose process died: lock file present, held by nobody.
        let dead = root
            .create_run("orders", "run-20261129T020000Z-bbbbbb")
            .await
            .unwrap();
        std::fs::create_dir(dead.local_path().unwrap().join("_delta_log")).unwrap();
        let dead_path = dead.local_path().unwrap().to_path_buf();
        drop(dead);
        // A failed drill's sandbox, kept for inspection: no lock file.
        let kept = root
            .create_run("orders", "run-20261129T030000Z-cccccc")
            .await
            .unwrap();
        kept.keep().await.unwrap();
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
                location: Location::from_path(&dead_path),
                reason: SweepReason::ProcessDied
            }]
        );
        assert!(!dead_path.exists());
        assert!(!job.join("run-20261129T020000Z-bbbbbb.lock").exists());
        assert!(
            running
                .local_path()
                .unwrap()
                .join("part-0.parquet")
                .exists()
        );
        assert!(job.join("run-20261129T010000Z-aaaaaa.lock").exists());
        assert!(kept.local_path().unwrap().exists());
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
                location: kept.location().clone(),
                reason: SweepReason::KeptLongEnough
            }]
        );
        assert!(running.local_path().unwrap().exists() && job.join("notes").exists());

        running.remove().await.unwrap();
        assert!(!running.local_path().unwrap().exists());
        assert!(!job.join("run-20261129T010000Z-aaaaaa.lock").exists());
    }
}
