//! Legal event streams for one region, generated straight from the domain (no HTTP, no event
//! store), produced to a region's events topic the way the outbox relay lays them out, read back
//! partition by partition, and folded from scratch for comparison with the projector's
//! checkpoints.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use domain::partition_for;
use domain::{
    AvailabilityCommand, AvailabilityState, CURRENT_SCHEMA_VERSION, CatalogueFacts, EventEnvelope,
    EventPayload, Lifecycle, LocalizedText, ModelCommand, ModelId, ModelState, OperationalStatus,
    ProviderId, RegionId, RegisterModel, StreamId, UpdateMetadata, WithdrawReason,
    decide_availability, decide_model, evolve_availability, evolve_model,
};
use futures::future::join_all;
use outbox_relay::{CONTENT_TYPE_HEADER, POSITION_HEADER};
use projector::{ActorId, CountSnapshot, PartitionFold, ProviderCounts, RegionCounts};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sqlx::PgPool;
use sqlx::types::chrono::{DateTime, Utc};

use super::kafka::{LONG_FETCH_WAIT, read_all_within};

const PROVIDERS: [&str; 8] = [
    "openai",
    "meta",
    "mistral",
    "anthropic",
    "google",
    "cohere",
    "qwen",
    "deepseek",
];

/// A model this region is home to, as the generator's own event store would know it.
struct OwnModel {
    id: ModelId,
    state: ModelState,
    served: AvailabilityState,
}

/// A model of another region that this region may serve (availability events only).
struct ForeignModel {
    id: ModelId,
    served: AvailabilityState,
}

/// Generates a legal history for region `region`: every event is decided by the domain against
/// the stream's current state, then folded back with `evolve_*`, exactly as the command
/// service does. Deterministic for a given seed.
pub struct Generator {
    region: RegionId,
    rng: StdRng,
    models: Vec<OwnModel>,
    /// Indices into `models` of the models not retired yet.
    live: Vec<usize>,
    foreign: Vec<ForeignModel>,
    /// Withdrawals the retirement worker would append next (retired while served).
    pending_withdrawals: VecDeque<usize>,
    position: u64,
    epoch_ms: i64,
}

impl Generator {
    pub fn new(region: &str, seed: u64) -> Self {
        let region = RegionId::parse(region).unwrap();
        let foreign = (0..40)
            .map(|n| ForeignModel {
                id: ModelId::parse(&format!("remote/foreign-{n}")).unwrap(),
                served: AvailabilityState::default(),
            })
            .collect();
        Self {
            region,
            rng: StdRng::seed_from_u64(seed),
            models: Vec::new(),
            live: Vec::new(),
            foreign,
            pending_withdrawals: VecDeque::new(),
            position: 0,
            epoch_ms: 1_780_000_000_000,
        }
    }

    pub fn region(&self) -> &RegionId {
        &self.region
    }

    /// The next `count` events of the history.
    pub fn take(&mut self, count: usize) -> Vec<EventEnvelope> {
        (0..count).map(|_| self.next_event()).collect()
    }

    /// The counts the projector must end with, recounted from the generator's model states
    /// (not from its events): registered non-retired models by lifecycle, status and provider,
    /// retired models, and the models this region serves.
    pub fn recount(&self) -> CountSnapshot {
        let mut counts = CountSnapshot::default();
        for model in &self.models {
            let record = model.state.record.as_ref().unwrap();
            if record.lifecycle == Lifecycle::Retired {
                counts.retired += 1;
                continue;
            }
            counts.total += 1;
            *counts.by_status.entry(record.status).or_default() += 1;
            let provider: &mut ProviderCounts = counts
                .by_provider
                .entry(record.provider.clone())
                .or_default();
            provider.total += 1;
            if record.lifecycle == Lifecycle::Active {
                counts.active += 1;
                provider.active += 1;
            } else {
                counts.inactive += 1;
            }
        }
        let served = self.models.iter().filter(|m| m.served.served).count()
            + self.foreign.iter().filter(|m| m.served.served).count();
        if served > 0 {
            counts.regions.insert(
                self.region.clone(),
                RegionCounts {
                    available: i64::try_from(served).unwrap(),
                },
            );
        }
        counts
    }

