//! The damages a self-test inflicts on a copy of a verified Delta table (a folder on local
//! disk), each the way a real backup goes wrong, each chosen deterministically from a seed. A
//! damage that cannot apply to the table says why (`n/a`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, new_null_array};
use deltalake::arrow::compute::cast;
use deltalake::arrow::compute::kernels::{numeric, zip};
use deltalake::arrow::datatypes::{DataType, Schema};
use deltalake::datafusion::common::ScalarValue;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;

use crate::kinds::TableInfo;

/// One way a backup goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Damage {
    MissingFile,
    TruncatedFile,
    FlippedBytes,
    MissingCommit,
    RowsLost,
    RowsDuplicated,
    ValuesNulled,
    ValuesDrifted,
    StringChanged,
    ColumnDropped,
    OldSnapshot,
}

impl Damage {
    pub const ALL: [Damage; 11] = [
        Damage::MissingFile,
        Damage::TruncatedFile,
        Damage::FlippedBytes,
        Damage::MissingCommit,
        Damage::RowsLost,
        Damage::RowsDuplicated,
        Damage::ValuesNulled,
        Damage::ValuesDrifted,
        Damage::StringChanged,
        Damage::ColumnDropped,
        Damage::OldSnapshot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Damage::MissingFile => "missing_file",
            Damage::TruncatedFile => "truncated_file",
            Damage::FlippedBytes => "flipped_bytes",
            Damage::MissingCommit => "missing_commit",
            Damage::RowsLost => "rows_lost",
            Damage::RowsDuplicated => "rows_duplicated",
            Damage::ValuesNulled => "values_nulled",
            Damage::ValuesDrifted => "values_drifted",
            Damage::StringChanged => "string_changed",
            Damage::ColumnDropped => "column_dropped",
            Damage::OldSnapshot => "old_snapshot",
        }
    }

    /// The damage in words.
    pub fn describe(self) -> &'static str {
        match self {
            Damage::MissingFile => "a data file missing",
            Damage::TruncatedFile => "a data file truncated",
            Damage::FlippedBytes => "bytes flipped inside a data page",
            Damage::MissingCommit => "a commit missing from the log",
            Damage::RowsLost => "rows lost, the backup consistent without them",
            Damage::RowsDuplicated => "rows duplicated, the backup consistent with them",
            Damage::ValuesNulled => "one column's values nulled in some rows",
            Damage::ValuesDrifted => "one numeric column's values shifted slightly in some rows",
            Damage::StringChanged => "one string value changed",
            Damage::ColumnDropped => "a column dropped from the table",
            Damage::OldSnapshot => "an old snapshot passed off as new",
        }
    }

    /// The check that would catch the damage, for a self-test that missed it.
    pub fn suggestion(self) -> &'static str {
        match self {
            Damage::MissingFile | Damage::TruncatedFile => {
                "the structure check always runs; a miss means the log does not name the file: report it as a bug"
            }
            Damage::MissingCommit => {
                "a backup that lost its newest commits looks like an older, complete one: add `row_count` with `equals_source = true`, a `freshness` check, or an `rpo_column`"
            }
            Damage::FlippedBytes => {
                "add a check that reads every column (`not_null`, `sum`, or a `compare` key) so that every page is decoded"
            }
            Damage::RowsLost | Damage::RowsDuplicated => {
                "add `row_count` with `equals_source = true`, a `unique` check on the key, or a `compare` key"
            }
            Damage::ValuesNulled => "add `not_null` on the column, or a `compare` key",
            Damage::ValuesDrifted => {
                "add `sum` with `equals_source = true` on the column, or a `compare` key"
            }
            Damage::StringChanged => "add `in_set` on the column, or a `compare` key",
            Damage::ColumnDropped => {
                "add a `schema` check, or a check that names the column (`not_null`)"
            }
            Damage::OldSnapshot => {
                "set the RPO objective to what the data may lose, or an `rpo_column` / `freshness` check"
            }
        }
    }
}

