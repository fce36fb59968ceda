//! The operator's librdkafka properties: checked names, values kept as text, secrets never
//! printed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// Properties the node sets itself on the clients that need them: changing them would break
/// exactly-once publication, offset handling or the group layout.
const RESERVED: [&str; 10] = [
    "allow.auto.create.topics",
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "enable.partition.eof",
    "auto.offset.reset",
    "transactional.id",
];

/// Why a property was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error(
        "kafka.client: {0:?} is not a librdkafka property name (lowercase words joined by dots)"
    )]
    Name(String),
    #[error("kafka.client: {0:?} is set by the node itself and cannot be configured")]
    Reserved(String),
}

/// librdkafka properties by name, applied to every client. In `AIGO_KAFKA__CLIENT__*`
/// variables dots are written as underscores (`AIGO_KAFKA__CLIENT__SASL_PASSWORD`); no
/// librdkafka property has an underscore in its name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientProperties(BTreeMap<String, String>);

impl ClientProperties {
    /// Checks and normalizes `(name, value)` pairs.
    pub fn parse<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Self, PropertyError>
    where
        N: AsRef<str>,
        V: Into<String>,
    {
        let mut properties = BTreeMap::new();
        for (name, value) in pairs {
            let name = name.as_ref().to_ascii_lowercase().replace('_', ".");
            let well_formed = !name.is_empty()
                && name.split('.').all(|word| {
                    !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if !well_formed {
                return Err(PropertyError::Name(name));
            }
            if RESERVED.contains(&name.as_str()) {
                return Err(PropertyError::Reserved(name));
            }
            properties.insert(name, value.into());
        }
        Ok(Self(properties))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether a property's value is a secret (a password, a private key, a client secret, or a
/// configuration string that may hold one).
pub fn is_secret(name: &str) -> bool {
    name.contains("password")
        || name.contains("secret")
        || name.ends_with(".key.pem")
        || name == "sasl.oauthbearer.config"
        || name == "sasl.jaas.config"
}

impl fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter().map(|(name, value)| {
                    (name, if is_secret(name) { "<redacted>" } else { value })
                }),
            )
            .finish()
    }
}

/// A TOML or environment value: text, number or boolean, kept as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl From<Scalar> for String {
    fn from(value: Scalar) -> Self {
        match value {
            Scalar::Text(text) => text,
            Scalar::Integer(n) => n.to_string(),
            Scalar::Float(x) => x.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for ClientProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
        Self::parse(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_checked() {
        let properties =
            ClientProperties::parse([("SASL_PASSWORD", "s3cret"), ("ssl.ca.location", "/ca.pem")])
                .unwrap();
        assert_eq!(properties.get("sasl.password"), Some("s3cret"));
        assert_eq!(
            ClientProperties::parse([("group.id", "x")]),
            Err(PropertyError::Reserved("group.id".into()))
        );
        assert_eq!(
            ClientProperties::parse([("ssl..ca", "x")]),
            Err(PropertyError::Name("ssl..ca".into()))
        );
        assert_eq!(
            ClientProperties::parse([("ssl.ca location", "x")]),
            Err(PropertyError::Name("ssl.ca location".into()))
        );
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let properties = ClientProperties::parse([
            ("sasl.password", "hunter2"),
            ("ssl.key.password", "hunter3"),
            ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----"),
            ("sasl.oauthbearer.client.secret", "hunter4"),
            ("sasl.username", "aigo"),
        ])
        .unwrap();
        let printed = format!("{properties:?}");
        for secret in ["hunter2", "hunter3", "hunter4", "BEGIN PRIVATE KEY"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("aigo"), "{printed}");
    }
}
