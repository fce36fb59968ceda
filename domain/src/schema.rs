//! OpenAPI schemas of the domain's wire types whose JSON form serde builds by hand (validated
//! strings, the stream and token text forms, localized text): utoipa cannot derive them, so
//! they are written here, next to the rules they describe.

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema::SchemaType};
use utoipa::{PartialSchema, ToSchema};

use crate::ids::{ModelId, ProviderId, RegionId};
use crate::stream::StreamId;
use crate::text::{LocalizedText, MAX_LOCALES, TextLimit};
use crate::token::ConsistencyToken;

fn string(description: &str, example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .description(Some(description))
        .examples([serde_json::json!(example)])
}

/// A slug: its alphabet and length, as `slug!` checks them.
fn slug(description: &str, example: &str, alphabet: &str, max: usize) -> RefOr<Schema> {
    string(description, example)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(format!("^{alphabet}+$")))
        .into()
}

impl PartialSchema for ModelId {
    fn schema() -> RefOr<Schema> {
        slug(
            "A model id such as `openai/gpt-5`. In a path, give it as it is or with `/` encoded as `%2F`.",
            "openai/gpt-5",
            "[a-z0-9._/-]",
            ModelId::MAX_LEN,
        )
    }
}
impl ToSchema for ModelId {}

impl PartialSchema for ProviderId {
    fn schema() -> RefOr<Schema> {
        slug(
            "A provider slug such as `openai`.",
            "openai",
            "[a-z0-9-]",
            ProviderId::MAX_LEN,
        )
    }
}
impl ToSchema for ProviderId {}

impl PartialSchema for RegionId {
    fn schema() -> RefOr<Schema> {
        slug(
            "A region slug such as `eu-west`.",
            "eu-west",
            "[a-z0-9-]",
            RegionId::MAX_LEN,
        )
    }
}
impl ToSchema for RegionId {}

impl PartialSchema for StreamId {
    fn schema() -> RefOr<Schema> {
        string(
            "An event stream: `model:<id>` or `availability:<region>:<id>`.",
            "model:openai/gpt-5",
        )
        .pattern(Some("^(model:|availability:[a-z0-9-]+:)[a-z0-9._/-]+$"))
        .into()
    }
}
impl ToSchema for StreamId {}

impl PartialSchema for ConsistencyToken {
    fn schema() -> RefOr<Schema> {
        string(
            "Names one recorded event, `<region>:<position>:<sequence>:<stream>`. Pass it to a \
             read as `?after=` or the `Consistency-Token` header to read your own write.",
            "eu-west:42:3:model:openai/gpt-5",
        )
        .into()
    }
}
impl ToSchema for ConsistencyToken {}

/// Text by locale tag, each entry at most `max_chars` characters.
fn localized(max_chars: usize, what: &str) -> RefOr<Schema> {
    let text = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .min_length(Some(1))
            .max_length(Some(max_chars))
            // As `LocalizedText::parse` checks: not blank, no NUL.
            .pattern(Some(r"^[^\x00]*[^\s\x00][^\x00]*$"))
    };
    let tag = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some("^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$"));
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .description(Some(format!(
            "{what} by locale tag (`en`, `ko`, `pt-BR`); `en` is required and is the fallback."
        )))
        .property("en", text())
        .required("en")
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
            text().build(),
        )))))
        .property_names(Some(tag))
        .max_properties(Some(MAX_LOCALES))
        .examples([serde_json::json!({"en": "GPT-5", "ko": "GPT-5"})])
        .into()
}

impl PartialSchema for LocalizedText {
    fn schema() -> RefOr<Schema> {
        localized(
            TextLimit::DESCRIPTION.max_chars,
            "Text (a name: at most 200 characters each, a description: 2000)",
        )
    }
}
impl ToSchema for LocalizedText {}

/// Schema only: a [`LocalizedText`] that is a name, held to the name limit.
#[derive(Debug)]
pub struct LocalizedName;

impl PartialSchema for LocalizedName {
    fn schema() -> RefOr<Schema> {
        localized(TextLimit::NAME.max_chars, "A name")
    }
}
impl ToSchema for LocalizedName {}
