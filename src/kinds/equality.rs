//! How a restored copy was shown equal to the source at the snapshot's version without decoding
//! the source twice: its files byte-identical to the source's (recorded alike in both logs) hold
//! the same rows; only the rest is decoded, on both sides, and merged into the fingerprint.

use deltalake::datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

/// One group of a snapshot's data files and how their equality with the source's files was
/// established, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EqualityGroup {
    /// `identical_bytes` (read and compared), `identical_etag` (equal S3 ETags) or `decoded`
    /// (their rows read and fingerprinted).
    pub established_by: String,
    pub files: usize,
    pub bytes: u64,
    /// Why a decoded group was not proven by its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl EqualityGroup {
    pub(crate) fn decoded(files: usize, bytes: u64, why: String) -> Self {
        EqualityGroup {
            established_by: "decoded".into(),
            files,
            bytes,
            why: Some(why),
        }
    }

    /// "3 files (12.0 MiB) identical_bytes" and the like, for the text report.
    pub fn describe(&self) -> String {
        let how = match self.established_by.as_str() {
            "identical_bytes" => "byte for byte identical (compared)".to_string(),
            "identical_etag" => "identical (equal ETags)".to_string(),
            _ => format!(
                "decoded and fingerprinted{}",
                self.why
                    .as_deref()
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default()
            ),
        };
        format!(
            "{} file(s), {}: {how}",
            self.files,
            crate::primitives::bytes::human_bytes(self.bytes)
        )
    }
}

/// What comparing a restored copy's files with the source's found.
pub struct Equality {
    /// The files proven identical, grouped by how.
    pub proven: Vec<EqualityGroup>,
    /// The files that were not; `None` when every file was.
    pub unproven: Option<Unproven>,
}

impl Equality {
    pub fn proven_files(&self) -> usize {
        self.proven.iter().map(|g| g.files).sum()
    }
}

/// The files of a copy not proven identical to the source's.
pub struct Unproven {
    /// The source's files among them (what is decoded in place of a full scan).
    pub group: EqualityGroup,
    /// Sessions with only those files registered as the table: the restored copy's and the
    /// source's. `None` when the table cannot be scanned in parts (the whole source is decoded).
    pub parts: Option<(SessionContext, SessionContext)>,
}
