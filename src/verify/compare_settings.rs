//! A job's `compare` table: the keyed sample diff with the source.

use super::sample::{CompareSpec, Fallback, SampleSize};
use crate::primitives::fields::{Fields, Problems};

pub fn read(mut c: Fields, p: &mut Problems) -> Option<CompareSpec> {
    let key = c.strings("key", p);
    let fraction = c.number("sample_fraction", p);
    let rows = c.integer("sample_rows", p);
    let fallback = c.string("fallback", p);
    let tolerance = c.number_map("tolerance", p);
    let table = c.string("table", p).map(|t| t.value);
    let as_of = c.string("as_of", p).map(|t| t.value);
    let mut ok = true;
    let key = match key {
        Some(k) if !k.value.is_empty() => Some(k.value),
        Some(k) => {
            p.report(
                k.at,
                format!("{}: `key` is empty; name the key column(s)", c.context()),
            );
            None
        }
        None => {
            p.report(
                c.at(),
                format!(
                    "{}: missing `key` (the column(s) that identify a row)",
                    c.context()
                ),
            );
            None
        }
    };
    let sample = match (fraction, rows) {
        (Some(f), None) if f.value > 0.0 && f.value <= 1.0 => Some(SampleSize::Fraction(f.value)),
        (Some(f), None) => {
            p.report(
                f.at,
                format!(
                    "{}: `sample_fraction` must be above 0 and at most 1, found {}",
                    c.context(),
                    f.value
                ),
            );
            None
        }
        (None, Some(r)) if r.value >= 1 => Some(SampleSize::Rows(r.value as u64)),
        (None, Some(r)) => {
            p.report(
                r.at,
                format!(
                    "{}: `sample_rows` must be at least 1, found {}",
                    c.context(),
                    r.value
                ),
            );
            None
        }
        (Some(_), Some(r)) => {
            p.report(
                r.at,
                format!(
                    "{}: give `sample_fraction` or `sample_rows`, not both",
                    c.context()
                ),
            );
            None
        }
        (None, None) => {
            p.report(
                c.at(),
                format!(
                    "{}: missing `sample_fraction` (e.g. 0.01) or `sample_rows` (e.g. 10000)",
                    c.context()
                ),
            );
            None
        }
    };
    let fallback = match fallback {
        None => Some(Fallback::None),
        Some(f) => match f.value.as_str() {
            "none" => Some(Fallback::None),
            "append_only" => Some(Fallback::AppendOnly),
            other => {
                p.report(
                    f.at,
                    format!(
                        "{}: fallback `{other}` is unknown; use \"none\" or \"append_only\"",
                        c.context()
                    ),
                );
                None
            }
        },
    };
    let tolerance = tolerance.map(|t| t.value).unwrap_or_default();
    for (column, t) in &tolerance {
        if *t < 0.0 {
            ok = false;
            p.report(
                c.at(),
                format!("{}: tolerance of `{column}` is negative", c.context()),
            );
        }
    }
    c.finish(p);
    if !ok {
        return None;
    }
    Some(CompareSpec {
        key: key?,
        sample: sample?,
        fallback: fallback?,
        tolerance,
        table,
        as_of,
    })
}
