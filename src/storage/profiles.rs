//! `[storage.NAME]` tables: the S3 profiles a configuration defines, and the profile a job's
//! field names.

use std::collections::HashMap;
use std::sync::Arc;

use super::Location;
use super::s3::S3Profile;
use crate::primitives::fields::{Fields, Located, Problems};

/// The profiles by name.
pub(crate) type Profiles = HashMap<String, Arc<S3Profile>>;

/// `[storage.NAME]` tables: S3 profiles.
pub(crate) fn read_profiles(mut f: Fields, p: &mut Problems) -> Profiles {
    let mut profiles = HashMap::new();
    for name in f.keys() {
        let Some(mut t) = f.table_key(&name, format!("[storage.{name}]"), p) else {
            continue;
        };
        let endpoint = t.string("endpoint", p).and_then(|e| {
            if e.value.starts_with("http://") || e.value.starts_with("https://") {
                Some(e.value)
            } else {
                p.report(
                    e.at,
                    format!(
                        "[storage.{name}]: `endpoint` must be an http:// or https:// URL, e.g. \"http://minio:9000\""
                    ),
                );
                None
            }
        });
        let region = t.string("region", p).map(|r| r.value);
        let path_style = t.boolean("path_style", p).is_some_and(|b| b.value);
        let id = t.string("access_key_id_env", p);
        let secret = t.string("secret_access_key_env", p);
        let keys = match (id, secret) {
            (Some(id), Some(secret)) => Some((id.value, secret.value)),
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => {
                p.report(
                    one.at,
                    format!(
                        "[storage.{name}]: give both `access_key_id_env` and `secret_access_key_env` (the names of the environment variables with the keys), or neither for the AWS default credential chain"
                    ),
                );
                None
            }
        };
        t.finish(p);
        profiles.insert(
            name.clone(),
            Arc::new(S3Profile::new(name, endpoint, region, path_style, keys)),
        );
    }
    profiles
}

/// The profile a job's key names: `None` when the key is absent, `Some(None)` when it names no
/// profile (reported).
pub(crate) fn profile_named(
    f: &mut Fields,
    key: &'static str,
    profiles: &Profiles,
    p: &mut Problems,
) -> Option<Option<Arc<S3Profile>>> {
    let name = f.string(key, p)?;
    let context = f.context().to_string();
    Some(resolve_profile(&name, profiles, &context, p))
}

pub(crate) fn resolve_profile(
    name: &Located<String>,
    profiles: &Profiles,
    context: &str,
    p: &mut Problems,
) -> Option<Arc<S3Profile>> {
    if let Some(profile) = profiles.get(&name.value) {
        return Some(profile.clone());
    }
    let mut known: Vec<&str> = profiles.keys().map(String::as_str).collect();
    known.sort_unstable();
    p.report(
        name.at,
        format!(
            "{context}: no storage profile `{}`; define it as [storage.{}] (profiles: {})",
            name.value,
            name.value,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    );
    None
}

pub fn with_profile(location: Location, profile: &Option<Arc<S3Profile>>) -> Location {
    match profile {
        Some(profile) => location.with_profile(profile.clone()),
        None => location,
    }
}
