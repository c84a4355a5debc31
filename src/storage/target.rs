//! A restore's target: a folder or prefix of the user's, written only by `restore`. What it
//! holds is never deleted: `--replace` first moves it aside, to a sibling whose name says so.

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};

use super::s3_write::{self, CopyLimits, CopySource};
use super::{Backend, Location, StorageError};

/// Whether anything is at `location`: a file, a folder with entries, or an object below the
/// prefix. A missing or empty folder holds nothing.
pub async fn holds_anything(location: &Location) -> Result<bool, StorageError> {
    match location.backend() {
        Backend::Local(path) => match tokio::fs::symlink_metadata(path).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(read_error(path, source)),
            Ok(meta) if !meta.is_dir() => Ok(true),
            Ok(_) => {
                let mut entries = tokio::fs::read_dir(path)
                    .await
                    .map_err(|e| read_error(path, e))?;
                Ok(entries
                    .next_entry()
                    .await
                    .map_err(|e| read_error(path, e))?
                    .is_some())
            }
        },
        Backend::S3(s3) => {
            let client = s3.profile.client().await?;
            let listed = client
                .list_objects_v2()
                .bucket(s3.bucket)
                .prefix(s3.prefix)
                .max_keys(1)
                .send()
                .await
                .map_err(|e| super::s3::s3_error(s3.bucket, s3.prefix, e))?;
            Ok(listed.key_count().unwrap_or(0) > 0 || !listed.contents().is_empty())
        }
    }
}

/// Where `location`'s contents go when a restore replaces them: its sibling
/// `<name>.moved-aside-<run id>`. `None` for a location without a name (a bucket's root, `/`).
pub fn aside_of(location: &Location, run_id: &str) -> Option<Location> {
    location.sibling(&format!(".moved-aside-{run_id}"))
}

/// Moves everything at `from` to `to`, which must hold nothing: a rename on local disk (one
/// step: the contents are whole at one place or the other); on S3 every object copied on the
/// server, each copy checked, and only then the originals deleted, so an interruption leaves
/// every object at least at its old place.
pub async fn move_aside(from: &Location, to: &Location) -> Result<usize, StorageError> {
    if holds_anything(to).await? {
        return Err(StorageError::Write {
            path: PathBuf::from(to.to_string()),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the place to move the target's contents to already holds data; nothing was moved",
            ),
        });
    }
    match (from.backend(), to.backend()) {
        (Backend::Local(from), Backend::Local(to)) => {
            tokio::fs::rename(from, to)
                .await
                .map_err(|source| StorageError::Write {
                    path: from.to_path_buf(),
                    source,
                })?;
            Ok(1)
        }
        (Backend::S3(from), Backend::S3(to)) => {
            let files = super::s3::list_files(&from.profile, from.bucket, from.prefix).await?;
            let (profile, bucket) = (&to.profile, to.bucket);
            let (from_ref, to_ref) = (&from, &to);
            futures::stream::iter(files.iter())
                .map(|file| async move {
                    let (from, to) = (from_ref, to_ref);
                    let key = format!("{}{}", from.prefix, file.relative.display());
                    let source = CopySource {
                        bucket: from.bucket,
                        key: &key,
                        version_id: None,
                        etag: file.etag.as_deref(),
                    };
                    let target = to.key(&file.relative);
                    s3_write::copy_object(
                        profile,
                        source,
                        file.size,
                        bucket,
                        &target,
                        CopyLimits::default(),
                    )
                    .await
                })
                .buffer_unordered(8)
                .try_collect::<()>()
                .await?;
            let copied = super::s3::list_files(&to.profile, to.bucket, to.prefix).await?;
            let whole = files.iter().all(|f| {
                copied
                    .iter()
                    .any(|c| c.relative == f.relative && c.size == f.size)
            });
            if !whole {
                return Err(StorageError::S3 {
                    url: format!("s3://{}/{}", to.bucket, to.prefix),
                    message: "not every object arrived whole; the originals were left in place"
                        .into(),
                });
            }
            let keys: Vec<String> = files
                .iter()
                .map(|f| format!("{}{}", from.prefix, f.relative.display()))
                .collect();
            s3_write::delete_keys(&from.profile, from.bucket, &keys).await?;
            Ok(files.len())
        }
        _ => Err(StorageError::Write {
            path: PathBuf::from(to.to_string()),
            source: std::io::Error::other(format!(
                "{from} and {to} are not on the same storage; contents are moved aside beside themselves"
            )),
        }),
    }
}

fn read_error(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Read {
        path: PathBuf::from(path),
        source,
    }
}