    /// Models registered so far (retired included).
    pub fn models(&self) -> usize {
        self.models.len()
    }

    fn next_event(&mut self) -> EventEnvelope {
        if let Some(index) = self.pending_withdrawals.pop_front() {
            let command = AvailabilityCommand::Withdraw(WithdrawReason::ModelRetired);
            if let Some(event) = self.own_availability(index, command) {
                return event;
            }
        }
        loop {
            let roll = self.rng.random_range(0..100);
            if self.live.is_empty() || roll < 7 {
                return self.register();
            }
            if roll < 11 {
                let index = self.rng.random_range(0..self.foreign.len());
                let command = if self.foreign[index].served.served {
                    AvailabilityCommand::Withdraw(WithdrawReason::Manual)
                } else {
                    AvailabilityCommand::Serve
                };
                if let Some(event) = self.foreign_availability(index, command) {
                    return event;
                }
                continue;
            }
            let index = self.live[self.rng.random_range(0..self.live.len())];
            let lifecycle = self.models[index].state.record.as_ref().unwrap().lifecycle;
            let event = match self.rng.random_range(0..100) {
                0..35 => {
                    let command = if lifecycle == Lifecycle::Active {
                        ModelCommand::Deactivate
                    } else {
                        ModelCommand::Activate
                    };
                    self.lifecycle(index, &command)
                }
                35..55 => {
                    let status = OperationalStatus::ALL[self.rng.random_range(0..3)];
                    self.lifecycle(index, &ModelCommand::SetStatus(status))
                }
                55..63 => {
                    let version = self.models[index].state.version;
                    let update = UpdateMetadata {
                        name: Some(LocalizedText::english(&format!(
                            "{} v{version}",
                            self.models[index].id
                        ))),
                        description: self.rng.random_bool(0.3).then(|| {
                            LocalizedText::english(&format!("revision {}", self.position))
                        }),
                    };
                    self.lifecycle(index, &ModelCommand::UpdateMetadata(update))
                }
                63..93 => {
                    let command = if self.models[index].served.served {
                        AvailabilityCommand::Withdraw(WithdrawReason::Manual)
                    } else {
                        AvailabilityCommand::Serve
                    };
                    self.own_availability(index, command)
                }
                _ => {
                    let retired = self.lifecycle(index, &ModelCommand::Retire);
                    if retired.is_some() {
                        self.live.retain(|i| *i != index);
                        if self.models[index].served.served {
                            self.pending_withdrawals.push_back(index);
                        }
                    }
                    retired
                }
            };
            if let Some(event) = event {
                return event;
            }
        }
    }

    fn register(&mut self) -> EventEnvelope {
        let n = self.models.len();
        let provider = PROVIDERS[self.rng.random_range(0..PROVIDERS.len())];
        let id = ModelId::parse(&format!("{provider}/model-{n}")).unwrap();
        self.models.push(OwnModel {
            id: id.clone(),
            state: ModelState::default(),
            served: AvailabilityState::default(),
        });
        self.live.push(n);
        let command = ModelCommand::Register(RegisterModel {
            id,
            provider: ProviderId::parse(provider).unwrap(),
            name: LocalizedText::english(&format!("Model {n}")),
            description: self
                .rng
                .random_bool(0.5)
                .then(|| LocalizedText::english("generated")),
            home_region: self.region.clone(),
        });
        self.lifecycle(n, &command).unwrap()
    }

