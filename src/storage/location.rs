//! A configured location: a local folder (a path or a `file://` URL) or a prefix in an S3 bucket
//! (`s3://bucket/prefix/`) read with a storage profile.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use url::Url;

use super::s3::S3Profile;
use super::{StorageError, directory_url};
use crate::primitives::fields::{Fields, Located, Problems};

/// Where a location's bytes are: the one place that tells local disk from S3.
#[derive(Debug, Clone)]
pub enum Backend<'a> {
    /// A local folder (absolute, normalised).
    Local(&'a Path),
    /// A prefix in an S3 bucket.
    S3(S3Prefix<'a>),
}

/// A prefix in an S3 bucket (empty, or ending in `/`) and the profile that reaches it: the
/// configured one, or the AWS default credential chain.
#[derive(Debug, Clone)]
pub struct S3Prefix<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub profile: Arc<S3Profile>,
}

impl S3Prefix<'_> {
    /// The key of the object at `relative` below the prefix.
    pub fn key(&self, relative: &Path) -> String {
        format!("{}{}", self.prefix, relative.display())
    }
}

/// A place where a source, backups or a sandbox live. Local paths are absolute and normalised;
/// S3 prefixes are empty or end in `/`.
#[derive(Debug, Clone)]
pub struct Location {
    place: Place,
}

#[derive(Debug, Clone)]
enum Place {
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        /// Set when the configuration is read (the job's `storage` profile).
        profile: Option<Arc<S3Profile>>,
    },
}

impl PartialEq for Location {
    fn eq(&self, other: &Self) -> bool {
        match (&self.place, &other.place) {
            (Place::Local(a), Place::Local(b)) => a == b,
            _ => {
                self.bucket_and_prefix().is_some()
                    && self.bucket_and_prefix() == other.bucket_and_prefix()
            }
        }
    }
}

impl Eq for Location {}

impl Location {
    /// Reads a location as written in a config file; relative paths are taken from `base`
    /// (the config file's folder).
    pub fn parse(text: &str, base: &Path) -> Result<Location, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "empty location; give a folder path, a file:// URL or an s3://bucket/prefix/ URL"
                    .into(),
            );
        }
        let path = if let Some(scheme_end) = text.find("://") {
            let scheme = &text[..scheme_end];
            match scheme {
                "file" => {
                    let url =
                        url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
                    url.to_file_path()
                        .map_err(|()| format!("`{text}` is not a local file URL"))?
                }
                "s3" | "s3a" => {
                    let rest = &text[scheme_end + 3..];
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    if bucket.is_empty() {
                        return Err(format!(
                            "`{text}` names no bucket; write s3://bucket/prefix/"
                        ));
                    }
                    let prefix = prefix.trim_matches('/');
                    let prefix = if prefix.is_empty() {
                        String::new()
                    } else {
                        format!("{prefix}/")
                    };
                    return Ok(Location {
                        place: Place::S3 {
                            bucket: bucket.to_string(),
                            prefix,
                            profile: None,
                        },
                    });
                }
                _ => {
                    return Err(format!(
                        "`{text}`: `{scheme}://` locations are not supported; use a local folder path, a file:// URL or an s3:// URL"
                    ));
                }
            }
        } else {
            PathBuf::from(text)
        };
        let absolute = if path.is_absolute() {
            path
        } else {
            base.join(path)
        };
        Ok(Location {
            place: Place::Local(normalize(&absolute)),
        })
    }

    /// The location a configuration field `key` names (required; `want` says what it is for),
    /// relative paths taken from `base`. Problems are reported at the field.
    pub fn read(
        f: &mut Fields,
        key: &'static str,
        want: &str,
        base: &Path,
        p: &mut Problems,
    ) -> Option<Located<Location>> {
        let text = f.required_string(key, want, p)?;
        match Location::parse(&text.value, base) {
            Ok(l) => Some(Located::new(l, text.at)),
            Err(e) => {
                p.report(text.at, format!("{}: `{key}`: {e}", f.context()));
                None
            }
        }
    }

    pub(crate) fn from_path(path: &Path) -> Location {
        Location {
            place: Place::Local(normalize(path)),
        }
    }

    /// Where the location's bytes are, with what reaches them.
    pub fn backend(&self) -> Backend<'_> {
        match &self.place {
            Place::Local(path) => Backend::Local(path),
            Place::S3 {
                bucket,
                prefix,
                profile,
            } => Backend::S3(S3Prefix {
                bucket,
                prefix,
                profile: profile
                    .clone()
                    .unwrap_or_else(|| Arc::new(S3Profile::default_chain())),
            }),
        }
    }

    /// The local folder, or `None` for an S3 prefix.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.place {
            Place::Local(p) => Some(p),
            Place::S3 { .. } => None,
        }
    }

    pub(crate) fn is_s3(&self) -> bool {
        matches!(self.place, Place::S3 { .. })
    }

    /// The location as a URL, for deltalake: `file:///…/` or `s3://bucket/prefix/`.
    pub fn url(&self) -> Url {
        match &self.place {
            Place::Local(path) => directory_url(path),
            Place::S3 { .. } => Url::parse(&self.to_string()).expect("s3 locations are URLs"),
        }
    }

    /// The options deltalake needs to reach the location (the S3 profile's endpoint, region,
    /// keys); none for local folders.
    pub(crate) fn storage_options(&self) -> Result<HashMap<String, String>, StorageError> {
        match self.backend() {
            Backend::S3(s3) => s3.profile.delta_options(),
            Backend::Local(_) => Ok(HashMap::new()),
        }
    }

    /// The same location read with `profile` (S3 locations only; local ones are unchanged).
    pub fn with_profile(mut self, new: Arc<S3Profile>) -> Location {
        if let Place::S3 { profile, .. } = &mut self.place {
            *profile = Some(new);
        }
        self
    }

    /// The location beside this one whose name is this one's followed by `suffix`; `None` for
    /// a location without a name (a bucket's root, the file system's root).
    pub fn sibling(&self, suffix: &str) -> Option<Location> {
        match &self.place {
            Place::Local(p) => {
                let name = p.file_name()?.to_string_lossy();
                Some(Location::from_path(
                    &p.with_file_name(format!("{name}{suffix}")),
                ))
            }
            Place::S3 {
                bucket,
                prefix,
                profile,
            } => {
                let trimmed = prefix.strip_suffix('/')?;
                Some(Location {
                    place: Place::S3 {
                        bucket: bucket.clone(),
                        prefix: format!("{trimmed}{suffix}/"),
                        profile: profile.clone(),
                    },
                })
            }
        }
    }

    /// The same location read with the profile `other` is read with (S3 locations only).
    pub fn with_profile_of(self, other: &Location) -> Location {
        match &other.place {
            Place::S3 {
                profile: Some(profile),
                ..
            } => self.with_profile(profile.clone()),
            _ => self,
        }
    }

    /// The location of the folder `name` below this one.
    pub fn child(&self, name: &str) -> Location {
        match &self.place {
            Place::Local(p) => Location::from_path(&p.join(name)),
            Place::S3 {
                bucket,
                prefix,
                profile,
            } => Location {
                place: Place::S3 {
                    bucket: bucket.clone(),
                    prefix: format!("{prefix}{}/", name.trim_matches('/')),
                    profile: profile.clone(),
                },
            },
        }
    }

    /// True when one location contains the other (or they are the same). Symbolic links
    /// are resolved for the local parts that exist.
    pub fn overlaps(&self, other: &Location) -> bool {
        self.resolved().overlaps(&other.resolved())
    }

    /// The place for comparisons: local paths with the symbolic links of their existing parts
    /// resolved (file system calls: resolve once, compare many times).
    pub(crate) fn resolved(&self) -> Resolved {
        match &self.place {
            Place::Local(path) => Resolved::Local(resolve_existing(path)),
            Place::S3 { bucket, prefix, .. } => Resolved::S3 {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
        }
    }

    fn bucket_and_prefix(&self) -> Option<(&str, &str)> {
        match &self.place {
            Place::S3 { bucket, prefix, .. } => Some((bucket, prefix)),
            Place::Local(_) => None,
        }
    }
}

