//! A configured location: a local folder given as a path or a `file://` URL.

use std::path::{Component, Path, PathBuf};

/// A place where a source, backups or a sandbox live. Always absolute and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    path: PathBuf,
}

impl Location {
    /// Reads a location as written in a config file; relative paths are taken from `base`
    /// (the config file's folder).
    pub fn parse(text: &str, base: &Path) -> Result<Location, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty location; give a folder path or a file:// URL".into());
        }
        let path = if let Some(scheme_end) = text.find("://") {
            let scheme = &text[..scheme_end];
            if scheme != "file" {
                return Err(format!(
                    "`{text}`: `{scheme}://` locations are not supported by this version; \
                     use a local folder path or a file:// URL"
                ));
            }
            let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
            url.to_file_path()
                .map_err(|()| format!("`{text}` is not a local file URL"))?
        } else {
            PathBuf::from(text)
        };
        let absolute = if path.is_absolute() {
            path
        } else {
            base.join(path)
        };
        Ok(Location {
            path: normalize(&absolute),
        })
    }

    pub fn from_path(path: &Path) -> Location {
        Location {
            path: normalize(path),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when one location contains the other (or they are the same). Symbolic links
    /// are resolved for the parts that exist.
    pub fn overlaps(&self, other: &Location) -> bool {
        let a = resolve_existing(&self.path);
        let b = resolve_existing(&other.path);
        a.starts_with(&b) || b.starts_with(&a)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
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
            Location::parse("data/lake", base).unwrap().path(),
            Path::new("/etc/restore-drill/data/lake")
        );
        assert_eq!(
            Location::parse("file:///var/backups/", base)
                .unwrap()
                .path(),
            Path::new("/var/backups")
        );
        assert_eq!(
            Location::parse("../x/./y", base).unwrap().path(),
            Path::new("/etc/x/y")
        );
    }

    #[test]
    fn other_schemes_are_refused_with_advice() {
        let err = Location::parse("s3://bucket/x", Path::new("/")).unwrap_err();
        assert!(err.contains("s3://"), "{err}");
        assert!(err.contains("file://"), "{err}");
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
