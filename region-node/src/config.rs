use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;

use command_api::TokenConfig;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// Built-in defaults: a single local region on the dev services. Files and `AIGO_*`
/// variables override them (`AIGO_HTTP__LISTEN=127.0.0.1:9000`).
const DEFAULTS: &str = r#"
region = "local"
# Every region of the deployment (this one included); empty means just this one.
regions = []

[http]
listen = "127.0.0.1:8080"
# Longest a read given a consistency token waits for the projection to include it.
read_wait_ms = 5000
# Live streams (SSE) served at once; more are refused with 503.
max_streams = 512
# How often a live stream reports freshness; also its heartbeat.
stream_tick_ms = 1000
# Commands each caller (token) may send per second, and at once; past it: 429.
commands_per_second = 500
command_burst = 1000

[database]
url = "postgres://postgres@127.0.0.1:5432/aigo_local"
max_connections = 10
acquire_timeout_ms = 3000

[kafka]
brokers = "127.0.0.1:9092"
topic_prefix = "aigo"
partitions = 3
message_timeout_ms = 10000

[projector]
commit_every = 1000
commit_interval_ms = 50
heartbeat_ms = 1000
stale_after_ms = 5000
withdrawal_interval_ms = 5000
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub region: String,
    pub regions: Vec<String>,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub projector: ProjectorSettings,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorSettings {
    /// Records folded between checkpoint commits, at most.
    pub commit_every: usize,
    /// Longest a folded record waits for its checkpoint commit.
    pub commit_interval_ms: u64,
    /// How often every owned actor state is republished, traffic or not.
    pub heartbeat_ms: u64,
    /// A region not heard from for longer is reported stale.
    pub stale_after_ms: u64,
    /// How often the node looks for retired models it still serves.
    pub withdrawal_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub read_wait_ms: u64,
    pub max_streams: usize,
    pub stream_tick_ms: u64,
    pub commands_per_second: NonZeroU32,
    pub command_burst: NonZeroU32,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_password(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic_prefix: String,
    pub partitions: i32,
    pub message_timeout_ms: u64,
}

impl Settings {
    /// Defaults, then `file` if given, then `AIGO_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("AIGO_").split("__"))
            .extract()
            .map_err(Box::new)
    }

    /// Where region `region` publishes its events.
    pub fn events_topic(&self, region: &str) -> String {
        format!("{}.events.{region}", self.kafka.topic_prefix)
    }

    /// The compacted topic where every actor's counter state is exchanged.
    pub fn exchange_topic(&self) -> String {
        format!("{}.counter-states", self.kafka.topic_prefix)
    }

    /// A consumer group of this node: `role` is `projector`, `catalogue`, ...
    pub fn group(&self, role: &str) -> String {
        format!("{}.{role}.{}", self.kafka.topic_prefix, self.region)
    }

    /// Every region of the deployment, this one included, without duplicates.
    pub fn all_regions(&self) -> Vec<String> {
        let mut regions = self.regions.clone();
        regions.push(self.region.clone());
        regions.sort();
        regions.dedup();
        regions
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            let masked = if credentials.contains(':') {
                ":***"
            } else {
                ""
            };
            format!("{scheme}://{user}{masked}@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load() {
        let settings = Settings::load(None).unwrap();
        assert_eq!(settings.kafka.partitions, 3);
        assert_eq!(settings.events_topic("eu-west"), "aigo.events.eu-west");
    }

    #[test]
    fn passwords_never_reach_debug_output() {
        assert_eq!(
            redact_password("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_password("postgres://app@db/x"),
            "postgres://app@db/x"
        );
    }
}
