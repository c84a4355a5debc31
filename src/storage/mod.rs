//! Where data lives, and the two kinds of handle a drill gets on it: read-only handles for the
//! source and the backups (they have no method that writes), and a sandbox handle that can only
//! write below its own run folder.

mod location;
mod sandbox;

pub use location::Location;
pub use sandbox::{RunSandbox, SandboxRoot, SweepReason, Swept};

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
    #[error("refusing to write to {path}: it is outside the run's sandbox {sandbox}")]
    OutsideSandbox { path: PathBuf, sandbox: PathBuf },
}

/// One file found under a folder: its path relative to the folder and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub relative: PathBuf,
    pub size: u64,
}

/// A folder that restore-drill may read but never change (a source or a backup).
#[derive(Debug, Clone)]
pub struct ReadOnlyDir {
    root: PathBuf,
}

impl ReadOnlyDir {
    pub fn new(location: &Location) -> Self {
        Self {
            root: location.path().to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The folder as a URL, for deltalake.
    pub fn url(&self) -> Url {
        directory_url(&self.root)
    }

    /// A read-only handle on a folder below this one.
    pub fn child(&self, name: &str) -> ReadOnlyDir {
        ReadOnlyDir {
            root: self.root.join(name),
        }
    }

    /// Names of the folders directly below this one.
    pub async fn list_folders(&self) -> Result<Vec<String>, StorageError> {
        let read_err = |source| StorageError::Read {
            path: self.root.clone(),
            source,
        };
        let mut entries = tokio::fs::read_dir(&self.root).await.map_err(read_err)?;
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
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || walk(&root))
            .await
            .expect("listing task panicked")
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
