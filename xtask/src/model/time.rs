//! Times as registries and image configs write them: RFC 3339, and seconds
//! since the Unix epoch. Format and parse side by side (the grammar and the
//! calendar are `jiff`'s), no clock read but in [`now_seconds`].

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};

/// The clock, in seconds since the Unix epoch.
pub fn now_seconds() -> Result<i64> {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970; fix the clock")?;
    i64::try_from(elapsed.as_secs())
        .context("the system clock is implausibly far in the future; fix the clock")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (the commit time; no clock is read).
pub fn format_rfc3339(epoch: i64) -> Result<String> {
    let time = jiff::Timestamp::from_second(epoch).with_context(|| {
        format!("{epoch} seconds since 1970 is outside the years -9999 to 9999")
    })?;
    Ok(time.to_string())
}

/// Parses an RFC 3339 time such as `2024-05-01T12:34:56.123Z` or
/// `2024-05-01T14:34:56+02:00` into seconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let time: jiff::Timestamp = text.parse().ok()?;
    Some(time.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "2024-02-30T00:00:00Z",
            "2024-02-29T12:00:00.Z",
            "yesterday",
            "2024-02-29T12:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn format_and_parse_round_trip() {
        for epoch in [
            0,
            1_577_836_800,
            1_709_208_000,
            1_700_000_000,
            4_102_444_799,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(epoch).unwrap()), Some(epoch));
        }
        assert_eq!(
            format_rfc3339(1_709_208_000).unwrap(),
            "2024-02-29T12:00:00Z"
        );
    }
}
