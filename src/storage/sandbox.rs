//! The sandbox: the only place a drill writes. Each run gets `<root>/<job>/<run-id>/` and a
//! lock `<root>/<job>/<run-id>.lock` beside it, held while the run lives, so a sweep can tell
//! the folders of runs whose process died (lock present, not held) from running drills (held)
//! and from sandboxes kept after a failure for inspection (no lock).
//!
//! On local disk the lock is a file under an OS lock, which the kernel lets go when the process
//! dies. On S3 it is a marker object holding a lease that the run renews every few minutes; a
//! lease that expired belongs to a run whose process died.

use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use url::Url;

use super::s3::{self, S3Profile};
use super::s3_write::{self, CopyLimits, CopySource, LEASE, Lease};
use super::{FileEntry, ReadOnlyDir, StorageError, directory_url};
use crate::primitives::run_id::RunId;
use crate::storage::Location;

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
        let lock = match job_dir.local_path() {
            Some(job_dir) => create_local(job_dir, run_id).await?,
            None => create_s3(&job_dir, &folder, run_id).await?,
        };
        Ok(RunSandbox {
            location: folder,
            lock: Arc::new(lock),
        })
    }

    /// Removes a run's folder and lock, e.g. after its drill was cancelled. Retries a few
    /// times: writes of the cancelled drill that were already under way may still land.
    pub async fn discard_run(&self, job: &str, run_id: &str) -> Result<(), StorageError> {
        let job_dir = self.root.child(job);
        let folder = job_dir.child(run_id);
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
        remove_lock(&job_dir, run_id).await
    }

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
        let (folders, locks) = match job_dir.local_path() {
            Some(dir) => local_level(dir)?,
            None => {
                let (bucket, prefix, profile) = job_dir.s3_access().expect("an S3 location");
                let (folders, objects) = s3::list_level(&profile, bucket, prefix).await?;
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

/// Takes the lock file of a local run, then makes its folder.
async fn create_local(job_dir: &Path, run_id: &str) -> Result<RunLock, StorageError> {
    tokio::fs::create_dir_all(job_dir)
        .await
        .map_err(|source| StorageError::Write {
            path: job_dir.to_path_buf(),
            source,
        })?;
    let lock_path = job_dir.join(format!("{run_id}.lock"));
    let file = File::create_new(&lock_path)
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
    Ok(RunLock::Local {
        _file: file,
        path: lock_path,
    })
}

/// Writes the lease marker of an S3 run and starts renewing it. The run's prefix must be empty.
async fn create_s3(
    job_dir: &Location,
    folder: &Location,
    run_id: &str,
) -> Result<RunLock, StorageError> {
    let (bucket, prefix, profile) = folder.s3_access().expect("an S3 location");
    if !s3::list_files(&profile, bucket, prefix).await?.is_empty() {
        return Err(StorageError::S3 {
            url: folder.to_string(),
            message: "the run's sandbox prefix already holds objects; a run starts empty".into(),
        });
    }
    let key = lock_key(job_dir, run_id);
    let bucket = bucket.to_string();
    write_lease(&profile, &bucket, &key, run_id).await?;
    let renewal = {
        let (profile, bucket, key, run_id) = (
            profile.clone(),
            bucket.clone(),
            key.clone(),
            run_id.to_string(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if let Err(e) = write_lease(&profile, &bucket, &key, &run_id).await {
                    tracing::warn!(run_id = %run_id, error = %e, "could not renew the sandbox lease");
                }
            }
        })
    };
    Ok(RunLock::S3 { key, renewal })
}

async fn write_lease(
    profile: &S3Profile,
    bucket: &str,
    key: &str,
    run_id: &str,
) -> Result<(), StorageError> {
    let lease = Lease {
        run_id: run_id.to_string(),
        pid: std::process::id(),
        expires: Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or_default(),
    };
    let body = serde_json::to_vec(&lease).expect("a lease serialises");
    s3_write::put(profile, bucket, key, body).await
}

/// The key of an S3 run's lease marker.
fn lock_key(job_dir: &Location, run_id: &str) -> String {
    let (_, prefix, _) = job_dir.s3().expect("an S3 location");
    format!("{prefix}{run_id}.lock")
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

/// Whether a run's lock is held: by a live process (local), or by an unexpired lease (S3).
async fn is_held(
    job_dir: &Location,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    match job_dir.local_path() {
        Some(dir) => Ok(File::open(dir.join(format!("{run_id}.lock")))
            .map(|lock| lock.try_lock().is_err())
            .unwrap_or(true)),
        None => {
            let (bucket, _, profile) = job_dir.s3_access().expect("an S3 location");
            let lease = s3_write::read_lease(&profile, bucket, &lock_key(job_dir, run_id)).await?;
            Ok(lease.is_some_and(|l| l.expires > now))
        }
    }
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

/// Deletes a run folder and everything below it (on S3: every object under its prefix, in
/// batches).
async fn remove_folder(folder: &Location) -> Result<(), StorageError> {
    if let Some((bucket, prefix, profile)) = folder.s3_access() {
        return s3_write::delete_prefix(&profile, bucket, prefix)
            .await
            .map(|_| ());
    }
    let path = folder.local_path().expect("a local location");
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

async fn remove_lock(job_dir: &Location, run_id: &str) -> Result<(), StorageError> {
    if let Some((bucket, _, profile)) = job_dir.s3_access() {
        return s3_write::delete_keys(&profile, bucket, &[lock_key(job_dir, run_id)]).await;
    }
    let path = job_dir
        .local_path()
        .expect("a local location")
        .join(format!("{run_id}.lock"));
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::Write { path, source }),
    }
}

/// What holds a run's lock while the run lives.
#[derive(Debug)]
enum RunLock {
    /// The lock file, locked; the kernel lets go if the process dies.
    Local { _file: File, path: PathBuf },
    /// The lease marker and the task that renews it (stopped when the run is dropped).
    S3 {
        key: String,
        renewal: tokio::task::JoinHandle<()>,
    },
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let RunLock::S3 { renewal, .. } = self {
            renewal.abort();
        }
    }
}

/// The folder of one run: everything a drill writes goes below it.
#[derive(Debug, Clone)]
pub struct RunSandbox {
    location: Location,
    lock: Arc<RunLock>,
}

impl RunSandbox {
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The run's folder when the sandbox is on local disk.
    pub fn local_path(&self) -> Option<&Path> {
        self.location.local_path()
    }

    /// The run's folder as a URL, for deltalake.
    pub fn url(&self) -> Url {
        match self.location.local_path() {
            Some(path) => directory_url(path),
            None => Url::parse(&self.location.to_string()).expect("s3 locations are URLs"),
        }
    }

    /// Options deltalake needs to read and write the run's folder.
    pub fn storage_options(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, StorageError> {
        match self.location.s3_access() {
            Some((_, _, profile)) => profile.delta_options(),
            None => Ok(Default::default()),
        }
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
    pub async fn copy_in(
        &self,
        from: &ReadOnlyDir,
        files: &[FileEntry],
        concurrency: usize,
        copied: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StorageError> {
        if let Some(root) = self.location.local_path() {
            make_folders(root, files, |r| self.inside(r).map(|_| ())).await?;
        }
        let target = self.location.s3_access();
        let server_side = match (&target, from.profile()) {
            (Some((_, _, to)), Some((bucket, prefix, source))) if to.same_service(&source) => {
                Some((bucket, prefix))
            }
            _ => None,
        };
        let denied = AtomicBool::new(false);
        // Owned entries: a closure over borrowed ones is not `Send` for every lifetime, which
        // a drill spawned on the runtime needs.
        futures::stream::iter(files.iter().cloned())
            .map(|file| {
                let (target, denied) = (&target, &denied);
                async move {
                    let relative = self.inside(&file.relative)?;
                    let written = match target {
                        None => {
                            let path = self.location.local_path().expect("local").join(relative);
                            from.copy_file_to(&file, &path).await?
                        }
                        Some((bucket, prefix, profile)) => {
                            let key = format!("{prefix}{}", relative.display());
                            let to = (profile.as_ref(), *bucket, key.as_str());
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
    pub async fn remove(&self) -> Result<(), StorageError> {
        self.stop_renewing();
        remove_folder(&self.location).await?;
        self.drop_lock().await
    }

    /// Keeps the run's folder for inspection: without its lock, no sweep touches it until it
    /// is older than `keep_failed_sandbox`.
    pub async fn keep(&self) -> Result<(), StorageError> {
        self.stop_renewing();
        self.drop_lock().await
    }

    fn stop_renewing(&self) {
        if let RunLock::S3 { renewal, .. } = self.lock.as_ref() {
            renewal.abort();
        }
    }

    async fn drop_lock(&self) -> Result<(), StorageError> {
        match self.lock.as_ref() {
            RunLock::Local { path, .. } => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StorageError::Write {
                    path: path.clone(),
                    source,
                }),
            },
            RunLock::S3 { key, .. } => {
                let (bucket, _, profile) = self.location.s3_access().expect("an S3 location");
                s3_write::delete_keys(&profile, bucket, std::slice::from_ref(key)).await
            }
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