    /// Decides `command` on the model's lifecycle stream; `None` if the domain refuses it.
    fn lifecycle(&mut self, index: usize, command: &ModelCommand) -> Option<EventEnvelope> {
        let model = &self.models[index];
        let mut events = decide_model(&model.state, &model.id, &self.region, command).ok()?;
        assert_eq!(events.len(), 1, "one command, one event");
        let event = events.remove(0);
        let id = model.id.clone();
        let sequence = model.state.version + 1;
        let state = std::mem::take(&mut self.models[index].state);
        self.models[index].state = evolve_model(state, &event);
        Some(self.envelope(StreamId::Model(id.clone()), sequence, id, event))
    }

    fn own_availability(
        &mut self,
        index: usize,
        command: AvailabilityCommand,
    ) -> Option<EventEnvelope> {
        let model = &self.models[index];
        let facts = model.state.record.as_ref().map(|r| CatalogueFacts {
            lifecycle: r.lifecycle,
        });
        let (id, served) = (model.id.clone(), model.served);
        let (envelope, next) = self.availability(id, served, facts, command)?;
        self.models[index].served = next;
        Some(envelope)
    }

    fn foreign_availability(
        &mut self,
        index: usize,
        command: AvailabilityCommand,
    ) -> Option<EventEnvelope> {
        let model = &self.foreign[index];
        let facts = Some(CatalogueFacts {
            lifecycle: Lifecycle::Active,
        });
        let (id, served) = (model.id.clone(), model.served);
        let (envelope, next) = self.availability(id, served, facts, command)?;
        self.foreign[index].served = next;
        Some(envelope)
    }

    /// Decides `command` on this region's availability stream of `id`; the event and the
    /// stream's next state, or `None` if the domain refuses it.
    fn availability(
        &mut self,
        id: ModelId,
        served: AvailabilityState,
        facts: Option<CatalogueFacts>,
        command: AvailabilityCommand,
    ) -> Option<(EventEnvelope, AvailabilityState)> {
        let mut events =
            decide_availability(&served, &self.region, &id, &self.region, facts, command).ok()?;
        let event = events.remove(0);
        let sequence = served.version + 1;
        let next = evolve_availability(served, &event);
        let stream = StreamId::Availability {
            region: self.region.clone(),
            model: id.clone(),
        };
        Some((self.envelope(stream, sequence, id, event), next))
    }

    fn envelope(
        &mut self,
        stream: StreamId,
        sequence: u64,
        model_id: ModelId,
        event: EventPayload,
    ) -> EventEnvelope {
        self.position += 1;
        let millis = self.epoch_ms + i64::try_from(self.position).unwrap() * 7;
        let occurred_at: DateTime<Utc> = DateTime::from_timestamp_millis(millis).unwrap();
        EventEnvelope {
            event_id: uuid::Uuid::new_v4(),
            schema_version: CURRENT_SCHEMA_VERSION,
            stream,
            sequence,
            position: self.position,
            model_id,
            origin_region: self.region.clone(),
            occurred_at,
            correlation_id: uuid::Uuid::new_v4(),
            causation_id: None,
            idempotency_key: None,
            actor: Some("admin".into()),
            event,
        }
    }
}

/// One record to produce: the outbox row's shape (key = model id, payload = encoded envelope).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub key: String,
    pub payload: Vec<u8>,
    pub position: u64,
}

impl From<&EventEnvelope> for Outgoing {
    fn from(envelope: &EventEnvelope) -> Self {
        Self {
            key: envelope.model_id.to_string(),
            payload: envelope.encode(),
            position: envelope.position,
        }
    }
}

/// An idempotent producer with `acks=all`, like the outbox relay's, tuned for bulk sends.
pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap()
}