/// A location resolved for comparisons (see [`Location::resolved`]); equal when they name the
/// same folder or prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Resolved {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Resolved {
    /// True when one contains the other (or they are the same).
    pub(crate) fn overlaps(&self, other: &Resolved) -> bool {
        match (self, other) {
            (Resolved::Local(a), Resolved::Local(b)) => a.starts_with(b) || b.starts_with(a),
            (
                Resolved::S3 {
                    bucket: a,
                    prefix: p,
                },
                Resolved::S3 {
                    bucket: b,
                    prefix: q,
                },
            ) => a == b && (p.starts_with(q.as_str()) || q.starts_with(p.as_str())),
            _ => false,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.place {
            Place::Local(p) => write!(f, "{}", p.display()),
            Place::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Removes `.` and resolves `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Canonicalises the longest existing ancestor and appends the rest.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_and_file_urls_become_absolute() {
        let base = Path::new("/etc/restore-drill");
        assert_eq!(
            Location::parse("data/lake", base)
                .unwrap()
                .local_path()
                .unwrap(),
            Path::new("/etc/restore-drill/data/lake")
        );
        assert_eq!(
            Location::parse("file:///var/backups/", base)
                .unwrap()
                .local_path()
                .unwrap(),
            Path::new("/var/backups")
        );
        assert_eq!(
            Location::parse("../x/./y", base)
                .unwrap()
                .local_path()
                .unwrap(),
            Path::new("/etc/x/y")
        );
    }

    #[test]
    fn s3_prefixes_are_read_and_other_schemes_refused_with_advice() {
        let l = Location::parse("s3://backups/daily", Path::new("/")).unwrap();
        assert!(
            matches!(l.backend(), Backend::S3(s3) if s3.bucket == "backups" && s3.prefix == "daily/")
        );
        assert_eq!(l.to_string(), "s3://backups/daily/");
        assert_eq!(
            l.child("x_2026-11-01").to_string(),
            "s3://backups/daily/x_2026-11-01/"
        );
        let root = Location::parse("s3://backups", Path::new("/")).unwrap();
        assert_eq!(root.to_string(), "s3://backups/");
        assert!(root.overlaps(&l) && l.overlaps(&root));
        let other = Location::parse("s3://backups/dailyx/", Path::new("/")).unwrap();
        assert!(!other.overlaps(&l));
        let err = Location::parse("gs://bucket/x", Path::new("/")).unwrap_err();
        assert!(err.contains("gs://") && err.contains("s3://"), "{err}");
        assert!(Location::parse("s3:///x", Path::new("/")).is_err());
    }

    #[test]
    fn nested_locations_overlap() {
        let a = Location::from_path(Path::new("/nonexistent-rd/lake"));
        let b = Location::from_path(Path::new("/nonexistent-rd/lake/sandbox"));
        let c = Location::from_path(Path::new("/nonexistent-rd/lakehouse"));
        assert!(a.overlaps(&b));
        assert!(b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
