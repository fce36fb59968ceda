//! Which language a read answers in: `?locale=` if given, else the client's `Accept-Language`
//! tags in quality order; each model's names are then negotiated against the languages that
//! model actually has (`fluent-langneg`), English being the fallback. A locale changes names
//! only, never a count.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use domain::is_locale_tag;
use fluent_langneg::{LanguageIdentifier, NegotiationStrategy, negotiate_languages};

use crate::problem::QueryError;

pub const FALLBACK: &str = "en";

/// What the client asked for, most wanted first.
#[derive(Debug, Clone)]
pub struct Preference {
    /// `?locale=`, or the best `Accept-Language` tag, or English: what an answer says it is in.
    tag: String,
    wanted: Vec<LanguageIdentifier>,
}

impl Preference {
    /// The locale an answer names as its own (the body's `locale`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Of `available` languages (a text's), the one that serves this client best: its most
    /// wanted one the text has (a region variant matching its language, and back), else
    /// English, else the text's first.
    pub fn pick<'a>(&self, available: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
        let available: Vec<&'a String> = available.into_iter().collect();
        let ids: Vec<LanguageIdentifier> = available
            .iter()
            .map(|tag| tag.parse().unwrap_or_default())
            .collect();
        let english: LanguageIdentifier = FALLBACK.parse().unwrap_or_default();
        let default = ids.iter().find(|id| **id == english);
        let chosen = negotiate_languages(&self.wanted, &ids, default, NegotiationStrategy::Lookup);
        let index = chosen
            .first()
            .and_then(|chosen| ids.iter().position(|id| id == *chosen))
            .unwrap_or(0);
        available.get(index).copied()
    }
}

pub fn negotiate(requested: Option<&str>, headers: &HeaderMap) -> Result<Preference, QueryError> {
    if let Some(raw) = requested {
        let tag = normalize(raw);
        return if is_locale_tag(&tag) {
            Ok(preference(vec![tag]))
        } else {
            Err(QueryError::invalid(
                "locale",
                format!("{raw:?} is not a language tag such as \"en\" or \"ko-KR\""),
            ))
        };
    }
    let accepted = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(accepted_in_order)
        .unwrap_or_default();
    Ok(preference(accepted))
}

fn preference(tags: Vec<String>) -> Preference {
    Preference {
        tag: tags.first().cloned().unwrap_or_else(|| FALLBACK.to_owned()),
        wanted: tags.iter().filter_map(|t| t.parse().ok()).collect(),
    }
}

/// The acceptable tags by quality (earliest first on a tie); `*`, malformed tags and `q=0`
/// are left out, as RFC 9110 says.
fn accepted_in_order(header: &str) -> Vec<String> {
    let mut weighted: Vec<(f32, String)> = header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = normalize(parts.next().unwrap_or_default());
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (quality > 0.0 && quality <= 1.0 && is_locale_tag(&tag)).then_some((quality, tag))
        })
        .collect();
    weighted.sort_by(|a, b| b.0.total_cmp(&a.0));
    weighted.into_iter().map(|(_, tag)| tag).collect()
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

/// Marks a localized answer: in `language` (when one), and varying with `Accept-Language`.
pub fn mark(response: &mut Response, language: Option<&str>) {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept-language"));
    if let Some(value) = language.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(header::CONTENT_LANGUAGE, value);
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

    fn names(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn the_query_wins_over_the_header() {
        assert_eq!(negotiate(Some("ko"), &accept("en")).unwrap().tag(), "ko");
    }

    #[test]
    fn the_highest_quality_acceptable_tag_is_the_answers_locale() {
        let tag = |h| negotiate(None, &accept(h)).unwrap().tag().to_owned();
        assert_eq!(tag("en;q=0.5, ko-KR;q=0.9, *"), "ko-KR");
        assert_eq!(tag("fr, ko"), "fr");
        assert_eq!(tag("ko;q=0, de;q=0.1"), "de");
    }

    #[test]
    fn each_text_answers_in_the_best_language_it_has() {
        let available = names(&["en", "ko"]);
        let pick = |h: &str| {
            negotiate(None, &accept(h))
                .unwrap()
                .pick(&available)
                .cloned()
        };
        // French is wanted most, but this text has none: the next wanted language it has.
        assert_eq!(pick("fr, ko;q=0.8, en;q=0.1").as_deref(), Some("ko"));
        // A region variant finds its language, and back.
        assert_eq!(pick("ko-KR").as_deref(), Some("ko"));
        let regional = names(&["en", "pt-BR"]);
        let pt = negotiate(None, &accept("pt")).unwrap();
        assert_eq!(pt.pick(&regional).map(String::as_str), Some("pt-BR"));
        // Nothing wanted that it has: English, else its first language.
        assert_eq!(pick("de").as_deref(), Some("en"));
        let korean_only = names(&["ko"]);
        let de = negotiate(None, &accept("de")).unwrap();
        assert_eq!(de.pick(&korean_only).map(String::as_str), Some("ko"));
    }

    #[test]
    fn nothing_usable_means_english() {
        assert_eq!(negotiate(None, &HeaderMap::new()).unwrap().tag(), "en");
        assert_eq!(negotiate(None, &accept("*, 12;q=x")).unwrap().tag(), "en");
    }

    #[test]
    fn a_malformed_locale_parameter_is_refused() {
        assert!(negotiate(Some("not a tag"), &HeaderMap::new()).is_err());
        assert_eq!(
            negotiate(Some("KO_kr"), &HeaderMap::new()).unwrap().tag(),
            "ko-KR"
        );
    }
}
