//! Proptest strategies producing valid domain values (built through the domain's own parsers,
//! so a strategy never produces something the domain would refuse).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{
    EventEnvelope, EventPayload, Lifecycle, LocalizedText, ModelId, OperationalStatus, ProviderId,
    RegionId, StreamId, TextLimit, WithdrawReason,
};
use proptest::collection::btree_map;
use proptest::option;
use proptest::prelude::*;
use proptest::string::string_regex;
use uuid::Uuid;

pub fn model_id() -> impl Strategy<Value = ModelId> {
    "[a-z0-9._/-]{1,128}".prop_map(|raw| ModelId::parse(&raw).expect("generated model id"))
}

pub fn provider_id() -> impl Strategy<Value = ProviderId> {
    "[a-z0-9-]{1,64}".prop_map(|raw| ProviderId::parse(&raw).expect("generated provider id"))
}

pub fn region_id() -> impl Strategy<Value = RegionId> {
    "[a-z0-9-]{1,32}".prop_map(|raw| RegionId::parse(&raw).expect("generated region id"))
}

pub fn lifecycle() -> impl Strategy<Value = Lifecycle> {
    prop::sample::select(Lifecycle::ALL.to_vec())
}

pub fn operational_status() -> impl Strategy<Value = OperationalStatus> {
    prop::sample::select(OperationalStatus::ALL.to_vec())
}

pub fn withdraw_reason() -> impl Strategy<Value = WithdrawReason> {
    prop_oneof![
        Just(WithdrawReason::Manual),
        Just(WithdrawReason::ModelRetired)
    ]
}

/// A locale tag as `is_locale_tag` documents it: `xx`, `xxx`, `xx-YY`, `xx-Hant`, `xxx-419`...
pub fn locale_tag() -> impl Strategy<Value = String> {
    "[a-z]{2,3}(-[A-Za-z0-9]{2,4})?"
}

/// Any non-blank text of at most `max_chars` characters (any script, emoji, quotes...).
pub fn text_up_to(max_chars: usize) -> impl Strategy<Value = String> {
    let short = string_regex(&format!("\\PC{{1,{}}}", max_chars.min(40))).expect("regex");
    let at_limit = string_regex(&format!("[a-zA-Z가-힣]{{{max_chars}}}")).expect("regex");
    prop_oneof![
        9 => short.prop_filter("must not be blank", |t| !t.trim().is_empty()),
        1 => at_limit,
    ]
}

/// A valid localized text: an `en` entry plus up to five other locales.
pub fn localized_text(limit: TextLimit) -> impl Strategy<Value = LocalizedText> {
    (
        text_up_to(limit.max_chars),
        btree_map(locale_tag(), text_up_to(limit.max_chars), 0..=5),
    )
        .prop_map(
            move |(english, others): (String, BTreeMap<String, String>)| {
                let mut entries = others;
                entries.insert(LocalizedText::FALLBACK_LOCALE.to_owned(), english);
                LocalizedText::parse(entries, limit).expect("generated localized text")
            },
        )
}

pub fn stream_id() -> impl Strategy<Value = StreamId> {
    prop_oneof![
        model_id().prop_map(StreamId::Model),
        (region_id(), model_id())
            .prop_map(|(region, model)| StreamId::Availability { region, model }),
    ]
}

/// Any instant chrono can represent, to the nanosecond.
pub fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (
        DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
        0..1_000_000_000u32,
    )
        .prop_filter_map("representable instant", |(secs, nanos)| {
            DateTime::from_timestamp(secs, nanos)
        })
}

pub fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Every `EventPayload` variant, with arbitrary valid field values.
pub fn event_payload() -> impl Strategy<Value = EventPayload> {
    prop_oneof![
        (
            model_id(),
            provider_id(),
            region_id(),
            localized_text(TextLimit::NAME),
            option::of(localized_text(TextLimit::DESCRIPTION)),
            operational_status(),
        )
            .prop_map(|(id, provider, home_region, name, description, status)| {
                EventPayload::ModelRegistered {
                    id,
                    provider,
                    home_region,
                    name,
                    description,
                    status,
                }
            }),
        Just(EventPayload::ModelActivated),
        Just(EventPayload::ModelDeactivated),
        operational_status().prop_map(|status| EventPayload::ModelStatusChanged { status }),
        (
            option::of(localized_text(TextLimit::NAME)),
            option::of(localized_text(TextLimit::DESCRIPTION)),
        )
            .prop_map(|(name, description)| EventPayload::ModelMetadataUpdated {
                name,
                description
            }),
        Just(EventPayload::ModelRetired),
        region_id().prop_map(|region| EventPayload::ModelServed { region }),
        (region_id(), withdraw_reason())
            .prop_map(|(region, reason)| EventPayload::ModelWithdrawn { region, reason }),
    ]
}

/// An envelope with arbitrary valid fields, written at `schema_version`.
pub fn event_envelope_at(
    schema_version: impl Strategy<Value = u16>,
) -> impl Strategy<Value = EventEnvelope> {
    let identity = (
        uuid(),
        schema_version,
        stream_id(),
        any::<u64>(),
        any::<u64>(),
    );
    let context = (
        model_id(),
        region_id(),
        instant(),
        uuid(),
        option::of(uuid()),
        option::of(any::<String>()),
        option::of(any::<String>()),
    );
    (identity, context, event_payload()).prop_map(
        |(
            (event_id, schema_version, stream, sequence, position),
            (model_id, origin_region, occurred_at, correlation_id, causation_id, idem, actor),
            event,
        )| EventEnvelope {
            event_id,
            schema_version,
            stream,
            sequence,
            position,
            model_id,
            origin_region,
            occurred_at,
            correlation_id,
            causation_id,
            idempotency_key: idem,
            actor,
            event,
        },
    )
}
