//! Snapshot name patterns: `financial_transactions_{date}`, `app_{date}.dump` and friends.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The placeholder of a pattern: where the snapshot's time stands in its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{date}`: `YYYY-MM-DD`, taken as midnight UTC.
    Date,
    /// `{datetime}`: `YYYY-MM-DDTHHMMSSZ`.
    DateTime,
}

impl Placeholder {
    fn token(self) -> &'static str {
        match self {
            Placeholder::Date => "{date}",
            Placeholder::DateTime => "{datetime}",
        }
    }

    fn width(self) -> usize {
        match self {
            Placeholder::Date => 10,
            Placeholder::DateTime => 18,
        }
    }

    fn read(self, text: &str) -> Option<DateTime<Utc>> {
        match self {
            Placeholder::Date => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| Utc.from_utc_datetime(&t)),
            Placeholder::DateTime => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H%M%SZ")
                .ok()
                .map(|t| Utc.from_utc_datetime(&t)),
        }
    }
}

/// A folder-name pattern with exactly one time placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPattern {
    prefix: String,
    placeholder: Placeholder,
    suffix: String,
    text: String,
}

impl SnapshotPattern {
    /// Reads a pattern; a trailing `/` is allowed and ignored.
    pub fn parse(text: &str) -> Result<SnapshotPattern, String> {
        let trimmed = text.trim_end_matches('/');
        if trimmed.contains('/') {
            return Err(format!(
                "pattern `{text}` names a folder path; it must be one folder name (put the parent folders in `location`)"
            ));
        }
        let found: Vec<(usize, Placeholder)> = [Placeholder::Date, Placeholder::DateTime]
            .into_iter()
            .flat_map(|ph| trimmed.match_indices(ph.token()).map(move |(i, _)| (i, ph)))
            .collect();
        let [(at, placeholder)] = found.as_slice() else {
            return Err(format!(
                "pattern `{text}` must contain exactly one `{{date}}` or `{{datetime}}`, e.g. `orders_{{date}}`"
            ));
        };
        Ok(SnapshotPattern {
            prefix: trimmed[..*at].to_string(),
            placeholder: *placeholder,
            suffix: trimmed[at + placeholder.token().len()..].to_string(),
            text: text.to_string(),
        })
    }

    /// The time in a folder name, if the name matches the pattern.
    pub fn matches(&self, name: &str) -> Option<DateTime<Utc>> {
        let name = name.trim_end_matches('/');
        let middle = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        if middle.len() != self.placeholder.width() {
            return None;
        }
        self.placeholder.read(middle)
    }

    /// The folder name of a snapshot taken at `time`.
    #[cfg(test)]
    fn name_for(&self, time: DateTime<Utc>) -> String {
        let middle = match self.placeholder {
            Placeholder::Date => time.format("%Y-%m-%d").to_string(),
            Placeholder::DateTime => time.format("%Y-%m-%dT%H%M%SZ").to_string(),
        };
        format!("{}{middle}{}", self.prefix, self.suffix)
    }
}

impl std::fmt::Display for SnapshotPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dates_and_datetimes() {
        let p = SnapshotPattern::parse("orders_{date}/").unwrap();
        assert_eq!(
            p.matches("orders_2026-11-28").unwrap().to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
        assert_eq!(p.matches("orders_2026-13-28"), None);
        assert_eq!(p.matches("customers_2026-11-28"), None);
        assert_eq!(p.matches("orders_2026-11-28_old"), None);

        let p = SnapshotPattern::parse("{datetime}-orders").unwrap();
        assert_eq!(
            p.matches("2026-11-28T023000Z-orders").unwrap().to_rfc3339(),
            "2026-11-28T02:30:00+00:00"
        );
        let t = p.matches("2026-11-28T023000Z-orders").unwrap();
        assert_eq!(p.name_for(t), "2026-11-28T023000Z-orders");
    }

    #[test]
    fn needs_exactly_one_placeholder() {
        assert!(SnapshotPattern::parse("orders").is_err());
        assert!(SnapshotPattern::parse("{date}_{date}").is_err());
        assert!(SnapshotPattern::parse("daily/orders_{date}").is_err());
    }
}
