//! Upcasting: events stored in an older schema are rewritten to today's shape on decode.
//!
//! Events are immutable facts, so old bytes stay on Kafka and in the event store forever; every
//! reader goes through [`EventEnvelope::decode`](crate::EventEnvelope::decode), which runs the
//! upcasters below on the JSON before the typed decode. Each step takes version `n` to `n + 1`.
//!
//! **Version 0** (the first prototype, before localization and status probes):
//! - `model_registered` carried `name` as a plain English string, had no `description` and no
//!   `status` (every model started operational);
//! - `model_metadata_updated` carried `name` as an optional plain string and no `description`.
//!
//! Version 1 (today) has localized `name`/`description` maps and an explicit `status`.
//!
//! Each rule rewrites only the old form (a string name, a missing field), so a document that is
//! already in today's shape passes unchanged: an upcast envelope keeps the `schema_version` it
//! was written with (it records how the fact was stored), and encoding it again then decoding
//! gives the same envelope.

use serde_json::{Map, Value};

use crate::text::LocalizedText;

/// Rewrites the event of an envelope written at `from` into the current shape, in place.
/// Anything it does not recognise is left for the typed decode to refuse.
pub(crate) fn to_current(from: u16, envelope: &mut Value) {
    if from == 0
        && let Some(event) = envelope.get_mut("event").and_then(Value::as_object_mut)
    {
        v0_to_v1(event);
    }
}

fn v0_to_v1(event: &mut Map<String, Value>) {
    match event.get("type").and_then(Value::as_str) {
        Some("model_registered") => {
            localize(event, "name");
            event.entry("description").or_insert(Value::Null);
            event
                .entry("status")
                .or_insert_with(|| Value::from("operational"));
        }
        Some("model_metadata_updated") => {
            localize(event, "name");
            event.entry("description").or_insert(Value::Null);
        }
        _ => {}
    }
}

/// A plain string becomes `{"en": string}`; anything else is left as it is.
fn localize(event: &mut Map<String, Value>, field: &str) {
    if let Some(slot) = event.get_mut(field)
        && let Value::String(text) = slot
    {
        let english = std::mem::take(text);
        let mut map = Map::new();
        map.insert(
            LocalizedText::FALLBACK_LOCALE.to_owned(),
            Value::from(english),
        );
        *slot = Value::Object(map);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_v0_registration_gains_todays_fields() {
        let mut envelope = json!({"event": {"type": "model_registered", "name": "GPT-5"}});
        to_current(0, &mut envelope);
        assert_eq!(
            envelope["event"],
            json!({"type": "model_registered", "name": {"en": "GPT-5"},
                   "description": null, "status": "operational"})
        );
    }

    #[test]
    fn todays_shape_passes_unchanged() {
        let today = json!({"event": {"type": "model_metadata_updated",
                                     "name": {"en": "X"}, "description": {"en": "Y"}}});
        let mut envelope = today.clone();
        to_current(0, &mut envelope);
        assert_eq!(envelope, today);
        to_current(1, &mut envelope);
        assert_eq!(envelope, today);
    }
}
