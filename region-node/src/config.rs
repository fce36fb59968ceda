//! The node's settings: a TOML file overridden by `AIGO_` environment variables, validated at start.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use command_api::TokenConfig;
use domain::{ProviderId, RegionId};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use kafka_client::{ClientProperties, KafkaClient};
use outbox_relay::Provisioning;
use projector_runtime::doze::IdlePolicy;
use projector_runtime::undecodable::UndecodablePolicy;
use serde::{Deserialize, Deserializer};

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
# Live streams one client address may hold; more are refused with 429 (0: no cap). Behind a
# proxy every client has the proxy's address: raise it, or cap per client at the proxy.
max_streams_per_client = 16
# A connection whose written data the client does not take for this long is closed (a live
# stream whose client stopped reading gives back its slot).
write_timeout_ms = 30000
# On a stop (SIGTERM), the node's tasks and the requests in flight get this long to finish, then
# are cut (clients re-send with their idempotency keys). Keep it below the orchestrator's grace
# (Kubernetes: 30 s).
shutdown_grace_ms = 10000
# How often a live stream reports freshness; also its heartbeat.
stream_tick_ms = 1000
# History reads (?at=, series, a model's history) run at once, and started per second; more
# are refused with 503 and Retry-After (the write path keeps the machine).
max_history_reads = 4
history_reads_per_second = 50
# Commands each caller (token) may send per second, and at once; past it: 429.
commands_per_second = 500
command_burst = 1000
# Browser origins allowed to call the API from other sites (CORS), e.g.
# ["https://dash.example.com"]; "*" allows any. Empty: no CORS headers (same-origin only).
cors_allow_origins = []

[database]
url = "postgres://postgres@127.0.0.1:5432/aigo_local"
# The write side: commands, outbox relay, projector checkpoints, catalogue follower.
max_connections = 10
acquire_timeout_ms = 3000
# The read side has a pool of its own, so no read load can take the write side's connections;
# a read statement running longer than this is cancelled (503 read-timeout).
read_max_connections = 10
read_statement_timeout_ms = 5000
# `serve` applies pending migrations at start. In production set it false and run
# `region-node migrate` first (a job, an init container): `serve` then refuses to start on a
# database whose migrations are behind the binary's.
migrate_on_start = true
# Group commit: concurrent commands' appends share one transaction, at most this many each
# (1 commits every command alone).
group_commit_max = 512

[kafka]
brokers = "127.0.0.1:9092"
topic_prefix = "aigo"
# Partitions of every region's events topic: fixed for the deployment's life (a model's
# partition is its id's hash modulo this).
partitions = 3
message_timeout_ms = 10000
# Create missing topics at start. False where an operator provisions them: the node then only
# checks them. Either way an events topic with another partition count or a finite retention
# stops `serve` with the topic and setting named.
create_topics = true
# When the relay finds its region's topic empty from offset 0 although rows were published to
# it (the topic was lost and created again: a broker that keeps topics in memory restarted),
# it sends the region's whole history again from the event store, as `region-node republish`.
republish_lost_topics = true
# Replicas of the topics the node creates (-1: the broker's default.replication.factor), and
# min.insync.replicas set on them (0: the broker's default).
replication_factor = -1
min_insync_replicas = 0
# How long a consumer's fetch may wait at the broker for new records (librdkafka
# fetch.wait.max.ms), per role. Nisshi 0.7 answers a waiting fetch only at checkpoints (after
# half the wait, three quarters, ...): a record can wait up to half of it, and an idle node
# asks the broker more often the shorter it is (10 ms: the idle demo's broker uses a whole
# core; see docs/BROKER.md, "Polling and idle CPU"). Kafka answers as soon as a record
# arrives: there, 500 costs no latency. The projector and the state exchange carry every count
# to the other regions:
fetch_wait_ms = 50
# The catalogue follower: the change feed (`change` events) and other regions' models.
catalogue_fetch_wait_ms = 50
# A projector or catalogue follower more than 2,000 records behind reads with this fetch wait
# instead, through a second consumer, until it is within 200 of the end: on Nisshi's sqlite
# engine a short wait also cuts every answer short (about 2,400 records/s at 50 ms, 15-28k/s at
# 500-2,000 ms; docs/BROKER.md). 0: one consumer, always the short wait.
catch_up_fetch_wait_ms = 1000
# Under load a tail reader fetches again as soon as an answer arrives, a few records at a
# time, and Nisshi answers each fetch with several rounds of SQL per partition named: the
# broker spends its cores on fetches that carry almost nothing (docs/BROKER.md, "Fewer,
# fuller fetches"). A projector, catalogue follower or state exchange consumer that just got
# records of a partition waits this long before fetching it again (librdkafka
# queued.min.messages = 1 and fetch.queue.backoff.ms). It costs at most this much latency, and
# only while records keep coming; 0: fetch again at once.
tail_fetch_pause_ms = 50
# An idle node does not poll. A caught-up projector or catalogue follower that read nothing
# for `idle_after_ms` stops fetching until told records arrived: the projector by its region's
# relay (NOTIFY relayed), the follower by the actor states the node merges. It looks anyway
# every `idle_look_ms`, in case a wake-up was lost. 0 disables it (readers always fetch).
idle_after_ms = 1000
idle_look_ms = 10000
# The state exchange always reads with this fetch wait, and with `fetch_wait_ms` only while
# the node's merged counts change (for `idle_after_ms` after each change): on Nisshi the first
# change after a quiet spell reaches the other regions within about half of it.
idle_fetch_wait_ms = 250