/// Produces `records` to `topic`, each to `partition_for(key, partitions)` as the relay does,
/// and waits for every acknowledgement. Returns `(partition, offset)` of each, in order.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    records: &[Outgoing],
) -> Vec<(i32, i64)> {
    let mut delivered = Vec::with_capacity(records.len());
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    for record in records {
        let partition = partition_for(record.key.as_bytes(), partitions);
        let position = record.position.to_string();
        loop {
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: POSITION_HEADER,
                    value: Some(position.as_str()),
                })
                .insert(Header {
                    key: CONTENT_TYPE_HEADER,
                    value: Some("application/json"),
                });
            let message = FutureRecord::to(topic)
                .partition(partition)
                .key(record.key.as_str())
                .payload(record.payload.as_slice())
                .headers(headers);
            match producer.send_result(message) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    } else {
                        delivered.extend(acknowledged(&mut pending).await);
                    }
                }
                Err((error, _)) => panic!("producing to {topic}: {error}"),
            }
        }
        if pending.len() >= 20_000 {
            delivered.extend(acknowledged(&mut pending).await);
        }
    }
    delivered.extend(acknowledged(&mut pending).await);
    delivered
}

async fn acknowledged(pending: &mut Vec<DeliveryFuture>) -> Vec<(i32, i64)> {
    join_all(pending.drain(..))
        .await
        .into_iter()
        .map(|result| match result {
            Ok(Ok(delivery)) => (delivery.partition, delivery.offset),
            Ok(Err((error, _))) => panic!("a record was not delivered: {error}"),
            Err(_) => panic!("the producer dropped a delivery"),
        })
        .collect()
}

/// One record as read back from a partition.
#[derive(Debug, Clone)]
pub struct Record {
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
}

impl Record {
    pub fn outgoing(&self) -> Outgoing {
        let position = EventEnvelope::decode(&self.payload).map_or(0, |e| e.position);
        Outgoing {
            key: self.key.clone(),
            payload: self.payload.clone(),
            position,
        }
    }
}

/// Every record of every partition of `topic`, read by assignment from offset 0 (never
/// "beginning": Nisshi answers it wrongly) up to partition EOF (its high watermark can trail
/// the real end). Index = partition, records in offset order.
pub async fn read_partitions(brokers: &str, topic: &str, partitions: i32) -> Vec<Vec<Record>> {
    let mut records: Vec<Vec<Record>> = (0..partitions).map(|_| Vec::new()).collect();
    let within = Duration::from_secs(180);
    let messages = read_all_within(brokers, topic, partitions, within, LONG_FETCH_WAIT).await;
    for message in messages {
        records[usize::try_from(message.partition).unwrap()].push(Record {
            offset: message.offset,
            key: message.key.unwrap_or_default(),
            payload: message.payload,
        });
    }
    records
}

/// Folds a partition's records from scratch with a fresh fold, as a replay from offset zero.
pub fn replay(region: &RegionId, partition: i32, records: &[Record]) -> PartitionFold {
    let mut fold = PartitionFold::new(ActorId::new(region.clone(), partition));
    for record in records {
        fold.apply_bytes(record.offset, &record.payload)
            .unwrap_or_else(|e| panic!("replaying {partition}@{}: {e}", record.offset));
    }
    fold
}

/// The committed checkpoints of region `region`'s `topic`, each read back whole (head and
/// facts rows): partition -> (next offset, the fold's whole snapshot bytes).
pub async fn checkpoints(
    pool: &PgPool,
    region: &RegionId,
    topic: &str,
) -> BTreeMap<i32, (i64, Vec<u8>)> {
    projector_runtime::checkpoint::stored(pool, region, topic)
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let fold = row
                .fold
                .unwrap_or_else(|e| panic!("checkpoint of partition {}: {e}", row.partition));
            (row.partition, (row.next_offset, fold.snapshot().unwrap()))
        })
        .collect()
}

/// Committed next offsets of `topic` (partitions without a checkpoint are absent).
pub async fn next_offsets(pool: &PgPool, topic: &str) -> BTreeMap<i32, i64> {
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, next_offset FROM projector_checkpoints WHERE topic = $1")
            .bind(topic)
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().collect()
}
