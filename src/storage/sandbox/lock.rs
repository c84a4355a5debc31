//! A run's lock, held while the run lives: on local disk a file under an OS lock (the kernel
//! lets go when the process dies), on S3 a marker object holding a lease the run renews.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::storage::s3::{self, S3Profile};
use crate::storage::s3_write::{self, LEASE, Lease};
use crate::storage::{Backend, Location, S3Prefix, StorageError};

/// Takes the lock file of a local run, then makes its folder.
pub(super) async fn create_local(job_dir: &Path, run_id: &str) -> Result<RunLock, StorageError> {
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

/// Writes the lease marker of an S3 run beside its prefix in the job's prefix `job_dir`, and
/// starts renewing it. The run's prefix must be empty.
pub(super) async fn create_s3(
    job_dir: &S3Prefix<'_>,
    run_id: &str,
) -> Result<RunLock, StorageError> {
    let (bucket, profile) = (job_dir.bucket, &job_dir.profile);
    let folder = format!("{}/", job_dir.key(Path::new(run_id)));
    if !s3::list_files(profile, bucket, &folder).await?.is_empty() {
        return Err(StorageError::S3 {
            url: format!("s3://{bucket}/{folder}"),
            message: "the run's sandbox prefix already holds objects; a run starts empty".into(),
        });
    }
    let key = lock_key(job_dir, run_id);
    let bucket = bucket.to_string();
    write_lease(profile, &bucket, &key, run_id).await?;
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
    Ok(RunLock::S3 {
        profile: profile.clone(),
        bucket,
        key,
        renewal,
    })
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

/// The key of an S3 run's lease marker, beside its folder in the job's prefix.
fn lock_key(job_dir: &S3Prefix<'_>, run_id: &str) -> String {
    job_dir.key(Path::new(&format!("{run_id}.lock")))
}

/// Whether a run's lock is held: by a live process (local), or by an unexpired lease (S3).
pub(super) async fn is_held(
    job_dir: &Location,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    match job_dir.backend() {
        Backend::Local(dir) => Ok(File::open(dir.join(format!("{run_id}.lock")))
            .map(|lock| lock.try_lock().is_err())
            .unwrap_or(true)),
        Backend::S3(s3) => {
            let lease =
                s3_write::read_lease(&s3.profile, s3.bucket, &lock_key(&s3, run_id)).await?;
            Ok(lease.is_some_and(|l| l.expires > now))
        }
    }
}

pub(super) async fn remove_lock(job_dir: &Location, run_id: &str) -> Result<(), StorageError> {
    let path = match job_dir.backend() {
        Backend::S3(s3) => {
            return s3_write::delete_keys(&s3.profile, s3.bucket, &[lock_key(&s3, run_id)]).await;
        }
        Backend::Local(dir) => dir.join(format!("{run_id}.lock")),
    };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::Write { path, source }),
    }
}

/// What holds a run's lock while the run lives.
#[derive(Debug)]
pub(super) enum RunLock {
    /// None: the folder is a restore's target, the user's own, which no sweep ever visits.
    Target,
    /// The lock file, locked; the kernel lets go if the process dies.
    Local { _file: File, path: PathBuf },
    /// The lease marker and the task that renews it (stopped when the run is dropped).
    S3 {
        profile: Arc<S3Profile>,
        bucket: String,
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
