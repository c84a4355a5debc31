//! A job's schedule: a cron expression with a seconds field, read in an IANA time zone.
//!
//! Each next occurrence is computed from the zone's rules at that date, so a job at 02:30
//! Europe/Berlin runs at 02:30 local time on both sides of a daylight-saving change. On the
//! spring-forward day, when 02:30 does not exist, it runs at the first second after the gap
//! (03:00); on the fall-back day, when 02:30 happens twice, it runs once, at the first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// When a job runs. Cheap to clone: the parsed expression is shared, also between jobs with
/// the same expression (a parsed expression holds a few KiB of tables; ten thousand jobs on
/// the same schedule share one).
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron: Arc<Cron>,
    timezone: Tz,
}

/// The expressions parsed and still in use, by their text.
static PARSED: Mutex<Option<HashMap<String, Weak<Cron>>>> = Mutex::new(None);

/// `expression` parsed, shared with every schedule in use that has the same text.
fn shared(expression: &str) -> Result<Arc<Cron>, croner::errors::CronError> {
    let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    let parsed = parsed.get_or_insert_with(HashMap::new);
    if let Some(cron) = parsed.get(expression).and_then(Weak::upgrade) {
        return Ok(cron);
    }
    let cron = Arc::new(
        CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(expression)?,
    );
    // Expressions no schedule uses any more go, now and then.
    if parsed.len() % 1024 == 1023 {
        parsed.retain(|_, cron| cron.strong_count() > 0);
    }
    parsed.insert(expression.to_string(), Arc::downgrade(&cron));
    Ok(cron)
}

impl Schedule {
    /// Parses `expression` (six fields: second minute hour day-of-month month day-of-week) to be
    /// read in `timezone` (an IANA name such as `Europe/Berlin`, or `UTC`).
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let timezone: Tz = timezone
            .parse()
            .map_err(|_| ScheduleError::TimeZone(timezone.to_string()))?;
        let fields = expression.split_whitespace().count();
        if fields != 6 {
            return Err(ScheduleError::Expression {
                expression: expression.to_string(),
                reason: format!(
                    "it has {fields} field{}; a schedule has 6: second minute hour day-of-month month day-of-week, e.g. \"0 30 2 * * *\" for 02:30:00 every day",
                    if fields == 1 { "" } else { "s" }
                ),
            });
        }
        let cron = shared(expression).map_err(|e| ScheduleError::Expression {
            expression: expression.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            expression: expression.to_string(),
            cron,
            timezone,
        })
    }

    /// The cron expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first occurrence strictly after `after`, or `None` if there is none (an expression
    /// that names a date that never comes, such as 30 February).
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

impl Schedule {
    /// The longest time between two consecutive occurrences after `from`, looking ahead up to
    /// 1,000 occurrences or 400 days: how long a job may go without a drill by design (a
    /// weekday schedule has its weekend; a daily one its 25-hour day when clocks fall back).
    pub(crate) fn longest_interval(&self, from: DateTime<Utc>) -> Option<std::time::Duration> {
        let horizon = from + chrono::Duration::days(400);
        let mut previous = self.next_after(from)?;
        let mut longest = None;
        for _ in 0..1000 {
            let Some(next) = self.next_after(previous) else {
                break;
            };
            let gap = (next - previous).to_std().ok()?;
            longest = Some(longest.map_or(gap, |l: std::time::Duration| l.max(gap)));
            if next > horizon {
                break;
            }
            previous = next;
        }
        longest
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "unknown time zone `{0}`; use an IANA name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\""
    )]
    TimeZone(String),
    #[error("`{expression}` is not a cron expression: {reason}")]
    Expression { expression: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn daily_job_keeps_its_local_time_across_both_changes() {
        let s = Schedule::parse("0 30 2 * * *", "Europe/Berlin").unwrap();
        let mut t = utc("2026-03-27T12:00:00Z");
        let mut fired = Vec::new();
        for _ in 0..4 {
            t = s.next_after(t).unwrap();
            fired.push(t);
        }
        assert_eq!(
            fired,
            vec![
                utc("2026-03-28T01:30:00Z"), // 02:30 CET
                utc("2026-03-29T01:00:00Z"), // 02:30 does not exist: 03:00 CEST
                utc("2026-03-30T00:30:00Z"), // 02:30 CEST
                utc("2026-03-31T00:30:00Z"),
            ]
        );
        let mut t = utc("2026-10-24T12:00:00Z");
        let mut fired = Vec::new();
        for _ in 0..3 {
            t = s.next_after(t).unwrap();
            fired.push(t);
        }
        assert_eq!(
            fired,
            vec![
                utc("2026-10-25T00:30:00Z"), // the first 02:30 (CEST), once
                utc("2026-10-26T01:30:00Z"), // 02:30 CET
                utc("2026-10-27T01:30:00Z"),
            ]
        );
    }

    #[test]
    fn seconds_field_is_required_and_errors_say_how_to_write_one() {
        let e = Schedule::parse("30 2 * * *", "UTC").unwrap_err();
        assert!(e.to_string().contains("has 5 fields"), "{e}");
        assert!(e.to_string().contains("\"0 30 2 * * *\""), "{e}");
        let e = Schedule::parse("0 61 2 * * *", "UTC").unwrap_err();
        assert!(
            e.to_string()
                .contains("`0 61 2 * * *` is not a cron expression"),
            "{e}"
        );
        let e = Schedule::parse("0 30 2 * * *", "Europe/Berln").unwrap_err();
        assert_eq!(e, ScheduleError::TimeZone("Europe/Berln".into()));
    }

    #[test]
    fn longest_interval_sees_weekends_and_long_days() {
        let start = utc("2026-10-19T12:00:00Z"); // a Monday
        let weekdays = Schedule::parse("0 30 2 * * MON-FRI", "UTC").unwrap();
        assert_eq!(
            weekdays.longest_interval(start),
            Some(std::time::Duration::from_secs(3 * 86_400))
        );
        let daily = Schedule::parse("0 30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            daily.longest_interval(start),
            Some(std::time::Duration::from_secs(25 * 3600))
        );
        let every_five = Schedule::parse("*/5 * * * * *", "UTC").unwrap();
        assert_eq!(
            every_five.longest_interval(start),
            Some(std::time::Duration::from_secs(5))
        );
    }

    #[test]
    fn every_few_seconds() {
        let s = Schedule::parse("*/5 * * * * *", "UTC").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 3).unwrap();
        assert_eq!(
            s.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap())
        );
        assert_eq!(
            s.next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap()),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap())
        );
    }
}