# librdkafka properties applied to every Kafka client the node builds (producers, consumers,
# admin), over the node's own tunings (fetch.wait.max.ms, max.partition.fetch.bytes, ...), e.g.
#   "security.protocol" = "SASL_SSL"
#   "sasl.mechanism" = "SCRAM-SHA-512"
#   "sasl.username" = "aigo-eu-west"
#   "ssl.ca.location" = "/etc/aigo/kafka-ca.pem"
# Secrets are best given as variables, dots written as underscores:
# AIGO_KAFKA__CLIENT__SASL_PASSWORD. Secret values never appear in logs.
[kafka.client]

[ownership]
# Which region registers the models of a provider: { openai = "us-east" }. Every other id is
# registered by the region that rendezvous hashing of the id picks among `regions`. Must be
# the same on every node of the deployment (the node logs its fingerprint at start).
providers = {}

[projector]
# A checkpoint (the fold's head and the facts rows of the streams that changed) is committed
# after this many records or this long after the first uncommitted one. While the node catches
# up (before it is ready), 100 times as many records or at least a second.
commit_every = 1000
commit_interval_ms = 50
heartbeat_ms = 1000
stale_after_ms = 5000
withdrawal_interval_ms = 5000
# A record on an events topic that this build cannot decode (malformed, or a newer schema):
# "fail" stops the projector / catalogue follower before it (node unready, record named);
# "dead-letter" copies it to <topic_prefix>.dead-letter and skips it.
undecodable = "fail"

