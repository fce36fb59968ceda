//! Validated identifiers: model ids, provider ids and region ids.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Declares a validated slug newtype: parsed once at the edge, trusted everywhere after.
macro_rules! slug {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal, $allowed:expr, $allowed_text:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                Self::check(raw)?;
                Ok(Self(raw.to_owned()))
            }

            fn check(raw: &str) -> Result<(), ValidationError> {
                if raw.is_empty() {
                    return Err(ValidationError::new($field, "must not be empty"));
                }
                // Every allowed character is ASCII: counting bytes is counting characters.
                let chars = if raw.is_ascii() { raw.len() } else { raw.chars().count() };
                if chars > $max {
                    return Err(ValidationError::new(
                        $field,
                        format!("must be at most {} characters", $max),
                    ));
                }
                let allowed: fn(char) -> bool = $allowed;
                let bad = if raw.is_ascii() {
                    raw.bytes().map(char::from).find(|c| !allowed(*c))
                } else {
                    raw.chars().find(|c| !allowed(*c))
                };
                if let Some(bad) = bad {
                    return Err(ValidationError::new(
                        $field,
                        format!("character {bad:?} is not allowed; use {}", $allowed_text),
                    ));
                }
                Ok(())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::check(&raw)?;
                Ok(Self(raw))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug!(
    /// A model id such as `openai/gpt-5`: 1–128 characters of `[a-z0-9._/-]`.
    ModelId,
    "id",
    128,
    |c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '/' | '-'),
    "[a-z0-9._/-]"
);

slug!(
    /// A provider slug such as `openai`: 1–64 characters of `[a-z0-9-]`.
    ProviderId,
    "provider",
    64,
    |c| matches!(c, 'a'..='z' | '0'..='9' | '-'),
    "[a-z0-9-]"
);

slug!(
    /// A region slug such as `eu-west`: 1–32 characters of `[a-z0-9-]`.
    RegionId,
    "region",
    32,
    |c| matches!(c, 'a'..='z' | '0'..='9' | '-'),
    "[a-z0-9-]"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_accept_the_documented_alphabet() {
        assert!(ModelId::parse("openai/gpt-5").is_ok());
        assert!(ModelId::parse("meta/llama-3.1_70b").is_ok());
        assert!(ModelId::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn model_ids_reject_everything_else() {
        assert_eq!(ModelId::parse("").unwrap_err().reason, "must not be empty");
        assert!(ModelId::parse(&"a".repeat(129)).is_err());
        assert!(ModelId::parse("OpenAI/gpt").is_err());
        assert!(ModelId::parse("a b").is_err());
        assert!(ModelId::parse("a:b").is_err());
    }

    #[test]
    fn provider_and_region_forbid_slashes() {
        assert!(ProviderId::parse("open/ai").is_err());
        assert!(RegionId::parse("eu/west").is_err());
        assert!(RegionId::parse("eu-west-1").is_ok());
    }

    #[test]
    fn serde_goes_through_validation() {
        let bad: Result<ModelId, _> = serde_json::from_str("\"Bad Id\"");
        assert!(bad.is_err());
        let good: ModelId = serde_json::from_str("\"openai/gpt-5\"").unwrap();
        assert_eq!(good.as_str(), "openai/gpt-5");
    }
}
