//! Property (d): `LocalizedText::resolve` never panics and falls back to `en`; and
//! `LocalizedText::parse` accepts exactly the documented texts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;

use common::strategies::{locale_tag, localized_text};
use domain::{LocalizedText, TextLimit};
use proptest::collection::btree_map;
use proptest::prelude::*;

const CASES: u32 = 10_000;

/// Locales a reader might ask for: valid tags, tags with a region the text lacks, garbage,
/// empty strings, lone dashes and arbitrary Unicode.
fn requested_locale() -> impl Strategy<Value = String> {
    prop_oneof![
        locale_tag(),
        "(en|ko|ja|pt|zh)(-[A-Za-z0-9]{0,5}){0,3}",
        Just(String::new()),
        Just("-".to_owned()),
        Just("en-".to_owned()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The exact locale if present, else its base language, else English; never empty.
    #[test]
    fn resolve_falls_back_to_base_language_then_english(
        text in localized_text(TextLimit::NAME),
        locale in requested_locale(),
    ) {
        let entries = text.entries();
        let english = entries.get("en").expect("parse guarantees en");
        let base = match locale.find('-') {
            Some(dash) => &locale[..dash],
            None => locale.as_str(),
        };
        let expected = entries
            .get(&locale)
            .or_else(|| entries.get(base))
            .unwrap_or(english);
        let resolved = text.resolve(&locale);
        prop_assert_eq!(resolved, expected.as_str());
        prop_assert!(!resolved.trim().is_empty());
        if !entries.contains_key(&locale) && !entries.contains_key(base) {
            prop_assert_eq!(resolved, english.as_str(), "unknown locale {:?} must fall back to en", locale);
        }
    }

    /// `parse` never panics and accepts exactly: an `en` entry, at most 32 locales, every key a
    /// locale tag, every text non-blank, without NUL and within the limit.
    #[test]
    fn parse_accepts_exactly_the_documented_texts(
        entries in btree_map(
            prop_oneof![3 => locale_tag(), 1 => Just("en".to_owned()), 1 => any::<String>()],
            prop_oneof![3 => "\\PC{1,30}", 1 => "[ \t\n]{0,3}", 1 => "x{195,205}", 1 => "[a\\x00]{1,3}"],
            0..=6,
        ),
        many in any::<bool>(),
    ) {
        let mut entries: BTreeMap<String, String> = entries;
        if many {
            // Push the count of locales over the limit of 32.
            for i in 0..30u8 {
                entries.insert(format!("x{}{}", char::from(b'a' + i / 26), char::from(b'a' + i % 26)), "t".to_owned());
            }
        }
        let documented = entries.contains_key("en")
            && entries.len() <= 32
            && entries.iter().all(|(locale, text)| {
                is_documented_tag(locale)
                    && !text.trim().is_empty()
                    && !text.contains('\0')
                    && text.chars().count() <= TextLimit::NAME.max_chars
            });
        let parsed = LocalizedText::parse(entries.clone(), TextLimit::NAME);
        match parsed {
            Ok(text) => {
                prop_assert!(documented, "{:?} was accepted", entries);
                prop_assert_eq!(text.entries(), &entries);
                prop_assert!(!text.resolve("zz").is_empty());
            }
            Err(error) => {
                prop_assert!(!documented, "{:?} was refused: {}", entries, error);
                prop_assert_eq!(error.field, "name");
            }
        }
    }
}

/// A simplified BCP 47 tag as documented: 2–3 lower-case ASCII letters, optionally `-` and 2–4
/// ASCII letters or digits.
fn is_documented_tag(tag: &str) -> bool {
    let (language, rest) = match tag.split_once('-') {
        Some((language, rest)) => (language, Some(rest)),
        None => (tag, None),
    };
    let language_ok = (2..=3).contains(&language.chars().count())
        && language.chars().all(|c| c.is_ascii_lowercase());
    let rest_ok = rest.is_none_or(|sub| {
        (2..=4).contains(&sub.chars().count()) && sub.chars().all(|c| c.is_ascii_alphanumeric())
    });
    language_ok && rest_ok
}

#[test]
fn resolve_examples() {
    let text = common::name(&[("en", "Model"), ("ko", "모델"), ("pt-BR", "Modelo")]);
    assert_eq!(text.resolve("ko"), "모델");
    assert_eq!(text.resolve("ko-KR"), "모델");
    assert_eq!(text.resolve("pt-BR"), "Modelo");
    assert_eq!(
        text.resolve("pt"),
        "Model",
        "a region variant is not a base language"
    );
    assert_eq!(text.resolve("pt-PT"), "Model");
    assert_eq!(text.resolve("fr"), "Model");
    assert_eq!(text.resolve(""), "Model");
    assert_eq!(text.resolve("-"), "Model");
}

#[test]
fn description_limit_is_two_thousand_characters() {
    let at_limit = BTreeMap::from([("en".to_owned(), "가".repeat(2000))]);
    assert!(LocalizedText::parse(at_limit.clone(), TextLimit::DESCRIPTION).is_ok());
    assert!(LocalizedText::parse(at_limit, TextLimit::NAME).is_err());
    let over = BTreeMap::from([("en".to_owned(), "가".repeat(2001))]);
    let error = LocalizedText::parse(over, TextLimit::DESCRIPTION).unwrap_err();
    assert_eq!(error.field, "description");
}

/// Deserializing skips `LocalizedText::parse`, so `resolve` can be handed a text without `en`
/// and answers "" instead of falling back to English.
#[test]
fn deserializing_enforces_the_same_rules_as_parse() {
    let without_english: Result<LocalizedText, _> = serde_json::from_str(r#"{"ko": "모델"}"#);
    assert!(without_english.is_err(), "{without_english:?}");
    let blank: Result<LocalizedText, _> = serde_json::from_str(r#"{"en": " "}"#);
    assert!(blank.is_err(), "{blank:?}");
}