/// What a damage did to the copy, or why it cannot apply.
pub enum Applied {
    /// What was damaged, in words (file, column, rows).
    Done(String),
    NotApplicable(String),
}

/// A copy of a verified table, ready to be damaged.
pub struct Copy<'a> {
    pub dir: &'a Path,
    pub info: &'a TableInfo,
    /// How far back an old snapshot is moved: beyond the RPO objective.
    pub rpo: std::time::Duration,
}

impl Copy<'_> {
    /// Inflicts `damage` on the copy with the random choices of `seed`.
    pub fn apply(&self, damage: Damage, seed: u64) -> Result<Applied, String> {
        let mut rng = StdRng::seed_from_u64(seed ^ damage as u64);
        match damage {
            Damage::MissingFile => self.on_a_file(&mut rng, |path, _| {
                std::fs::remove_file(path).map_err(|e| e.to_string())?;
                Ok("removed".into())
            }),
            Damage::TruncatedFile => self.on_a_file(&mut rng, truncate),
            Damage::FlippedBytes => self.on_a_file(&mut rng, flip),
            Damage::MissingCommit => {
                let commits = self.editable_commits()?;
                if commits.is_empty() {
                    return Ok(na("every commit is folded into a checkpoint"));
                }
                let (version, path) = &commits[rng.random_range(0..commits.len())];
                std::fs::remove_file(path).map_err(|e| e.to_string())?;
                Ok(Applied::Done(format!("commit {version} removed")))
            }
            Damage::RowsLost => self.rows_lost(&mut rng),
            Damage::RowsDuplicated => self.rows_duplicated(&mut rng),
            Damage::ValuesNulled => self.rewrite_column(&mut rng, Edit::Null),
            Damage::ValuesDrifted => self.rewrite_column(&mut rng, Edit::Drift),
            Damage::StringChanged => self.rewrite_column(&mut rng, Edit::String),
            Damage::ColumnDropped => self.column_dropped(&mut rng),
            Damage::OldSnapshot => self.old_snapshot(),
        }
    }

    /// Data files without a deletion vector, in the log's order.
    fn plain_files(&self) -> Vec<&crate::kinds::delta::table::LogFile> {
        self.info
            .files
            .iter()
            .filter(|f| f.deletion_vector.is_none() && f.size > 0)
            .collect()
    }

    /// Calls `damage` on one data file chosen by `rng`, with its path and size.
    fn on_a_file(
        &self,
        rng: &mut StdRng,
        damage: impl FnOnce(&Path, u64) -> Result<String, String>,
    ) -> Result<Applied, String> {
        let files = self.plain_files();
        if files.is_empty() {
            return Ok(na("the table has no data file"));
        }
        let file = files[rng.random_range(0..files.len())];
        let done = damage(&self.dir.join(&file.path), file.size)?;
        Ok(Applied::Done(format!("{}: {done}", file.path)))
    }

    /// The commit files after the newest checkpoint (those a reader replays), oldest first.
    fn editable_commits(&self) -> Result<Vec<(u64, PathBuf)>, String> {
        let log = self.dir.join("_delta_log");
        let mut checkpoint = None;
        let mut commits = Vec::new();
        for entry in std::fs::read_dir(&log).map_err(|e| format!("{}: {e}", log.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = name.get(..20).and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            if name.ends_with(".json") && name.len() == 25 {
                commits.push((version, entry.path()));
            } else if name.contains(".checkpoint") {
                checkpoint = checkpoint.max(Some(version));
            }
        }
        commits.retain(|(v, _)| checkpoint.is_none_or(|c| *v > c));
        commits.sort();
        Ok(commits)
    }

    /// The `add` action of the data file `path` (decoded) in a replayed commit: the commit's
    /// file, the line's index and the action.
    fn find_add(&self, path: &str) -> Result<Option<(PathBuf, usize, Value)>, String> {
        for (_, commit) in self.editable_commits()? {
            let text = std::fs::read_to_string(&commit).map_err(|e| e.to_string())?;
            for (i, line) in text.lines().enumerate() {
                let Ok(action) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let named = action["add"]["path"].as_str().map(|p| {
                    percent_encoding::percent_decode_str(p)
                        .decode_utf8_lossy()
                        .into_owned()
                });
                if named.as_deref() == Some(path) {
                    return Ok(Some((commit, i, action)));
                }
            }
        }
        Ok(None)
    }

    /// Removes one data file and its `add` action: the log replays, its row counts agree with
    /// the files, and rows are gone.
    fn rows_lost(&self, rng: &mut StdRng) -> Result<Applied, String> {
        let Some((file, commit, line, _)) = self.file_with_add(rng)? else {
            return Ok(na("no data file is added by a commit the log replays"));
        };
        edit_lines(&commit, |lines| {
            lines.remove(line);
        })?;
        std::fs::remove_file(self.dir.join(&file.path)).map_err(|e| e.to_string())?;
        Ok(Applied::Done(format!(
            "{} and its add removed ({} rows)",
            file.path,
            file.num_records.map_or("?".into(), |n| n.to_string())
        )))
    }

    /// Copies one data file under a new name and adds it to the newest commit: its rows are
    /// there twice, and the log agrees.
    fn rows_duplicated(&self, rng: &mut StdRng) -> Result<Applied, String> {
        let Some((file, _, _, mut action)) = self.file_with_add(rng)? else {
            return Ok(na("no data file is added by a commit the log replays"));
        };
        let copy = match file.path.rsplit_once('.') {
            Some((stem, ext)) => format!("{stem}-selftest-copy.{ext}"),
            None => format!("{}-selftest-copy", file.path),
        };
        std::fs::copy(self.dir.join(&file.path), self.dir.join(&copy))
            .map_err(|e| e.to_string())?;
        action["add"]["path"] = Value::String(copy.clone());
        let (_, newest) = self
            .editable_commits()?
            .pop()
            .ok_or("the log has no commit to add to")?;
        edit_lines(&newest, |lines| lines.push(action.to_string()))?;
        Ok(Applied::Done(format!(
            "{} added a second time as {copy}",
            file.path
        )))
    }

    /// A data file without a deletion vector whose `add` a replayed commit holds.
    #[allow(clippy::type_complexity)]
    fn file_with_add(
        &self,
        rng: &mut StdRng,
    ) -> Result<Option<(&crate::kinds::delta::table::LogFile, PathBuf, usize, Value)>, String> {
        let mut files = self.plain_files();
        // Start at a random file, then try the others in order.
        if !files.is_empty() {
            let start = rng.random_range(0..files.len());
            files.rotate_left(start);
        }
        for file in files {
            if let Some((commit, line, action)) = self.find_add(&file.path)? {
                return Ok(Some((file, commit, line, action)));
            }
        }
        Ok(None)
    }

    /// Rewrites one data file with one column's values changed in some rows, and its size in
    /// the log: the log replays and counts the same rows; the values are wrong.
    fn rewrite_column(&self, rng: &mut StdRng, edit: Edit) -> Result<Applied, String> {
        let candidates: Vec<&str> = self
            .info
            .columns
            .iter()
            .zip(&self.info.types)
            .filter(|(name, kind)| !self.info.partition_columns.contains(name) && edit.fits(kind))
            .map(|(name, _)| name.as_str())
            .collect();
        if candidates.is_empty() {
            return Ok(na(edit.missing()));
        }
        let column = candidates[rng.random_range(0..candidates.len())].to_string();
        let Some((file, commit, line, mut action)) = self.file_with_add(rng)? else {
            return Ok(na("no data file is added by a commit the log replays"));
        };
        let path = self.dir.join(&file.path);
        let (changed, size) = rewrite_parquet(&path, &column, edit, rng)?;
        if changed == 0 {
            return Ok(na("the chosen file holds no value to change"));
        }
        action["add"]["size"] = Value::from(size);
        edit_lines(&commit, |lines| lines[line] = action.to_string())?;
        Ok(Applied::Done(format!(
            "{} row(s) of `{column}` in {}",
            changed, file.path
        )))
    }

    /// Removes one column from the schema in the log: the data files still hold it, the table
    /// no longer does.
    fn column_dropped(&self, rng: &mut StdRng) -> Result<Applied, String> {
        let droppable: Vec<&String> = self
            .info
            .columns
            .iter()
            .filter(|c| !self.info.partition_columns.contains(c))
            .collect();
        if droppable.len() < 2 {
            return Ok(na("the table has a single data column"));
        }
        let column = droppable[rng.random_range(0..droppable.len())].clone();
        let mut edited = 0;
        for (_, commit) in self.editable_commits()? {
            edit_lines(&commit, |lines| {
                for line in lines.iter_mut() {
                    let Ok(mut action) = serde_json::from_str::<Value>(line) else {
                        continue;
                    };
                    let Some(schema) = action["metaData"]["schemaString"].as_str() else {
                        continue;
                    };
                    let Ok(mut schema) = serde_json::from_str::<Value>(schema) else {
                        continue;
                    };
                    if let Some(fields) = schema["fields"].as_array_mut() {
                        fields.retain(|f| f["name"].as_str() != Some(column.as_str()));
                    }
                    action["metaData"]["schemaString"] = Value::String(schema.to_string());
                    *line = action.to_string();
                    edited += 1;
                }
            })?;
        }
        if edited == 0 {
            return Ok(na(
                "the table's schema is only in a checkpoint, which this damage does not edit",
            ));
        }
        Ok(Applied::Done(format!("`{column}` removed from the schema")))
    }

    /// Moves every replayed commit's time back by the RPO objective and a day: the same rows,
    /// from a backup that looks old enough to lose more than the objective allows.
    fn old_snapshot(&self) -> Result<Applied, String> {
        let back = self.rpo.as_millis() as i64 + 86_400_000;
        let mut moved = 0;
        for (_, commit) in self.editable_commits()? {
            edit_lines(&commit, |lines| {
                for line in lines.iter_mut() {
                    let Ok(mut action) = serde_json::from_str::<Value>(line) else {
                        continue;
                    };
                    if let Some(t) = action["commitInfo"]["timestamp"].as_i64() {
                        action["commitInfo"]["timestamp"] = Value::from(t - back);
                        *line = action.to_string();
                        moved += 1;
                    }
                }
            })?;
        }
        if moved == 0 {
            return Ok(na("no replayed commit records its time"));
        }
        Ok(Applied::Done(format!(
            "{moved} commit time(s) moved back by {}",
            crate::primitives::duration::format_duration(std::time::Duration::from_millis(
                back as u64
            ))
        )))
    }
}