[history]
# Keep the history index (one indexer per database): `?at=` and series read a block per actor
# and instant instead of replaying the whole event log. Off: every history read replays.
index = true
# Events per block: an instant's answer folds at most this many of each actor's events.
block_events = 64
# The indexer saves each actor's fold after this many events, to resume from after a restart
# (its head and the facts that changed since the last save): a restart folds at most about this
# many of each actor's events again.
fold_every_events = 4096
# A history read waits this long for the index to hold every logged event (it catches up after
# a restart or a burst), then replays the log instead if it holds at most `replay_limit_events`
# events (a replay reads all of them: ~0.3 s at 100,000, ~3.6 s at a million); beyond that the
# read is refused with 503 index-catching-up.
index_wait_ms = 2000
replay_limit_events = 100000
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub region: RegionId,
    pub regions: Vec<RegionId>,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub projector: ProjectorSettings,
    pub history: HistorySettings,
    pub ownership: OwnershipSettings,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    pub index: bool,
    pub block_events: NonZeroUsize,
    pub fold_every_events: u64,
    #[serde(rename = "index_wait_ms", deserialize_with = "millis")]
    pub index_wait: Duration,
    pub replay_limit_events: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnershipSettings {
    /// Provider slug → the region that registers its models.
    pub providers: std::collections::BTreeMap<ProviderId, RegionId>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorSettings {
    /// Records folded between checkpoint commits, at most.
    pub commit_every: usize,
    /// Longest a folded record waits for its checkpoint commit.
    #[serde(rename = "commit_interval_ms", deserialize_with = "millis")]
    pub commit_interval: Duration,
    /// How often every owned actor state is republished, traffic or not.
    #[serde(rename = "heartbeat_ms", deserialize_with = "millis")]
    pub heartbeat: Duration,
    /// A region not heard from for longer is reported stale.
    #[serde(rename = "stale_after_ms", deserialize_with = "millis")]
    pub stale_after: Duration,
    /// How often the node looks for retired models it still serves.
    #[serde(rename = "withdrawal_interval_ms", deserialize_with = "millis")]
    pub withdrawal_interval: Duration,
    /// What the projector and the catalogue follower do with an undecodable record.
    pub undecodable: UndecodablePolicy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    #[serde(rename = "read_wait_ms", deserialize_with = "millis")]
    pub read_wait: Duration,
    pub max_streams: usize,
    pub max_streams_per_client: usize,
    #[serde(rename = "write_timeout_ms", deserialize_with = "millis")]
    pub write_timeout: Duration,
    #[serde(rename = "shutdown_grace_ms", deserialize_with = "millis")]
    pub shutdown_grace: Duration,
    pub max_history_reads: NonZeroUsize,
    pub history_reads_per_second: NonZeroU32,
    #[serde(rename = "stream_tick_ms", deserialize_with = "millis")]
    pub stream_tick: Duration,
    pub commands_per_second: NonZeroU32,
    pub command_burst: NonZeroU32,
    pub cors_allow_origins: Vec<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    #[serde(rename = "acquire_timeout_ms", deserialize_with = "millis")]
    pub acquire_timeout: Duration,
    /// The read side's pool.
    pub read_max_connections: u32,
    #[serde(rename = "read_statement_timeout_ms", deserialize_with = "millis")]
    pub read_statement_timeout: Duration,
    pub migrate_on_start: bool,
    pub group_commit_max: NonZeroUsize,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_password(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("read_max_connections", &self.read_max_connections)
            .field("read_statement_timeout", &self.read_statement_timeout)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("group_commit_max", &self.group_commit_max)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic_prefix: String,
    pub partitions: i32,
    #[serde(rename = "message_timeout_ms", deserialize_with = "millis")]
    pub message_timeout: Duration,
    pub create_topics: bool,
    /// The relay refills its region's topic from the event store when it finds the topic
    /// created again (empty, though rows were published to it).
    pub republish_lost_topics: bool,
    pub replication_factor: i32,
    pub min_insync_replicas: i32,
    /// `fetch.wait.max.ms` of the projector's and the state exchange's consumers.
    #[serde(rename = "fetch_wait_ms", deserialize_with = "millis")]
    pub fetch_wait: Duration,
    /// `fetch.wait.max.ms` of the catalogue follower's consumer.
    #[serde(rename = "catalogue_fetch_wait_ms", deserialize_with = "millis")]
    pub catalogue_fetch_wait: Duration,
    /// `fetch.wait.max.ms` of a projector's or follower's consumer while it is far behind
    /// (zero: no such consumer).
    #[serde(rename = "catch_up_fetch_wait_ms", deserialize_with = "millis")]
    pub catch_up_fetch_wait: Duration,
    /// How long a tail reader waits before fetching a partition that just gave it records
    /// (zero: at once).
    #[serde(rename = "tail_fetch_pause_ms", deserialize_with = "millis")]
    pub tail_fetch_pause: Duration,
    /// A projector or follower that read nothing this long stops fetching (zero: never).
    #[serde(rename = "idle_after_ms", deserialize_with = "millis")]
    pub idle_after: Duration,
    /// ...and looks anyway this often.
    #[serde(rename = "idle_look_ms", deserialize_with = "millis")]
    pub idle_look: Duration,
    /// The fetch wait of the state exchange's consumer that always reads.
    #[serde(rename = "idle_fetch_wait_ms", deserialize_with = "millis")]
    pub idle_fetch_wait: Duration,
    /// A variable (`sasl_password`) and a file key (`sasl.password`) name the same property;
    /// the variable's wins (it sorts after the dotted name).
    #[serde(default)]
    pub client: ClientProperties,
}

impl KafkaSettings {
    /// The brokers and client properties every Kafka client of the node is built with.
    pub fn client(&self) -> KafkaClient {
        KafkaClient::new(self.brokers.clone()).with_properties(self.client.clone())
    }

    /// The clients of the projector and the state exchange: their fetches wait
    /// `fetch_wait_ms`, and pause `tail_fetch_pause_ms` after records.
    pub fn live_client(&self) -> KafkaClient {
        self.tail_paused(self.client())
            .with_tuning("fetch.wait.max.ms", self.fetch_wait.as_millis())
    }

    /// The catalogue follower's clients: their fetches wait `catalogue_fetch_wait_ms`, and
    /// pause `tail_fetch_pause_ms` after records.
    pub fn catalogue_client(&self) -> KafkaClient {
        self.tail_paused(self.client())
            .with_tuning("fetch.wait.max.ms", self.catalogue_fetch_wait.as_millis())
    }

    /// `client` fetching a partition again only once the records it queued were taken and
    /// `tail_fetch_pause_ms` passed: librdkafka backs a partition off for
    /// `fetch.queue.backoff.ms` whenever its queue holds `queued.min.messages`.
    fn tail_paused(&self, client: KafkaClient) -> KafkaClient {
        if self.tail_fetch_pause.is_zero() {
            return client;
        }
        client
            .with_tuning("queued.min.messages", 1)
            .with_tuning("fetch.queue.backoff.ms", self.tail_fetch_pause.as_millis())
    }

    /// The client of a projector's or follower's consumer while it is far behind, if any:
    /// its fetches wait `catch_up_fetch_wait_ms`.
    pub fn catch_up_client(&self) -> Option<KafkaClient> {
        (!self.catch_up_fetch_wait.is_zero()).then(|| {
            self.client()
                .with_tuning("fetch.wait.max.ms", self.catch_up_fetch_wait.as_millis())
        })
    }

    /// When the projector and the catalogue follower stop fetching.
    pub fn idle_policy(&self) -> IdlePolicy {
        IdlePolicy {
            after: self.idle_after,
            look_every: self.idle_look,
        }
    }

    /// Whether the node creates missing topics or only checks them.
    pub fn provisioning(&self) -> Provisioning {
        if self.create_topics {
            Provisioning::Create
        } else {
            Provisioning::CheckOnly
        }
    }
}

impl Settings {
    /// Defaults, then `file` if given, then `AIGO_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            // `AIGO_CONFIG` and `AIGO_LOG_FORMAT` are the command line's (clap), not settings.
            .merge(
                Env::prefixed("AIGO_")
                    .ignore(&["config", "log_format"])
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)
    }

    /// Where region `region` publishes its events.
    pub fn events_topic(&self, region: impl fmt::Display) -> String {
        format!("{}.events.{region}", self.kafka.topic_prefix)
    }

    /// The compacted topic where every actor's counter state is exchanged.
    pub fn exchange_topic(&self) -> String {
        format!("{}.counter-states", self.kafka.topic_prefix)
    }

    /// Where undecodable records are copied under `projector.undecodable = "dead-letter"`.
    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dead-letter", self.kafka.topic_prefix)
    }

    /// A consumer group of this node: `role` is `projector`, `catalogue`, ...
    pub fn group(&self, role: &str) -> String {
        format!("{}.{role}.{}", self.kafka.topic_prefix, self.region)
    }

    /// Who may register which model id, from `regions` and `ownership.providers`.
    pub fn ownership(&self) -> Result<domain::Ownership, domain::ValidationError> {
        domain::Ownership::new(self.all_regions(), self.ownership.providers.clone())
    }

    /// Every region of the deployment, this one included, without duplicates.
    pub fn all_regions(&self) -> Vec<RegionId> {
        let mut regions = self.regions.clone();
        regions.push(self.region.clone());
        regions.sort();
        regions.dedup();
        regions
    }
}

