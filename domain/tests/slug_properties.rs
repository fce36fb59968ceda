//! Property (c): the slug parsers accept exactly the documented alphabets and lengths and never
//! panic, whatever the input:
//! `ModelId` 1–128 of `[a-z0-9._/-]`, `ProviderId` 1–64 of `[a-z0-9-]`, `RegionId` 1–32 of
//! `[a-z0-9-]`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use domain::{ModelId, ProviderId, RegionId, StreamId, ValidationError};
use proptest::prelude::*;

const CASES: u32 = 10_000;

/// The documented alphabets, spelled out character by character.
const MODEL_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789._/-";
const SLUG_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789-";

/// The documented rule: `min..=max` characters, each from `alphabet`.
fn documented(raw: &str, alphabet: &str, max: usize) -> bool {
    let len = raw.chars().count();
    (1..=max).contains(&len) && raw.chars().all(|c| alphabet.contains(c))
}

/// Characters that look like they could belong but do not: the model-id-only `._/` (for
/// provider and region), upper case, separators, whitespace, look-alikes and non-ASCII.
const NEAR_MISSES: &[char] = &[
    '.', '_', '/', 'A', 'Z', ':', ' ', '\t', '\n', '\\', '+', '*', '@', '#', '%', '~', '"', '\'',
    'é', 'ı', 'ſ', 'K', '\u{212A}', '／', '－', '．', '\u{0}', '\u{200B}', '가', '🦀',
];

