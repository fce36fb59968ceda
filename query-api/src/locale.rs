//! Which language a read answers in: `?locale=` if given, else the client's best
//! `Accept-Language` tag, else English. A locale changes names only, never a count.

use axum::http::{HeaderMap, header};
use domain::is_locale_tag;

use crate::problem::QueryError;

pub const FALLBACK: &str = "en";

pub fn negotiate(requested: Option<&str>, headers: &HeaderMap) -> Result<String, QueryError> {
    if let Some(raw) = requested {
        let tag = normalize(raw);
        return if is_locale_tag(&tag) {
            Ok(tag)
        } else {
            Err(QueryError::invalid(
                "locale",
                format!("{raw:?} is not a language tag such as \"en\" or \"ko-KR\""),
            ))
        };
    }
    Ok(headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(best_accepted)
        .unwrap_or_else(|| FALLBACK.to_owned()))
}

/// The acceptable tag of highest quality (earliest on a tie); `*`, malformed tags and `q=0`
/// are ignored, as RFC 9110 says.
fn best_accepted(header: &str) -> Option<String> {
    let mut best: Option<(f32, String)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = normalize(parts.next().unwrap_or_default());
        let quality = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
        let Some(quality) = quality.filter(|q| *q > 0.0 && *q <= 1.0) else {
            continue;
        };
        if is_locale_tag(&tag) && best.as_ref().is_none_or(|(q, _)| quality > *q) {
            best = Some((quality, tag));
        }
    }
    best.map(|(_, tag)| tag)
}

/// `ko_KR` and `KO-kr` mean `ko-KR`: language lower case, the rest as given upper-cased.
fn normalize(raw: &str) -> String {
    let raw = raw.trim().replace('_', "-");
    match raw.split_once('-') {
        Some((language, rest)) => format!(
            "{}-{}",
            language.to_ascii_lowercase(),
            rest.to_ascii_uppercase()
        ),
        None => raw.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn the_query_wins_over_the_header() {
        assert_eq!(negotiate(Some("ko"), &accept("en")).unwrap(), "ko");
    }

    #[test]
    fn the_highest_quality_acceptable_tag_is_chosen() {
        assert_eq!(
            negotiate(None, &accept("en;q=0.5, ko-KR;q=0.9, *")).unwrap(),
            "ko-KR"
        );
        assert_eq!(negotiate(None, &accept("fr, ko")).unwrap(), "fr");
        assert_eq!(negotiate(None, &accept("ko;q=0, de;q=0.1")).unwrap(), "de");
    }

    #[test]
    fn nothing_usable_means_english() {
        assert_eq!(negotiate(None, &HeaderMap::new()).unwrap(), "en");
        assert_eq!(negotiate(None, &accept("*, 12;q=x")).unwrap(), "en");
    }

    #[test]
    fn a_malformed_locale_parameter_is_refused() {
        assert!(negotiate(Some("not a tag"), &HeaderMap::new()).is_err());
        assert_eq!(
            negotiate(Some("KO_kr"), &HeaderMap::new()).unwrap(),
            "ko-KR"
        );
    }
}