/// A duration written in milliseconds (the `_ms` settings).
fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
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
        assert_eq!(settings.projector.undecodable, UndecodablePolicy::Fail);
        assert_eq!(settings.dead_letter_topic(), "aigo.dead-letter");
    }

    #[test]
    fn tail_readers_pause_after_records_and_catching_up_ones_do_not() {
        let settings = Settings::load(None).unwrap();
        for client in [
            settings.kafka.live_client(),
            settings.kafka.catalogue_client(),
        ] {
            let config = client.config(&[]);
            assert_eq!(config.get("queued.min.messages"), Some("1"));
            assert_eq!(config.get("fetch.queue.backoff.ms"), Some("50"));
        }
        let catch_up = settings.kafka.catch_up_client().unwrap().config(&[]);
        assert_eq!(catch_up.get("queued.min.messages"), None);

        let off: Settings = Figment::from(Toml::string(DEFAULTS))
            .merge(Toml::string("[kafka]\ntail_fetch_pause_ms = 0\n"))
            .extract()
            .unwrap();
        let config = off.kafka.live_client().config(&[]);
        assert_eq!(config.get("queued.min.messages"), None);
        assert_eq!(config.get("fetch.queue.backoff.ms"), None);
    }

    #[test]
    fn the_undecodable_policy_is_configurable() {
        let settings: Settings = Figment::from(Toml::string(DEFAULTS))
            .merge(Toml::string("[projector]\nundecodable = \"dead-letter\"\n"))
            .extract()
            .unwrap();
        assert_eq!(
            settings.projector.undecodable,
            UndecodablePolicy::DeadLetter
        );
        assert!(
            Figment::from(Toml::string(DEFAULTS))
                .merge(Toml::string("[projector]\nundecodable = \"skip\"\n"))
                .extract::<Settings>()
                .is_err()
        );
    }

    #[test]
    fn regions_and_durations_are_typed_when_loaded() {
        let settings: Settings = Figment::from(Toml::string(DEFAULTS))
            .merge(Toml::string(
                "region = \"eu-west\"\nregions = [\"us-east\"]\n[http]\nread_wait_ms = 250\n",
            ))
            .extract()
            .unwrap();
        assert_eq!(settings.region.as_str(), "eu-west");
        assert_eq!(settings.http.read_wait, Duration::from_millis(250));
        let all = settings.all_regions();
        let names: Vec<&str> = all.iter().map(RegionId::as_str).collect();
        assert_eq!(names, ["eu-west", "us-east"]);
        let error = Figment::from(Toml::string(DEFAULTS))
            .merge(Toml::string("regions = [\"EU West\"]\n"))
            .extract::<Settings>()
            .unwrap_err();
        assert!(error.to_string().contains("regions"), "{error}");
    }

    #[test]
    fn kafka_client_properties_come_from_the_file_and_the_environment() {
        let settings: Settings = Figment::from(Toml::string(DEFAULTS))
            .merge(Toml::string(
                "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.password\" = \"from-file\"\n\"fetch.wait.max.ms\" = 50\n",
            ))
            .merge(figment::providers::Serialized::default(
                "kafka.client.sasl_password",
                "from-env",
            ))
            .extract()
            .unwrap();
        let client = settings.kafka.client();
        let properties = client.properties();
        assert_eq!(properties.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(properties.get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(properties.get("sasl.password"), Some("from-env"));
        assert!(!format!("{settings:?}").contains("from-env"));
        let reserved = Figment::from(Toml::string(DEFAULTS))
            .merge(Toml::string("[kafka.client]\n\"group.id\" = \"mine\"\n"))
            .extract::<Settings>()
            .unwrap_err();
        assert!(reserved.to_string().contains("group.id"), "{reserved}");
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail's own error type")]
    fn the_command_lines_variables_are_not_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AIGO_CONFIG", "/etc/aigo/node.toml");
            jail.set_env("AIGO_LOG_FORMAT", "json");
            jail.set_env("AIGO_HTTP__LISTEN", "127.0.0.1:9999");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(settings.http.listen.port(), 9999);
            Ok(())
        });
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