/// Cuts the file at `path` (of `size` bytes) to half its size.
pub(super) fn truncate(path: &Path, size: u64) -> Result<String, String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    file.set_len(size / 2).map_err(|e| e.to_string())?;
    Ok(format!("cut from {size} to {} bytes", size / 2))
}

/// Flips 16 bytes in the middle of the file at `path` (of `size` bytes); its size stays.
pub(super) fn flip(path: &Path, size: u64) -> Result<String, String> {
    let mut bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let start = (size as usize / 2).min(bytes.len().saturating_sub(16));
    let end = (start + 16).min(bytes.len());
    for b in &mut bytes[start..end] {
        *b ^= 0xa5;
    }
    std::fs::write(path, bytes).map_err(|e| e.to_string())?;
    Ok(format!("{} bytes flipped at offset {start}", end - start))
}

fn na(reason: &str) -> Applied {
    Applied::NotApplicable(reason.to_string())
}

/// Rewrites the lines of a commit file.
fn edit_lines(path: &Path, edit: impl FnOnce(&mut Vec<String>)) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))
}

/// How a column's values are changed.
#[derive(Debug, Clone, Copy)]
enum Edit {
    Null,
    Drift,
    String,
}

impl Edit {
    /// Whether a column of the Delta type `kind` can take the edit.
    fn fits(self, kind: &str) -> bool {
        match self {
            Edit::Null => true,
            Edit::Drift => {
                ["long", "integer", "short", "byte", "double", "float"].contains(&kind)
                    || kind.starts_with("decimal")
            }
            Edit::String => kind == "string",
        }
    }

