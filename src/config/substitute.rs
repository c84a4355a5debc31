//! `${VAR}` substitution: a pure function of the text and a lookup.

/// A `${NAME}` that the lookup did not know, with its byte offset in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnsetVariable {
    pub name: String,
    pub offset: usize,
}

/// Replaces every `${NAME}` with `lookup(NAME)`, and `${NAME:-default}` with the default text
/// when the variable is unset; `$${` stands for a literal `${`. TOML comments are left as they
/// are. Returns the new text and every variable that had no value and no default.
pub(crate) fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> (String, Vec<UnsetVariable>) {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    let comments = comment_ranges(text);
    let in_comment = |at: usize| comments.iter().any(|r| r.contains(&at));
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if in_comment(consumed + i) {
            out.push('$');
            rest = &tail[1..];
            consumed += i + 1;
            continue;
        }
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            consumed += i + 3;
            continue;
        }
        if let Some(body) = tail.strip_prefix("${")
            && let Some(end) = body.find('}')
        {
            let (name, default) = match body[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&body[..end], None),
            };
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                match (lookup(name), default) {
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => unset.push(UnsetVariable {
                        name: name.to_string(),
                        offset: consumed + i,
                    }),
                }
                rest = &body[end + 1..];
                consumed += i + 2 + end + 1;
                continue;
            }
        }
        out.push('$');
        rest = &tail[1..];
        consumed += i + 1;
    }
    out.push_str(rest);
    (out, unset)
}

/// The byte ranges of TOML comments: from a `#` outside any string to the end of its line.
fn comment_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    const DELIMITERS: [&[u8]; 4] = [b"\"\"\"", b"'''", b"\"", b"'"];
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut i = 0;
    // The closing delimiter of the string we are in, if any.
    let mut string: Option<&[u8]> = None;
    while i < bytes.len() {
        let rest = &bytes[i..];
        match string {
            Some(close) => {
                if close[0] == b'"' && rest[0] == b'\\' {
                    i += 2;
                } else if rest.starts_with(close) {
                    i += close.len();
                    string = None;
                } else {
                    i += 1;
                }
            }
            None if rest[0] == b'#' => {
                let end = rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(bytes.len(), |n| i + n);
                ranges.push(i..end);
                i = end;
            }
            None => match DELIMITERS.iter().find(|d| rest.starts_with(d)) {
                Some(open) => {
                    string = Some(open);
                    i += open.len();
                }
                None => i += 1,
            },
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "ROOT").then(|| "/data".to_string())
    }

    #[test]
    fn a_default_stands_in_for_an_unset_variable() {
        let (text, unset) = substitute(
            "a = \"${SET:-x}\"\nb = \"${UNSET:-}\"\nc = \"${UNSET:-postgres://h/db}\"",
            |name| (name == "SET").then(|| "value".to_string()),
        );
        assert!(unset.is_empty(), "{unset:?}");
        assert_eq!(text, "a = \"value\"\nb = \"\"\nc = \"postgres://h/db\"");
    }

    #[test]
    fn replaces_known_variables_and_reports_unknown_ones() {
        let (text, unset) = substitute("a = \"${ROOT}/x\"\nb = \"${NOPE}\"", env);
        assert_eq!(text, "a = \"/data/x\"\nb = \"\"");
        assert_eq!(
            unset,
            vec![UnsetVariable {
                name: "NOPE".into(),
                offset: 21
            }]
        );
    }

    #[test]
    fn leaves_comments_alone() {
        let (text, unset) = substitute("# use ${NOPE} here\na = \"#${ROOT}\" # ${NOPE}\n", env);
        assert_eq!(text, "# use ${NOPE} here\na = \"#/data\" # ${NOPE}\n");
        assert!(unset.is_empty(), "{unset:?}");
    }

    #[test]
    fn keeps_escapes_and_lone_dollars() {
        let (text, unset) = substitute("p = \"$${ROOT} costs $5\"", env);
        assert_eq!(text, "p = \"${ROOT} costs $5\"");
        assert!(unset.is_empty());
    }
}
