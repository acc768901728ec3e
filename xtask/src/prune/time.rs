//! Durations and times: `--older-than`, `--keep`, ages as printed, and the
//! RFC 3339 times of image configs and cache layers.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};

const DURATION_HINT: &str = "expected a whole number followed by a unit s, m, h, d or w, \
     optionally combined, e.g. 30m, 12h, 7d, 2w or 1d12h";

pub(super) fn now_seconds() -> Result<i64> {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970; fix the clock")?;
    i64::try_from(elapsed.as_secs())
        .context("the system clock is implausibly far in the future; fix the clock")
}

/// `30m`, `12h`, `7d`, `2w`, `90s`, or combinations such as `1d12h`, in seconds.
pub fn parse_duration(text: &str) -> Result<u64> {
    let malformed =
        || anyhow::anyhow!("malformed duration {text:?} for --older-than: {DURATION_HINT}");
    if text.is_empty() {
        return Err(malformed());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(malformed)?,
            );
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(malformed()),
        };
        let value = number.take().ok_or_else(malformed)?;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(malformed)?;
    }
    if number.is_some() {
        return Err(malformed());
    }
    // Keep the arithmetic with epoch seconds (i64) exact.
    if total > i64::MAX as u64 / 2 {
        return Err(malformed());
    }
    Ok(total)
}

pub fn parse_keep(text: &str) -> Result<usize> {
    text.parse::<usize>().map_err(|_| {
        anyhow::anyhow!("malformed --keep {text:?}: expected a whole number of ci- images to keep per variant, e.g. --keep 3")
    })
}

/// `2155d3h`, `5h12m`, `42s`: the two largest units.
pub fn format_age(seconds: i64) -> String {
    if seconds < 0 {
        return format!("-{}", format_age(-seconds));
    }
    let units = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (name, size) in units {
        if rest >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            break;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.concat()
}

/// Parses an RFC 3339 time such as `2024-05-01T12:34:56.123Z` or
/// `2024-05-01T14:34:56+02:00` into seconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let minutes = number(i + 1..i + 3)? * 60 + number(i + 4..i + 6)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::fixtures::DAY;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("12h").unwrap(), 43_200);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("2w").unwrap(), 1_209_600);
        assert_eq!(parse_duration("1d12h").unwrap(), 129_600);
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("0d").unwrap(), 0);
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "7 d",
            "-7d",
            "7D",
            "1.5d",
            "d7",
            "7dd",
            "99999999999999999999d",
            "1y",
        ] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "malformed duration {bad:?} for --older-than: expected"
                )),
                "{err}"
            );
            assert!(
                err.contains("30m, 12h, 7d, 2w") && !err.contains('\n'),
                "{err}"
            );
        }
        assert_eq!(parse_keep("3").unwrap(), 3);
        assert!(parse_keep("-1")
            .unwrap_err()
            .to_string()
            .contains("--keep \"-1\""));
        assert!(parse_keep("x").is_err());
    }

    #[test]
    fn ages_format() {
        assert_eq!(format_age(0), "0s");
        assert_eq!(format_age(42), "42s");
        assert_eq!(format_age(3600 + 120 + 5), "1h2m");
        assert_eq!(format_age(30 * DAY), "30d");
        assert_eq!(format_age(2155 * DAY + 3 * 3600 + 7), "2155d3h");
        assert_eq!(format_age(-90), "-1m30s");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2020-01-01T00:00:00Z"), Some(1_577_836_800));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.123456789Z"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T14:00:00+02:00"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T11:30:00-00:30"),
            Some(1_709_208_000)
        );
        for bad in [
            "",
            "2024-02-29",
            "2024-02-29T12:00:00",
            "2024-13-01T00:00:00Z",
            "2024-02-29T12:00:00.Z",
            "yesterday",
            "2024-02-29T12:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
