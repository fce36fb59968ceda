//! Parsing and validating history query parameters: instants and steps.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::Uri;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// The query string's parameters; `None` if it is not `application/x-www-form-urlencoded`.
pub(crate) fn query_params(uri: &Uri) -> Option<HashMap<String, String>> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .ok()
        .map(|Query(params)| params)
}

/// An RFC 3339 instant (`2026-11-26T14:00:00Z`, `2026-11-26T16:00:00+02:00`). A `+` sent
/// unencoded in a query string arrives as a space; it is read back as `+`.
pub(crate) fn parse_instant(name: &str, raw: &str) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(raw).or_else(|error| match raw.rsplit_once(' ') {
        Some((head, offset)) if head.contains('T') => {
            DateTime::parse_from_rfc3339(&format!("{head}+{offset}"))
        }
        _ => Err(error),
    });
    parsed.map(|at| at.with_timezone(&Utc)).map_err(|error| {
        format!("{name}={raw:?} is not an RFC 3339 instant such as 2026-11-26T14:00:00Z ({error})")
    })
}

/// How instants are written in answers: UTC, `Z`, only the fraction digits needed.
pub(crate) fn format_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A step: `<n>s`, `<n>m`, `<n>h`, `<n>d` or plain seconds; positive.
pub(crate) fn parse_step(raw: &str) -> Result<TimeDelta, String> {
    let bad = || {
        format!(
            "step={raw:?} is not a duration: use seconds or <n>s, <n>m, <n>h, <n>d (e.g. 15m, 1h, 1d)"
        )
    };
    let (digits, unit) = match raw.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (raw.get(..i).unwrap_or_default(), c),
        _ => (raw, 's'),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let count: i64 = digits.parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(format!("step={raw:?} must be greater than zero"));
    }
    count
        .checked_mul(unit_seconds)
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(|| format!("step={raw:?} is too large"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(parse_step("15m").unwrap(), TimeDelta::minutes(15));
        assert_eq!(parse_step("1h").unwrap(), TimeDelta::hours(1));
        assert_eq!(parse_step("2d").unwrap(), TimeDelta::days(2));
        assert_eq!(parse_step("90").unwrap(), TimeDelta::seconds(90));
        assert_eq!(parse_step("90s").unwrap(), TimeDelta::seconds(90));
        for bad in [
            "",
            "0",
            "0h",
            "h",
            "-1h",
            "1w",
            "1.5h",
            "99999999999999999999",
            "9999999999999999d",
        ] {
            assert!(parse_step(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants() {
        let at = parse_instant("at", "2026-11-26T16:00:00+02:00").unwrap();
        assert_eq!(format_instant(at), "2026-11-26T14:00:00Z");
        assert_eq!(
            parse_instant("at", "2026-11-26T16:00:00 02:00").unwrap(),
            at
        );
        let precise = parse_instant("at", "2026-11-26T14:00:00.123456789Z").unwrap();
        assert_eq!(format_instant(precise), "2026-11-26T14:00:00.123456789Z");
        for bad in ["", "yesterday", "2026-11-26", "2026-13-01T00:00:00Z"] {
            assert!(parse_instant("at", bad).is_err(), "{bad}");
        }
    }
}