/// Strings mostly made of `alphabet`, sometimes with one of [`NEAR_MISSES`] (or an
/// alphabet-only string of a boundary length), so both sides of the rule get exercised.
fn candidate(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    let letters: Vec<char> = alphabet.chars().collect();
    let mut mixed = letters.clone();
    mixed.extend_from_slice(NEAR_MISSES);
    let around_limit = (max.saturating_sub(2))..=(max + 2);
    prop_oneof![
        4 => proptest::collection::vec(prop::sample::select(letters.clone()), 0..=(max + 8)),
        3 => proptest::collection::vec(prop::sample::select(mixed), 0..=(max + 8)),
        2 => around_limit
            .prop_flat_map(move |len| proptest::collection::vec(prop::sample::select(letters.clone()), len)),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

fn check<T: std::fmt::Debug>(
    raw: &str,
    parsed: Result<T, ValidationError>,
    as_str: impl Fn(&T) -> &str,
    field: &str,
    alphabet: &str,
    max: usize,
) -> Result<(), TestCaseError> {
    let expected = documented(raw, alphabet, max);
    match parsed {
        Ok(id) => {
            prop_assert!(expected, "{raw:?} was accepted as {id:?}");
            prop_assert_eq!(as_str(&id), raw, "the id keeps its text as given");
        }
        Err(error) => {
            prop_assert!(!expected, "{raw:?} was rejected: {error}");
            prop_assert_eq!(error.field, field);
            prop_assert!(!error.reason.is_empty());
        }
    }
    Ok(())
}

fn check_model_id(raw: &str) -> Result<(), TestCaseError> {
    check(
        raw,
        ModelId::parse(raw),
        ModelId::as_str,
        "id",
        MODEL_ALPHABET,
        128,
    )?;
    // Serde goes through the same validation.
    let via_serde: Result<ModelId, _> = serde_json::from_value(serde_json::Value::from(raw));
    prop_assert_eq!(via_serde.is_ok(), documented(raw, MODEL_ALPHABET, 128));
    Ok(())
}

fn check_provider_id(raw: &str) -> Result<(), TestCaseError> {
    check(
        raw,
        ProviderId::parse(raw),
        ProviderId::as_str,
        "provider",
        SLUG_ALPHABET,
        64,
    )?;
    let via_serde: Result<ProviderId, _> = serde_json::from_value(serde_json::Value::from(raw));
    prop_assert_eq!(via_serde.is_ok(), documented(raw, SLUG_ALPHABET, 64));
    Ok(())
}

fn check_region_id(raw: &str) -> Result<(), TestCaseError> {
    check(
        raw,
        RegionId::parse(raw),
        RegionId::as_str,
        "region",
        SLUG_ALPHABET,
        32,
    )?;
    let via_serde: Result<RegionId, _> = serde_json::from_value(serde_json::Value::from(raw));
    prop_assert_eq!(via_serde.is_ok(), documented(raw, SLUG_ALPHABET, 32));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn model_id_accepts_exactly_the_documented_slugs(raw in candidate(MODEL_ALPHABET, 128)) {
        check_model_id(&raw)?;
    }

    #[test]
    fn provider_id_accepts_exactly_the_documented_slugs(raw in candidate(SLUG_ALPHABET, 64)) {
        check_provider_id(&raw)?;
    }

    #[test]
    fn region_id_accepts_exactly_the_documented_slugs(raw in candidate(SLUG_ALPHABET, 32)) {
        check_region_id(&raw)?;
    }

    /// Arbitrary Unicode (including control characters and long strings): never a panic, and
    /// still exactly the documented rule.
    #[test]
    fn parsers_never_panic_on_arbitrary_strings(raw in any::<String>()) {
        check_model_id(&raw)?;
        check_provider_id(&raw)?;
        check_region_id(&raw)?;
        let _ = StreamId::parse(&raw);
    }

    /// A stream id's text form parses back to the same stream, and parsing anything else never
    /// panics.
    #[test]
    fn stream_ids_round_trip(
        region in "[a-z0-9-]{1,32}",
        model in "[a-z0-9._/-]{1,128}",
        availability in any::<bool>(),
    ) {
        let model = ModelId::parse(&model).unwrap();
        let stream = if availability {
            StreamId::Availability { region: RegionId::parse(&region).unwrap(), model }
        } else {
            StreamId::Model(model)
        };
        prop_assert_eq!(StreamId::parse(&stream.to_string()).unwrap(), stream);
    }
}

#[test]
fn boundary_lengths() {
    for (max, parse) in [
        (
            128,
            (|raw: &str| ModelId::parse(raw).is_ok()) as fn(&str) -> bool,
        ),
        (64, |raw: &str| ProviderId::parse(raw).is_ok()),
        (32, |raw: &str| RegionId::parse(raw).is_ok()),
    ] {
        assert!(!parse(""), "empty accepted (max {max})");
        assert!(parse("a"), "1 char refused (max {max})");
        assert!(parse(&"a".repeat(max)), "{max} chars refused");
        assert!(!parse(&"a".repeat(max + 1)), "{} chars accepted", max + 1);
        assert!(parse(&"-".repeat(max)), "dashes only refused (max {max})");
    }
}

#[test]
fn every_documented_character_is_accepted_and_only_model_ids_take_dot_underscore_slash() {
    for c in MODEL_ALPHABET.chars() {
        assert!(ModelId::parse(&c.to_string()).is_ok(), "model id {c:?}");
    }
    for c in SLUG_ALPHABET.chars() {
        assert!(ProviderId::parse(&c.to_string()).is_ok(), "provider {c:?}");
        assert!(RegionId::parse(&c.to_string()).is_ok(), "region {c:?}");
    }
    for c in ['.', '_', '/'] {
        assert!(ProviderId::parse(&c.to_string()).is_err(), "provider {c:?}");
        assert!(RegionId::parse(&c.to_string()).is_err(), "region {c:?}");
    }
}

#[test]
fn length_counts_characters_not_bytes() {
    // 128 two-byte characters are too "wide" for bytes but the alphabet refuses them anyway;
    // the error must be about the character, not the length.
    let error = ModelId::parse(&"é".repeat(100)).unwrap_err();
    assert!(error.reason.contains("not allowed"), "{}", error.reason);
}
