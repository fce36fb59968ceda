//! Localized text: names per BCP 47 tag, with length limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// How long a localized text may be, per field.
#[derive(Debug, Clone, Copy)]
pub struct TextLimit {
    pub field: &'static str,
    pub max_chars: usize,
}

impl TextLimit {
    pub const NAME: TextLimit = TextLimit {
        field: "name",
        max_chars: 200,
    };
    pub const DESCRIPTION: TextLimit = TextLimit {
        field: "description",
        max_chars: 2000,
    };
}

/// Text in several locales (`{"en": "...", "ko": "..."}`); `en` is required and is the fallback.
///
/// Deserializing validates like `parse` with the most generous limit (a description's); event
/// fields that are names are held to the name limit by `deserialize_name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct LocalizedText(BTreeMap<String, String>);

impl TryFrom<BTreeMap<String, String>> for LocalizedText {
    type Error = ValidationError;
    fn try_from(entries: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::parse(entries, TextLimit::DESCRIPTION)
    }
}

impl From<LocalizedText> for BTreeMap<String, String> {
    fn from(text: LocalizedText) -> Self {
        text.0
    }
}

/// Serde helpers that hold event fields to their own limits.
pub(crate) mod limits {
    use serde::{Deserialize, Deserializer, de::Error};

    use super::{LocalizedText, TextLimit};

    fn within<E: Error>(text: LocalizedText, limit: TextLimit) -> Result<LocalizedText, E> {
        LocalizedText::parse(text.0, limit).map_err(E::custom)
    }

    pub fn name<'de, D: Deserializer<'de>>(d: D) -> Result<LocalizedText, D::Error> {
        within(LocalizedText::deserialize(d)?, TextLimit::NAME)
    }

    pub fn optional_name<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<LocalizedText>, D::Error> {
        Option::<LocalizedText>::deserialize(d)?
            .map(|text| within(text, TextLimit::NAME))
            .transpose()
    }
}

pub(crate) const MAX_LOCALES: usize = 32;

impl LocalizedText {
    pub const FALLBACK_LOCALE: &'static str = "en";

    pub fn parse(
        entries: BTreeMap<String, String>,
        limit: TextLimit,
    ) -> Result<Self, ValidationError> {
        if !entries.contains_key(Self::FALLBACK_LOCALE) {
            return Err(ValidationError::new(
                limit.field,
                "an \"en\" entry is required",
            ));
        }
        if entries.len() > MAX_LOCALES {
            return Err(ValidationError::new(
                limit.field,
                format!("at most {MAX_LOCALES} locales"),
            ));
        }
        for (locale, text) in &entries {
            if !is_locale_tag(locale) {
                return Err(ValidationError::new(
                    limit.field,
                    format!("{locale:?} is not a locale tag such as \"en\" or \"pt-BR\""),
                ));
            }
            if text.trim().is_empty() {
                return Err(ValidationError::new(
                    limit.field,
                    format!("the {locale:?} text must not be empty"),
                ));
            }
            // PostgreSQL text and jsonb cannot hold U+0000: refuse it here (422) rather than
            // fail the append (which would read as the store being unavailable).
            if text.contains('\0') {
                return Err(ValidationError::new(
                    limit.field,
                    format!("the {locale:?} text must not contain NUL characters"),
                ));
            }
            if text.chars().count() > limit.max_chars {
                return Err(ValidationError::new(
                    limit.field,
                    format!(
                        "the {locale:?} text must be at most {} characters",
                        limit.max_chars
                    ),
                ));
            }
        }
        Ok(Self(entries))
    }

    /// English-only text, for tests and demos.
    pub fn english(text: &str) -> Self {
        Self(BTreeMap::from([(
            Self::FALLBACK_LOCALE.to_owned(),
            text.to_owned(),
        )]))
    }

    /// The text in `locale`, else in its base language (`pt` for `pt-BR`), else in English.
    pub fn resolve(&self, locale: &str) -> &str {
        let base = locale.split('-').next().unwrap_or(locale);
        self.0
            .get(locale)
            .or_else(|| self.0.get(base))
            .or_else(|| self.0.get(Self::FALLBACK_LOCALE))
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// A simplified BCP 47 tag: a 2–3 letter language, optionally `-` and a 2–4 character region or script.
pub fn is_locale_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase()));
    let rest_ok = match parts.next() {
        None => true,
        Some(sub) => (2..=4).contains(&sub.len()) && sub.chars().all(|c| c.is_ascii_alphanumeric()),
    };
    lang_ok && rest_ok && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nul_characters_are_refused() {
        let err = LocalizedText::parse(text(&[("en", "a\0b")]), TextLimit::NAME).unwrap_err();
        assert!(err.reason.contains("NUL"), "{}", err.reason);
    }

    #[test]
    fn english_is_required() {
        let err = LocalizedText::parse(text(&[("ko", "모델")]), TextLimit::NAME).unwrap_err();
        assert_eq!(err.field, "name");
    }

    #[test]
    fn resolves_with_fallback() {
        let t = LocalizedText::parse(text(&[("en", "Model"), ("ko", "모델")]), TextLimit::NAME)
            .unwrap();
        assert_eq!(t.resolve("ko"), "모델");
        assert_eq!(t.resolve("ko-KR"), "모델");
        assert_eq!(t.resolve("fr"), "Model");
    }

    #[test]
    fn rejects_blank_long_and_bad_tags() {
        assert!(LocalizedText::parse(text(&[("en", "  ")]), TextLimit::NAME).is_err());
        let long = "x".repeat(201);
        assert!(LocalizedText::parse(text(&[("en", &long)]), TextLimit::NAME).is_err());
        assert!(LocalizedText::parse(text(&[("en", "a"), ("EN!", "b")]), TextLimit::NAME).is_err());
    }
}
