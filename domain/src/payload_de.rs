//! Decoding an [`EventPayload`] without buffering it: serde's derived decoder for an internally
//! tagged enum copies the whole object into an intermediate tree first (every key and string
//! allocated twice). Our encoder writes `"type"` first, so the tag is read, then the rest of
//! the object goes straight to the variant's fields. An object with its tag elsewhere (written
//! by hand, or rewritten by an upcast) is buffered as JSON and decoded the same way. Same
//! rules as the derived decoder: the tag is required, unknown fields and variants are refused.

use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::envelope::{EventPayload, WithdrawReason};
use crate::ids::{ModelId, ProviderId, RegionId};
use crate::lifecycle::OperationalStatus;
use crate::text::LocalizedText;

const TAG: &str = "type";

/// The `type` values, named as the variants they select.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)]
enum Tag {
    ModelRegistered,
    ModelActivated,
    ModelDeactivated,
    ModelStatusChanged,
    ModelMetadataUpdated,
    ModelRetired,
    ModelServed,
    ModelWithdrawn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registered {
    id: ModelId,
    provider: ProviderId,
    home_region: RegionId,
    #[serde(deserialize_with = "crate::text::limits::name")]
    name: LocalizedText,
    description: Option<LocalizedText>,
    status: OperationalStatus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChanged {
    status: OperationalStatus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataUpdated {
    #[serde(default, deserialize_with = "crate::text::limits::optional_name")]
    name: Option<LocalizedText>,
    description: Option<LocalizedText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Served {
    region: RegionId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Withdrawn {
    region: RegionId,
    reason: WithdrawReason,
}

impl Tag {
    /// Decodes the variant's fields (the object without its tag).
    fn fields<'de, D: Deserializer<'de>>(self, fields: D) -> Result<EventPayload, D::Error> {
        Ok(match self {
            Tag::ModelRegistered => {
                let Registered {
                    id,
                    provider,
                    home_region,
                    name,
                    description,
                    status,
                } = Registered::deserialize(fields)?;
                EventPayload::ModelRegistered {
                    id,
                    provider,
                    home_region,
                    name,
                    description,
                    status,
                }
            }
            Tag::ModelActivated | Tag::ModelDeactivated | Tag::ModelRetired => {
                NoFields::deserialize(fields)?;
                match self {
                    Tag::ModelActivated => EventPayload::ModelActivated,
                    Tag::ModelDeactivated => EventPayload::ModelDeactivated,
                    _ => EventPayload::ModelRetired,
                }
            }
            Tag::ModelStatusChanged => {
                let StatusChanged { status } = StatusChanged::deserialize(fields)?;
                EventPayload::ModelStatusChanged { status }
            }
            Tag::ModelMetadataUpdated => {
                let MetadataUpdated { name, description } = MetadataUpdated::deserialize(fields)?;
                EventPayload::ModelMetadataUpdated { name, description }
            }
            Tag::ModelServed => {
                let Served { region } = Served::deserialize(fields)?;
                EventPayload::ModelServed { region }
            }
            Tag::ModelWithdrawn => {
                let Withdrawn { region, reason } = Withdrawn::deserialize(fields)?;
                EventPayload::ModelWithdrawn { region, reason }
            }
        })
    }
}

/// An object's first key: the tag, recognised without allocating, or any other.
enum FirstKey {
    Tag,
    Other(String),
}

impl<'de> Deserialize<'de> for FirstKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = FirstKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<FirstKey, E> {
                Ok(if key == TAG {
                    FirstKey::Tag
                } else {
                    FirstKey::Other(key.to_owned())
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = EventPayload;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object with a \"type\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventPayload, A::Error> {
        match map.next_key::<FirstKey>()? {
            Some(FirstKey::Tag) => {
                let tag: Tag = map.next_value()?;
                tag.fields(MapAccessDeserializer::new(map))
            }
            Some(FirstKey::Other(first)) => {
                let mut object = serde_json::Map::new();
                object.insert(first, map.next_value()?);
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if object.contains_key(&key) {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    object.insert(key, value);
                }
                let tag = object
                    .remove(TAG)
                    .ok_or_else(|| de::Error::missing_field(TAG))?;
                let tag = Tag::deserialize(tag).map_err(de::Error::custom)?;
                tag.fields(serde_json::Value::Object(object))
                    .map_err(de::Error::custom)
            }
            None => Err(de::Error::missing_field(TAG)),
        }
    }
}

impl<'de> Deserialize<'de> for EventPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PayloadVisitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;
    use crate::text::TextLimit;

    fn every_variant() -> Vec<EventPayload> {
        let text = |s: &str| {
            LocalizedText::parse([("en".to_owned(), s.to_owned())].into(), TextLimit::NAME).unwrap()
        };
        let region = RegionId::parse("eu-west").unwrap();
        vec![
            EventPayload::ModelRegistered {
                id: ModelId::parse("acme/m").unwrap(),
                provider: ProviderId::parse("acme").unwrap(),
                home_region: region.clone(),
                name: text("M"),
                description: Some(text("about M")),
                status: OperationalStatus::Degraded,
            },
            EventPayload::ModelActivated,
            EventPayload::ModelDeactivated,
            EventPayload::ModelStatusChanged {
                status: OperationalStatus::Operational,
            },
            EventPayload::ModelMetadataUpdated {
                name: None,
                description: Some(text("d")),
            },
            EventPayload::ModelMetadataUpdated {
                name: Some(text("n")),
                description: None,
            },
            EventPayload::ModelRetired,
            EventPayload::ModelServed {
                region: region.clone(),
            },
            EventPayload::ModelWithdrawn {
                region,
                reason: WithdrawReason::ModelRetired,
            },
        ]
    }

    /// The object with its tag moved to the end (serde_json's map keeps insertion order).
    fn tag_last(value: &Value) -> String {
        let Value::Object(object) = value else {
            panic!("not an object")
        };
        let mut fields: Vec<String> = object
            .iter()
            .filter(|(k, _)| *k != TAG)
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect();
        fields.push(format!("\"type\":{}", object[TAG]));
        format!("{{{}}}", fields.join(","))
    }

    #[test]
    fn every_variant_round_trips_with_its_tag_anywhere() {
        for payload in every_variant() {
            let json = serde_json::to_string(&payload).unwrap();
            assert!(json.starts_with("{\"type\":"), "{json}");
            assert_eq!(
                serde_json::from_str::<EventPayload>(&json).unwrap(),
                payload
            );
            let value: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(
                serde_json::from_value::<EventPayload>(value.clone()).unwrap(),
                payload
            );
            let moved = tag_last(&value);
            assert_eq!(
                serde_json::from_str::<EventPayload>(&moved).unwrap(),
                payload,
                "{moved}"
            );
        }
    }

    #[test]
    fn what_the_derived_decoder_refused_is_refused() {
        let long_name = json!({"en": "x".repeat(201)});
        let refused = [
            json!({}),
            json!({"id": "acme/m"}),
            json!({"type": "model_exploded"}),
            json!({"type": "model_activated", "extra": 1}),
            json!({"extra": 1, "type": "model_activated"}),
            json!({"type": "model_status_changed"}),
            json!({"type": "model_status_changed", "status": "melting"}),
            json!({"type": "model_served", "region": "EU WEST"}),
            json!({"type": "model_metadata_updated", "name": long_name}),
            json!({"description": null, "type": "model_metadata_updated", "name": long_name}),
            json!({"type": "model_registered", "id": "acme/m", "provider": "acme",
                   "home_region": "eu-west", "name": long_name, "description": null,
                   "status": "operational"}),
            json!([]),
            json!("model_activated"),
            json!(null),
        ];
        for value in refused {
            let text = value.to_string();
            assert!(
                serde_json::from_str::<EventPayload>(&text).is_err(),
                "{text}"
            );
            assert!(
                serde_json::from_value::<EventPayload>(value).is_err(),
                "{text}"
            );
        }
        for twice in [
            r#"{"type":"model_activated","type":"model_retired"}"#,
            r#"{"status":"degraded","type":"model_status_changed","type":"model_retired"}"#,
        ] {
            assert!(
                serde_json::from_str::<EventPayload>(twice).is_err(),
                "{twice}"
            );
        }
    }
}
