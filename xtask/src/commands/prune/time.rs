//! Durations and ages: `--older-than`, `--keep`, and ages as printed (the
//! RFC 3339 times they are computed from are `model::time`'s).

use anyhow::Result;

const DURATION_HINT: &str = "expected a whole number followed by a unit s, m, h, d or w, \
     optionally combined from the largest unit down, e.g. 30m, 12h, 7d, 2w or 1d12h";

/// `30m`, `12h`, `7d`, `2w`, `90s`, or combinations such as `1d12h`, in seconds.
pub fn parse_duration(text: &str) -> Result<u64> {
    let malformed =
        || anyhow::anyhow!("malformed duration {text:?} for --older-than: {DURATION_HINT}");
    // jiff reads more (`7 days`, `1.5h`, `30ms`, `P7D`, `-7d`, `1y`); only
    // whole numbers with one-letter units are taken.
    let strict = !text.is_empty()
        && text
            .split_inclusive(|c: char| !c.is_ascii_digit())
            .all(|item| {
                item.strip_suffix(['s', 'm', 'h', 'd', 'w'])
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            });
    if !strict {
        return Err(malformed());
    }
    // Days and weeks of 24 hours; jiff bounds each unit (to some 20,000
    // years), which keeps the arithmetic with epoch seconds (i64) exact.
    let span: jiff::Span = text.parse().map_err(|_| malformed())?;
    let duration = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| malformed())?;
    u64::try_from(duration.as_secs()).map_err(|_| malformed())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::prune::fixtures::DAY;

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
            "30ms",
            "7days",
            "1.5h",
            "P7D",
            "12h1d",
            "1d1d",
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
}
