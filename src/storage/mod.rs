//! Where data lives, and the two kinds of handle a drill gets on it: read-only handles for the
//! source and the backups (they have no method that writes), and a sandbox handle that can only
//! write below its own run folder.

mod location;
pub mod profiles;
pub mod s3;
pub mod s3_write;
pub mod same_bytes;
mod sandbox;
pub mod target;

pub(crate) use location::Resolved;
pub use location::{Backend, Location, S3Prefix};
pub(crate) use sandbox::SERVER_DATA;
pub use sandbox::{
    RunSandbox, SandboxRoot, SharedDatabase, SweepReason, Swept, record_shared_database,
    stop_server,
};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use url::Url;

/// An error of the storage layer; always names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove the run folder {path} yet: {reason}")]
    Server { path: PathBuf, reason: String },
    #[error("refusing to write to {path}: it is outside the run's sandbox {sandbox}")]
    OutsideSandbox { path: PathBuf, sandbox: PathBuf },
    #[error("{url}: {message}")]
    S3 { url: String, message: String },
    #[error("storage profile `{profile}`: {message}")]
    Credentials { profile: String, message: String },
}

/// One file found under a folder: its path relative to the folder and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub relative: PathBuf,
    pub size: u64,
    /// The object's ETag as listed (S3 only): a server-side copy insists on it.
    pub etag: Option<String>,
    /// The object's version, for a snapshot of a versioned bucket (S3 only); else the current.
    pub version_id: Option<String>,
}

/// A folder that restore-drill may read but never change (a source or a backup): local, or a
/// prefix in an S3 bucket.
#[derive(Debug, Clone)]
pub(crate) struct ReadOnlyDir {
    location: Location,
}

impl ReadOnlyDir {
    pub fn new(location: &Location) -> Self {
        Self {
            location: location.clone(),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The folder as a URL, for deltalake.
    pub fn url(&self) -> Url {
        self.location.url()
    }

    /// Options deltalake needs to read the folder.
    pub(crate) fn storage_options(&self) -> Result<HashMap<String, String>, StorageError> {
        self.location.storage_options()
    }

    /// A read-only handle on a folder below this one.
    pub fn child(&self, name: &str) -> ReadOnlyDir {
        ReadOnlyDir {
            location: self.location.child(name),
        }
    }

    /// Names of the folders directly below this one.
    pub(crate) async fn list_folders(&self) -> Result<Vec<String>, StorageError> {
        let root = match self.location.backend() {
            Backend::S3(s3) => return s3::list_folders(&s3.profile, s3.bucket, s3.prefix).await,
            Backend::Local(root) => root,
        };
        let read_err = |source| StorageError::Read {
            path: root.to_path_buf(),
            source,
        };
        let mut entries = tokio::fs::read_dir(root).await.map_err(read_err)?;
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(read_err)? {
            if entry.file_type().await.map_err(read_err)?.is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every file below this folder, recursively, with its size.
    pub async fn list_files(&self) -> Result<Vec<FileEntry>, StorageError> {
        let root = match self.location.backend() {
            Backend::S3(s3) => return s3::list_files(&s3.profile, s3.bucket, s3.prefix).await,
            Backend::Local(root) => root.to_path_buf(),
        };
        tokio::task::spawn_blocking(move || walk(&root))
            .await
            .expect("listing task panicked")
    }

    /// Copies `file` (listed below this folder) to the local file `target`; returns the bytes
    /// written.
    pub(crate) async fn copy_file_to(
        &self,
        file: &FileEntry,
        target: &Path,
    ) -> Result<u64, StorageError> {
        let source_path = match self.location.backend() {
            Backend::S3(s3) => {
                let key = s3.key(&file.relative);
                let version = file.version_id.as_deref();
                return s3::download(&s3.profile, s3.bucket, &key, version, target).await;
            }
            Backend::Local(root) => root.join(&file.relative),
        };
        tokio::fs::copy(&source_path, target)
            .await
            .map_err(|source| StorageError::Read {
                path: source_path,
                source,
            })
    }

    /// The content of `file` (listed below this folder) as a stream.
    pub async fn open(
        &self,
        file: &FileEntry,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, StorageError> {
        let path = match self.location.backend() {
            Backend::S3(s3) => {
                let key = s3.key(&file.relative);
                let version = file.version_id.as_deref();
                return Ok(Box::new(
                    s3::open(&s3.profile, s3.bucket, &key, version).await?,
                ));
            }
            Backend::Local(root) => root.join(&file.relative),
        };
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Box::new(file)),
            Err(source) => Err(StorageError::Read { path, source }),
        }
    }

    /// The whole content of the file `relative` (below this folder), in memory.
    pub async fn read(&self, relative: &Path) -> Result<bytes::Bytes, StorageError> {
        let path = match self.location.backend() {
            Backend::S3(s3) => return s3::read(&s3.profile, s3.bucket, &s3.key(relative)).await,
            Backend::Local(root) => root.join(relative),
        };
        tokio::fs::read(&path)
            .await
            .map(Into::into)
            .map_err(|source| StorageError::Read { path, source })
    }
}

fn walk(root: &Path) -> Result<Vec<FileEntry>, StorageError> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let read_err = |source| StorageError::Read {
            path: dir.clone(),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let meta = entry.metadata().map_err(read_err)?;
            let path = entry.path();
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                let relative = path
                    .strip_prefix(root)
                    .expect("walked paths start with the root")
                    .to_path_buf();
                out.push(FileEntry {
                    relative,
                    size: meta.len(),
                    etag: None,
                    version_id: None,
                });
            }
        }
    }
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(out)
}

/// A local folder as a `file://` URL ending in `/`.
pub fn directory_url(path: &Path) -> Url {
    Url::from_directory_path(path).expect("storage paths are absolute")
}
