//! Durations as people write them in configuration: `90s`, `45m`, `26h`, `7d`, `1h30m`.

use std::time::Duration;

/// The longest duration accepted: 100 years (36,525 days). Longer ones would overflow the
/// time arithmetic of schedules and retention, and mean nothing for backups.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(36_525 * 86_400);

/// Parses a duration made of one or more `<integer><unit>` parts, units `s`, `m`, `h`, `d`, `w`,
/// of at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. `26h`, `90m` or `1h30m`".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "`{text}` is not a duration: unknown unit `{c}` (use s, m, h, d or w, e.g. `26h`)"
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!(
                "`{text}` is not a duration: a number must come before `{c}` (e.g. `26h`)"
            ));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a duration: `{digits}` is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}` is not a duration: too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "`{text}` is not a duration: `{digits}` has no unit (write e.g. `{digits}s` or `{digits}m`)"
        ));
    }
    let total = Duration::from_secs(total);
    if total > MAX_DURATION {
        return Err(format!(
            "`{text}` is longer than 100 years (36525d), the longest duration accepted"
        ));
    }
    Ok(total)
}

/// Writes a duration the way `parse_duration` reads it, largest units first.
pub(crate) fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// A Unix time in (fractional) seconds as a UTC time, when it is one.
pub fn seconds_to_time(seconds: f64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis((seconds * 1000.0).round() as i64)
}

/// Seconds as people read them: `0.42s` under a minute, else `1h2m3s`.
pub fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.2}s")
    } else {
        format_duration(Duration::from_secs_f64(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_single_and_compound_durations() {
        assert_eq!(
            parse_duration("26h").unwrap(),
            Duration::from_secs(26 * 3600)
        );
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn rejects_what_does_not_parse_with_a_hint() {
        assert!(parse_duration("26").unwrap_err().contains("has no unit"));
        assert!(
            parse_duration("26x")
                .unwrap_err()
                .contains("unknown unit `x`")
        );
        assert!(
            parse_duration("h")
                .unwrap_err()
                .contains("number must come before")
        );
        assert!(parse_duration("").is_err());
        assert!(
            parse_duration("100000000w")
                .unwrap_err()
                .contains("longer than 100 years")
        );
        assert!(parse_duration("99999999999999999999s").is_err());
        assert_eq!(parse_duration("36525d").unwrap(), MAX_DURATION);
    }

    #[test]
    fn formats_back_to_the_same_duration() {
        for s in ["26h", "1h30m", "2d", "45s", "1d2h3m4s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