    fn missing(self) -> &'static str {
        match self {
            Edit::Null => "the table has no data column",
            Edit::Drift => "the table has no numeric column",
            Edit::String => "the table has no string column",
        }
    }
}

/// Rewrites the Parquet file at `path` with `column` changed by `edit` in about one row in
/// fifty (at least one), chosen by `rng`. Returns the rows changed and the file's new size.
fn rewrite_parquet(
    path: &Path,
    column: &str,
    edit: Edit,
    rng: &mut StdRng,
) -> Result<(usize, u64), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .build()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut batches = Vec::new();
    let mut schema: Option<Arc<Schema>> = None;
    let mut changed = 0;
    for batch in reader {
        let batch = batch.map_err(|e| format!("{}: {e}", path.display()))?;
        schema.get_or_insert_with(|| batch.schema());
        let Ok(index) = batch.schema().index_of(column) else {
            batches.push(batch);
            continue;
        };
        let original = batch.column(index).clone();
        let mask: Vec<bool> = (0..batch.num_rows())
            .map(|i| {
                let pick = rng.random_range(0..50) == 0 || (changed == 0 && i == 0);
                pick && !original.is_null(i)
            })
            .collect();
        let picked = mask.iter().filter(|m| **m).count();
        if picked == 0 {
            batches.push(batch);
            continue;
        }
        let replaced = replacement(&original, edit)?;
        let mask = BooleanArray::from(mask);
        let new = zip::zip(&mask, &replaced, &original).map_err(|e| e.to_string())?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[index] = new;
        batches.push(RecordBatch::try_new(batch.schema(), columns).map_err(|e| e.to_string())?);
        changed += picked;
    }
    let schema = schema.ok_or_else(|| format!("{}: the file holds no rows", path.display()))?;
    let out = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer = ArrowWriter::try_new(out, schema, None).map_err(|e| e.to_string())?;
    for batch in &batches {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    writer.close().map_err(|e| e.to_string())?;
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    Ok((changed, size))
}

/// The values a changed row takes: null, the value plus one unit of its last digit, or a
/// string that was never there.
fn replacement(original: &ArrayRef, edit: Edit) -> Result<ArrayRef, String> {
    let len = original.len();
    match edit {
        Edit::Null => Ok(new_null_array(original.data_type(), len)),
        Edit::String => {
            let value = ScalarValue::Utf8(Some("restore-drill self-test".into()))
                .cast_to(original.data_type())
                .map_err(|e| e.to_string())?;
            value.to_array_of_size(len).map_err(|e| e.to_string())
        }
        Edit::Drift => {
            let one = match original.data_type() {
                DataType::Decimal128(p, s) => ScalarValue::Decimal128(Some(1), *p, *s),
                other => ScalarValue::Int8(Some(1))
                    .cast_to(other)
                    .map_err(|e| e.to_string())?,
            };
            let one = one.to_array_of_size(len).map_err(|e| e.to_string())?;
            let sum = numeric::add_wrapping(original, &one).map_err(|e| e.to_string())?;
            // A decimal sum widens its precision; the file keeps the column's type.
            cast(&sum, original.data_type()).map_err(|e| e.to_string())
        }
    }
}
