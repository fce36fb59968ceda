//! How every Kafka client a node builds is configured: the brokers, the operator's librdkafka
//! properties (TLS, SASL, tuning) and, beneath them, each client's own tunings.
//!
//! A client starts from its tunings (chosen for the dev broker, overridable), then the node's
//! settings for its role (e.g. how long its fetches wait), then the operator's properties,
//! then what the client cannot work without (its group id, manual commits, idempotence), which
//! no property may change.

mod producer;
mod properties;

pub use producer::{Deliveries, DeliveryFuture, QuietProducer};
pub use properties::{ClientProperties, PropertyError};

use rdkafka::ClientConfig;

/// The brokers and the operator's properties, shared by every client of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaClient {
    brokers: String,
    /// The node's settings for one role's clients: over the clients' own tunings, under the
    /// operator's properties.
    role_tunings: Vec<(String, String)>,
    properties: ClientProperties,
}

impl KafkaClient {
    /// Plain connections to `brokers` (`host:port,...`), no extra properties.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            role_tunings: Vec::new(),
            properties: ClientProperties::default(),
        }
    }

    /// With the operator's `properties` applied to every client.
    pub fn with_properties(mut self, properties: ClientProperties) -> Self {
        self.properties = properties;
        self
    }

    /// With `name = value` over the clients' own tunings (the operator's properties still
    /// win): how the node's settings reach the clients of one role.
    #[must_use]
    pub fn with_tuning(mut self, name: &str, value: impl ToString) -> Self {
        self.role_tunings.retain(|(n, _)| n != name);
        self.role_tunings.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    pub fn properties(&self) -> &ClientProperties {
        &self.properties
    }

    /// A client configuration: `tunings` first, the role's settings and the operator's
    /// properties over them. The caller sets what it cannot work without afterwards.
    pub fn config(&self, tunings: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (name, value) in tunings {
            config.set(*name, *value);
        }
        for (name, value) in &self.role_tunings {
            config.set(name, value);
        }
        for (name, value) in self.properties.iter() {
            config.set(name, value);
        }
        config
    }
}

impl From<&str> for KafkaClient {
    fn from(brokers: &str) -> Self {
        Self::new(brokers)
    }
}

impl From<String> for KafkaClient {
    fn from(brokers: String) -> Self {
        Self::new(brokers)
    }
}

impl From<&String> for KafkaClient {
    fn from(brokers: &String) -> Self {
        Self::new(brokers.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_properties_override_tunings_and_the_brokers_come_first() {
        let properties =
            ClientProperties::parse([("fetch.wait.max.ms", "100"), ("security.protocol", "ssl")])
                .unwrap();
        let client = KafkaClient::new("b1:9092,b2:9092").with_properties(properties);
        let config = client.config(&[("fetch.wait.max.ms", "10"), ("session.timeout.ms", "2000")]);
        assert_eq!(config.get("bootstrap.servers"), Some("b1:9092,b2:9092"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(config.get("session.timeout.ms"), Some("2000"));
        assert_eq!(config.get("security.protocol"), Some("ssl"));
    }

    #[test]
    fn role_tunings_override_the_clients_own_and_yield_to_the_operator() {
        let properties = ClientProperties::parse([("heartbeat.interval.ms", "900")]).unwrap();
        let client = KafkaClient::new("b:9092")
            .with_properties(properties)
            .with_tuning("fetch.wait.max.ms", 250)
            .with_tuning("heartbeat.interval.ms", 700)
            .with_tuning("fetch.wait.max.ms", 300);
        let config = client.config(&[
            ("fetch.wait.max.ms", "10"),
            ("heartbeat.interval.ms", "500"),
        ]);
        assert_eq!(config.get("fetch.wait.max.ms"), Some("300"));
        assert_eq!(config.get("heartbeat.interval.ms"), Some("900"));
    }
}
