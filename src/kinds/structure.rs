//! What the structure check of a restore found: a Delta table's log replayed and its files and
//! deletion vectors checked, or a restored database's restore, tables, pg_amcheck and sequences.

use serde::Serialize;

use super::delta::table::TableInfo;

/// How many file names a problem message lists before it summarises the rest.
const NAMED_FILES: usize = 20;

/// What structure verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StructureReport {
    pub log_replays: bool,
    pub version: Option<u64>,
    pub files_checked: usize,
    pub missing_files: Vec<String>,
    pub wrong_size_files: Vec<WrongSize>,
    /// Deletion vectors checked, and those that are missing or damaged (by vector file, or by
    /// data file for inline ones), each with what is wrong.
    pub deletion_vectors_checked: usize,
    pub damaged_deletion_vectors: Vec<String>,
    /// One sentence per problem, for findings.
    pub problems: Vec<String>,
    /// Protocol violations a reader tolerates without returning other rows (a file added twice
    /// in one commit): `warn` findings.
    pub warnings: Vec<String>,
    /// When the log does not replay: the reader features its newest protocol action declares,
    /// read from the commit files (a feature this version does not know is an error, not a
    /// broken backup).
    #[serde(skip)]
    pub declared_reader_features: Vec<String>,
    /// The version the log should replay to, when one is expected.
    #[serde(skip)]
    pub expected_version: Option<u64>,
    #[serde(skip)]
    pub table: Option<TableInfo>,
    /// A restored database's structure (a PostgreSQL dump): its restore, tables, pg_amcheck
    /// and sequences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<super::postgres::DatabaseStructure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WrongSize {
    pub path: String,
    pub expected: u64,
    pub actual: u64,
}

impl StructureReport {
    pub(crate) fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether every file and deletion vector is there and whole, so the data can be scanned.
    pub(crate) fn files_whole(&self) -> bool {
        self.missing_files.is_empty()
            && self.wrong_size_files.is_empty()
            && self.damaged_deletion_vectors.is_empty()
    }

    /// The reader features the log declares that this version does not know (read when the
    /// log does not replay): such a log is not a broken backup.
    pub(crate) fn unknown_declared_features(&self) -> Vec<String> {
        self.declared_reader_features
            .iter()
            .filter(|f| !super::delta::table::SUPPORTED_READER_FEATURES.contains(&f.as_str()))
            .cloned()
            .collect()
    }
}

/// Joins up to `NAMED_FILES` names and says how many more there are.
pub fn name_some<S: AsRef<str>>(names: impl Iterator<Item = S>) -> String {
    let mut shown = Vec::new();
    let mut more = 0;
    for name in names {
        if shown.len() < NAMED_FILES {
            shown.push(name.as_ref().to_string());
        } else {
            more += 1;
        }
    }
    let mut out = shown.join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}
