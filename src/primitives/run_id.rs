//! Run ids: the start time and a random suffix, e.g. `run-20261129T023000Z-4f3a9c`. A run id
//! names the drill's sandbox folder; sandbox sweeps recognise run folders by its shape and read
//! their age from it.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};

const PREFIX: &str = "run-";
const STAMP: &str = "%Y%m%dT%H%M%SZ";
const STAMP_LENGTH: usize = 16;

/// The id of one drill.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RunId(String);

impl RunId {
    /// A new id for a drill started at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(at.timestamp_nanos_opt().unwrap_or_default() as u128);
        h.write_u32(std::process::id());
        RunId(format!(
            "{PREFIX}{}-{:06x}",
            at.format(STAMP),
            h.finish() & 0xff_ffff
        ))
    }

    /// A folder or record name, if it has the shape of a run id (`run-<time>-<hex>`).
    pub fn parse(name: &str) -> Option<Self> {
        let looks_like = name.strip_prefix(PREFIX).is_some_and(|rest| {
            rest.len() >= STAMP_LENGTH
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        looks_like.then(|| RunId(name.to_string()))
    }

    /// The start time written in the id, to the second.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        let stamp = self.0.strip_prefix(PREFIX)?.get(..STAMP_LENGTH)?;
        NaiveDateTime::parse_from_str(stamp, STAMP)
            .ok()
            .map(|t| t.and_utc())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_new_id_is_recognised_and_tells_its_start_time() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 2, 30, 0).unwrap();
        let id = RunId::new(at);
        assert!(id.as_str().starts_with("run-20261129T023000Z-"), "{id}");
        let parsed = RunId::parse(id.as_str()).expect("its own shape");
        assert_eq!(parsed.started_at(), Some(at));
    }

    #[test]
    fn other_folder_names_are_not_run_ids() {
        for name in [
            "orders",
            "run-",
            "run-2026",
            ".locks",
            "run-20261129T023000Z/../x",
        ] {
            assert_eq!(RunId::parse(name), None, "{name}");
        }
    }
}
