//! Where data lives, and the two kinds of handle a drill gets on it: read-only handles for the
//! source and the backups (they have no method that writes), and a sandbox handle that can only
//! write below its own run folder.

mod location;

pub use location::Location;

use std::path::{Component, Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
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

/// The root under which runs get their sandboxes. Creating a run is the only way to write.
#[derive(Debug, Clone)]
pub struct SandboxRoot {
    root: PathBuf,
}

impl SandboxRoot {
    pub fn new(location: &Location) -> Self {
        Self {
            root: location.path().to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Creates `<root>/<job>/<run_id>/`, which must not exist yet.
    pub async fn create_run(&self, job: &str, run_id: &str) -> Result<RunSandbox, StorageError> {
        let job_dir = self.root.join(job);
        tokio::fs::create_dir_all(&job_dir)
            .await
            .map_err(|source| StorageError::Write {
                path: job_dir.clone(),
                source,
            })?;
        let path = job_dir.join(run_id);
        tokio::fs::create_dir(&path)
            .await
            .map_err(|source| StorageError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(RunSandbox { root: path })
    }
}

/// The folder of one run: everything a drill writes goes below it.
#[derive(Debug, Clone)]
pub struct RunSandbox {
    root: PathBuf,
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
        futures::stream::iter(files)
            .map(|file| async move {
                let source_path = from.path().join(&file.relative);
                let target = self.target(&file.relative)?;
                let written = tokio::fs::copy(&source_path, &target)
                    .await
                    .map_err(|source| StorageError::Read {
                        path: source_path.clone(),
                        source,
                    })?;
                if written != file.size {
                    return Err(StorageError::Read {
                        path: source_path,
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

    /// Deletes the run's folder and everything in it.
    pub async fn remove(&self) -> Result<(), StorageError> {
        match tokio::fs::remove_dir_all(&self.root).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Write {
                path: self.root.clone(),
                source,
            }),
        }
    }
}

/// A local folder as a `file://` URL ending in `/`.
pub fn directory_url(path: &Path) -> Url {
    Url::from_directory_path(path).expect("storage paths are absolute")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_refuses_paths_that_leave_it() {
        let run = RunSandbox {
            root: PathBuf::from("/tmp/sandbox/job/run-1"),
        };
        assert!(run.target(Path::new("part-0.parquet")).is_ok());
        assert!(run.target(Path::new("_delta_log/0.json")).is_ok());
        assert!(matches!(
            run.target(Path::new("../other/x")),
            Err(StorageError::OutsideSandbox { .. })
        ));
        assert!(run.target(Path::new("/etc/passwd")).is_err());
    }
}
