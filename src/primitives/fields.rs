//! Reading TOML tables field by field, with the position of every value, so that one pass
//! reports every problem in a file (unknown keys, wrong types, missing fields) at once.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::duration::parse_duration;

/// A place in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A value read from a file together with where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub at: Position,
}

impl<T> Located<T> {
    pub fn new(value: T, at: Position) -> Self {
        Self { value, at }
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// One problem in a configuration or suite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub at: Position,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.at.line,
            self.at.column,
            self.message
        )
    }
}

/// Collects the problems of one file; knows the file's text to turn byte offsets into positions.
pub struct Problems<'t> {
    file: PathBuf,
    text: &'t str,
    /// The byte offset at which each line starts, so a position is found in logarithmic time.
    line_starts: Vec<usize>,
    found: Vec<Problem>,
}

impl<'t> Problems<'t> {
    pub fn new(file: &Path, text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file: file.to_path_buf(),
            text,
            line_starts,
            found: Vec::new(),
        }
    }

    /// The 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        Position { line, column }
    }

    pub(crate) fn position_of(&self, span: Option<Range<usize>>) -> Position {
        span.map(|s| self.position(s.start))
            .unwrap_or(Position { line: 1, column: 1 })
    }

    pub fn report(&mut self, at: Position, message: impl Into<String>) {
        self.found.push(Problem {
            file: self.file.clone(),
            at,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub(crate) fn into_vec(self) -> Vec<Problem> {
        self.found
    }
}

/// The fields of one TOML table (or inline table), read one key at a time. `finish` reports
/// every key that was never asked for as unknown.
pub struct Fields<'a> {
    table: &'a dyn TableLike,
    at: Position,
    context: String,
    asked: Vec<&'static str>,
    /// Keys are free (e.g. column names): none is unknown.
    free: bool,
}

impl<'a> Fields<'a> {
    pub fn new(table: &'a dyn TableLike, at: Position, context: impl Into<String>) -> Self {
        Self {
            table,
            at,
            context: context.into(),
            asked: Vec::new(),
            free: false,
        }
    }

    /// Where the table itself stands.
    pub fn at(&self) -> Position {
        self.at
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    /// Names the table in later messages (e.g. once its `id` or `name` is known).
    pub(crate) fn set_context(&mut self, context: impl Into<String>) {
        self.context = context.into();
    }

    fn get(&mut self, key: &'static str, p: &Problems) -> Option<(&'a Item, Position)> {
        self.asked.push(key);
        let (k, item) = self.table.get_key_value(key)?;
        let at = p.position_of(item.span().or_else(|| k.span()));
        Some((item, at))
    }

    fn wrong_type(&self, p: &mut Problems, key: &str, at: Position, want: &str, item: &Item) {
        p.report(
            at,
            format!(
                "{}: `{key}` must be {want}, found {}",
                self.context,
                item.type_name()
            ),
        );
    }

    fn missing(&self, p: &mut Problems, key: &str, want: &str) {
        p.report(
            self.at,
            format!("{}: missing `{key}` ({want})", self.context),
        );
    }

    pub fn string(&mut self, key: &'static str, p: &mut Problems) -> Option<Located<String>> {
        let (item, at) = self.get(key, p)?;
        match item.as_str() {
            Some(s) => Some(Located::new(s.to_string(), at)),
            None => {
                self.wrong_type(p, key, at, "a string", item);
                None
            }
        }
    }

    /// An optional duration such as `"26h"`: `Some(None)` when absent, `None` when present but
    /// invalid (reported).
    pub fn duration(
        &mut self,
        key: &'static str,
        p: &mut Problems,
    ) -> Option<Option<Located<Duration>>> {
        match self.string(key, p) {
            None => Some(None),
            Some(text) => match parse_duration(&text.value) {
                Ok(d) => Some(Some(Located::new(d, text.at))),
                Err(e) => {
                    p.report(text.at, format!("{}: `{key}`: {e}", self.context()));
                    None
                }
            },
        }
    }

    pub(crate) fn required_string(
        &mut self,
        key: &'static str,
        want: &str,
        p: &mut Problems,
    ) -> Option<Located<String>> {
        let present = self.table.contains_key(key);
        let value = self.string(key, p);
        if !present {
            self.missing(p, key, want);
        }
        value
    }

    pub(crate) fn boolean(&mut self, key: &'static str, p: &mut Problems) -> Option<Located<bool>> {
        let (item, at) = self.get(key, p)?;
        match item.as_bool() {
            Some(b) => Some(Located::new(b, at)),
            None => {
                self.wrong_type(p, key, at, "true or false", item);
                None
            }
        }
    }

    pub fn integer(&mut self, key: &'static str, p: &mut Problems) -> Option<Located<i64>> {
        let (item, at) = self.get(key, p)?;
        match item.as_integer() {
            Some(i) => Some(Located::new(i, at)),
            None => {
                self.wrong_type(p, key, at, "an integer", item);
                None
            }
        }
    }

    /// An integer or a float, as f64.
    pub fn number(&mut self, key: &'static str, p: &mut Problems) -> Option<Located<f64>> {
        let (item, at) = self.get(key, p)?;
        match (item.as_integer(), item.as_float()) {
            (Some(i), _) => Some(Located::new(i as f64, at)),
            (_, Some(f)) => Some(Located::new(f, at)),
            _ => {
                self.wrong_type(p, key, at, "a number", item);
                None
            }
        }
    }

    /// An array of strings.
    pub(crate) fn strings(
        &mut self,
        key: &'static str,
        p: &mut Problems,
    ) -> Option<Located<Vec<String>>> {
        let (item, at) = self.get(key, p)?;
        let Some(array) = item.as_array() else {
            self.wrong_type(p, key, at, "an array of strings", item);
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        for value in array.iter() {
            match value {
                Value::String(s) => out.push(s.value().clone()),
                other => {
                    let at = p.position_of(other.span());
                    p.report(
                        at,
                        format!(
                            "{}: `{key}` must hold only strings, found {}",
                            self.context,
                            other.type_name()
                        ),
                    );
                    return None;
                }
            }
        }
        Some(Located::new(out, at))
    }

    /// A table whose keys are free (e.g. column names) and whose values are numbers.
    pub(crate) fn number_map(
        &mut self,
        key: &'static str,
        p: &mut Problems,
    ) -> Option<Located<std::collections::BTreeMap<String, f64>>> {
        let (item, at) = self.get(key, p)?;
        let Some(table) = item.as_table_like() else {
            self.wrong_type(
                p,
                key,
                at,
                "a table of numbers, e.g. { amount = 0.01 }",
                item,
            );
            return None;
        };
        let mut out = std::collections::BTreeMap::new();
        for (name, value) in table.iter() {
            match (value.as_integer(), value.as_float()) {
                (Some(i), _) => {
                    out.insert(name.to_string(), i as f64);
                }
                (_, Some(f)) => {
                    out.insert(name.to_string(), f);
                }
                _ => {
                    let at = p.position_of(value.span());
                    p.report(
                        at,
                        format!(
                            "{}: `{key}.{name}` must be a number, found {}",
                            self.context,
                            value.type_name()
                        ),
                    );
                    return None;
                }
            }
        }
        Some(Located::new(out, at))
    }

    /// A nested table or inline table.
    pub fn table(
        &mut self,
        key: &'static str,
        context: impl Into<String>,
        p: &mut Problems,
    ) -> Option<Fields<'a>> {
        let (item, at) = self.get(key, p)?;
        match item.as_table_like() {
            Some(t) => Some(Fields::new(t, at, context)),
            None => {
                self.wrong_type(p, key, at, "a table", item);
                None
            }
        }
    }

    pub(crate) fn required_table(
        &mut self,
        key: &'static str,
        want: &str,
        context: impl Into<String>,
        p: &mut Problems,
    ) -> Option<Fields<'a>> {
        let present = self.table.contains_key(key);
        let value = self.table(key, context, p);
        if !present {
            self.missing(p, key, want);
        }
        value
    }

    /// The raw item of a key, for values whose shape the caller checks (arrays of tables).
    pub fn item(&mut self, key: &'static str, p: &Problems) -> Option<(&'a Item, Position)> {
        self.get(key, p)
    }

    /// Every key of a table whose keys are free (e.g. column names); none is then unknown.
    pub fn keys(&mut self) -> Vec<String> {
        self.free = true;
        self.table.iter().map(|(k, _)| k.to_string()).collect()
    }

    /// A string under a free key (see `keys`).
    pub(crate) fn string_key(&mut self, key: &str, p: &mut Problems) -> Option<Located<String>> {
        let (k, item) = self.table.get_key_value(key)?;
        let at = p.position_of(item.span().or_else(|| k.span()));
        match item.as_str() {
            Some(s) => Some(Located::new(s.to_string(), at)),
            None => {
                self.wrong_type(p, key, at, "a string", item);
                None
            }
        }
    }

    /// A table under a free key (see `keys`).
    pub(crate) fn table_key(
        &mut self,
        key: &str,
        context: impl Into<String>,
        p: &mut Problems,
    ) -> Option<Fields<'a>> {
        let (k, item) = self.table.get_key_value(key)?;
        let at = p.position_of(item.span().or_else(|| k.span()));
        match item.as_table_like() {
            Some(t) => Some(Fields::new(t, at, context)),
            None => {
                self.wrong_type(p, key, at, "a table", item);
                None
            }
        }
    }

    /// Reports every key that no reader asked for.
    pub fn finish(self, p: &mut Problems) {
        if self.free {
            return;
        }
        for (key, item) in self.table.iter() {
            if self.asked.contains(&key) {
                continue;
            }
            let at = p.position_of(self.table.key(key).and_then(|k| k.span()).or(item.span()));
            let hint = closest(key, &self.asked)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_else(|| {
                    let mut known = self.asked.clone();
                    known.sort_unstable();
                    known.dedup();
                    format!("; known keys: {}", known.join(", "))
                });
            p.report(at, format!("{}: unknown key `{key}`{hint}", self.context));
        }
    }
}

/// The known name nearest to `key`, if it is a plausible typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Parses TOML text, or returns the syntax error as a problem with its position.
pub(crate) fn parse_document<'t>(
    problems: &mut Problems<'t>,
    text: &'t str,
) -> Option<toml_edit::ImDocument<&'t str>> {
    match toml_edit::ImDocument::parse(text) {
        Ok(doc) => Some(doc),
        Err(e) => {
            let at = problems.position_of(e.span());
            let message = e.message().trim().to_string();
            problems.report(at, format!("invalid TOML: {message}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggests_the_known_key() {
        assert_eq!(closest("sandobx", &["sandbox", "source"]), Some("sandbox"));
        assert_eq!(closest("zzzzzz", &["sandbox", "source"]), None);
    }

    #[test]
    fn positions_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        let p = Problems::new(Path::new("x.toml"), text);
        assert_eq!(p.position(0), Position { line: 1, column: 1 });
        assert_eq!(p.position(7), Position { line: 2, column: 2 });
    }
}
