//! Fills a region's events topic with a synthetic but valid event history, for benchmarks:
//! `region-node replay` throughput and history-query latency (see scripts/bench-replay.sh).
//!
//! `--shape histories` (the default): each model gets a realistic stream: registered, served,
//! activated, status flaps, a rename, a deactivation and re-activation, a withdrawal and a new
//! serve; every fifth model is then withdrawn and retired, until `--events` events are written.
//!
//! `--shape catalogue --models N`: N models, each one registration (provider and status as
//! [`catalogue_provider`] and [`catalogue_status`] say) and, for four models in five (those
//! whose index is not a multiple of 5), an activation: a catalogue as the replaced platform's
//! `models` table held it (`aigo-bench sql-counts-fill` builds the same rows in SQL, see
//! scripts/bench-sql-counts.sh). `--events` is ignored.
//!
//! Event times spread evenly over `--span-days` ending now. Before producing, the same payloads
//! are folded in memory (decode + fold, no Kafka): the baseline.
//!
//! cargo run --release -p region-node --example fill_events -- \
//!     --brokers 127.0.0.1:19092 --topic bench.events.synth --region synth --events 1000000

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use clap::Parser;
use domain::partition_for;
use domain::{
    EventEnvelope, EventPayload, LocalizedText, ModelId, OperationalStatus, ProviderId, RegionId,
    StreamId, WithdrawReason,
};
use kafka_client::KafkaClient;
use outbox_relay::{Provisioning, TopicSpec, ensure_topics};
use projector::{ActorId, Replay};
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

/// What the generated log looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Shape {
    /// Long model histories (~13 events per model), `--events` events in all.
    Histories,
    /// `--models` models: a registration each, an activation for four in five.
    Catalogue,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:19092")]
    brokers: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value = "synth")]
    region: String,
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, value_enum, default_value_t = Shape::Histories)]
    shape: Shape,
    /// Models to write with `--shape catalogue`.
    #[arg(long, default_value_t = 1_000_000)]
    models: usize,
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Event times spread over this many days, ending now.
    #[arg(long, default_value_t = 30)]
    span_days: i64,
}

struct Counting {
    failed: Arc<AtomicU64>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// (stream, event) of one model's history, in order.
fn model_events(region: &RegionId, index: usize) -> anyhow::Result<Vec<(StreamId, EventPayload)>> {
    let id = ModelId::parse(&format!("synth/model-{index}"))?;
    let provider = ProviderId::parse(&format!("provider-{}", index % 40))?;
    let model = StreamId::Model(id.clone());
    let availability = StreamId::Availability {
        region: region.clone(),
        model: id.clone(),
    };
    let status = |status| EventPayload::ModelStatusChanged { status };
    let served = || EventPayload::ModelServed {
        region: region.clone(),
    };
    let withdrawn = |reason| EventPayload::ModelWithdrawn {
        region: region.clone(),
        reason,
    };
    let mut events = vec![
        (
            model.clone(),
            EventPayload::ModelRegistered {
                id,
                provider,
                home_region: region.clone(),
                name: LocalizedText::english(&format!("Model {index}")),
                description: None,
                status: OperationalStatus::Operational,
            },
        ),
        (availability.clone(), served()),
        (model.clone(), EventPayload::ModelActivated),
        (model.clone(), status(OperationalStatus::Degraded)),
        (model.clone(), status(OperationalStatus::Operational)),
        (model.clone(), EventPayload::ModelDeactivated),
        (model.clone(), EventPayload::ModelActivated),
        (availability.clone(), withdrawn(WithdrawReason::Manual)),
        (availability.clone(), served()),
        (
            model.clone(),
            EventPayload::ModelMetadataUpdated {
                name: Some(LocalizedText::english(&format!("Model {index} v2"))),
                description: None,
            },
        ),
    ];
    if index.is_multiple_of(5) {
        events.push((availability, withdrawn(WithdrawReason::ModelRetired)));
        events.push((model.clone(), EventPayload::ModelDeactivated));
        events.push((model, EventPayload::ModelRetired));
    }
    Ok(events)
}

/// Providers of the catalogue shape: 40, skewed like a real catalogue (the largest about 29 %
/// of the models, the smallest under 1 %): `floor(40 h³)` for a hash `h` in [0, 1) of the
/// index. The SQL side computes the same expression with the same float operations.
fn catalogue_provider(index: usize) -> usize {
    let hash = (index as u64).wrapping_mul(2_654_435_761) % (1 << 32);
    let h = hash as f64 / 4_294_967_296.0;
    ((40.0 * (h * h * h)).floor() as usize).min(39)
}

/// Operational status of the catalogue shape: 1 model in 50 degraded, 1 in 500 in outage.
fn catalogue_status(index: usize) -> OperationalStatus {
    if index % 500 == 3 {
        OperationalStatus::Outage
    } else if index % 50 == 7 {
        OperationalStatus::Degraded
    } else {
        OperationalStatus::Operational
    }
}

/// The catalogue shape's events for one model: its registration and, unless its index is a
/// multiple of 5, its activation.
fn catalogue_events(
    region: &RegionId,
    index: usize,
) -> anyhow::Result<Vec<(StreamId, EventPayload)>> {
    let id = ModelId::parse(&format!("synth/model-{index}"))?;
    let provider = ProviderId::parse(&format!("provider-{:02}", catalogue_provider(index)))?;
    let model = StreamId::Model(id.clone());
    let mut events = vec![(
        model.clone(),
        EventPayload::ModelRegistered {
            id,
            provider,
            home_region: region.clone(),
            name: LocalizedText::english(&format!("Model {index}")),
            description: None,
            status: catalogue_status(index),
        },
    )];
    if !index.is_multiple_of(5) {
        events.push((model, EventPayload::ModelActivated));
    }
    Ok(events)
}

/// (partition, key, payload) of every event, in log order.
fn generate(args: &Args, region: &RegionId) -> anyhow::Result<Vec<(i32, String, Vec<u8>)>> {
    let (planned, models) = match args.shape {
        Shape::Histories => (args.events, usize::MAX),
        // A registration per model, an activation for four in five.
        Shape::Catalogue => (2 * args.models - args.models.div_ceil(5), args.models),
    };
    let end = Utc::now();
    let span = TimeDelta::days(args.span_days);
    let step_nanos = span.num_nanoseconds().unwrap_or(i64::MAX) / (planned.max(1) as i64);
    let start = end - span;
    let mut out = Vec::with_capacity(planned);
    let mut model = 0;
    let correlation = uuid::Uuid::now_v7();
    while model < models && (args.shape == Shape::Catalogue || out.len() < args.events) {
        let events = match args.shape {
            Shape::Histories => model_events(region, model)?,
            Shape::Catalogue => catalogue_events(region, model)?,
        };
        let key = format!("synth/model-{model}");
        let partition = partition_for(key.as_bytes(), args.partitions);
        let mut sequences = std::collections::HashMap::new();
        let room = match args.shape {
            Shape::Histories => args.events - out.len(),
            Shape::Catalogue => usize::MAX,
        };
        for (stream, event) in events.into_iter().take(room) {
            let position = out.len() as u64 + 1;
            let sequence = sequences.entry(stream.to_string()).or_insert(0_u64);
            *sequence += 1;
            let envelope = EventEnvelope {
                event_id: uuid::Uuid::now_v7(),
                schema_version: domain::CURRENT_SCHEMA_VERSION,
                model_id: stream.model_id().clone(),
                stream,
                sequence: *sequence,
                position,
                origin_region: region.clone(),
                occurred_at: start
                    + TimeDelta::nanoseconds(step_nanos.saturating_mul(position as i64)),
                correlation_id: correlation,
                causation_id: None,
                idempotency_key: None,
                actor: Some("bench".into()),
                event,
            };
            out.push((partition, key.clone(), envelope.encode()));
        }
        model += 1;
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let region = RegionId::parse(&args.region)?;
    let records = generate(&args, &region)?;

    // Baseline: decode + fold of the same payloads, in memory, one thread.
    let started = Instant::now();
    let mut replay = Replay::new();
    for (offset, (partition, _, payload)) in records.iter().enumerate() {
        let actor = ActorId::new(region.clone(), *partition);
        replay.apply_bytes(&actor, offset as i64, payload)?;
    }
    let elapsed = started.elapsed();
    let totals = replay.totals();
    println!(
        "baseline (no Kafka): folded {} events in {:.2?}: {:.0} events/s; total {} active {} retired {}",
        records.len(),
        elapsed,
        records.len() as f64 / elapsed.as_secs_f64(),
        totals.total,
        totals.active,
        totals.retired
    );

    ensure_topics(
        &KafkaClient::new(args.brokers.clone()),
        &[TopicSpec::new(args.topic.clone(), args.partitions).events()],
        Duration::from_secs(10),
        Provisioning::Create,
    )
    .await?;
    let failed = Arc::new(AtomicU64::new(0));
    let producer: BaseProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "50")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("acks", "1")
        .create_with_context(Counting {
            failed: failed.clone(),
        })
        .context("producer")?;
    let started = Instant::now();
    for (partition, key, payload) in &records {
        let mut record = BaseRecord::to(&args.topic)
            .partition(*partition)
            .key(key.as_str())
            .payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((error, _)) => return Err(error).context("producing"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(300))
        .context("flushing")?;
    let elapsed = started.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "produced {} events to {} ({} partitions) in {:.2?}: {:.0} events/s, {failed} failed",
        records.len(),
        args.topic,
        args.partitions,
        elapsed,
        records.len() as f64 / elapsed.as_secs_f64()
    );
    anyhow::ensure!(failed == 0, "{failed} deliveries failed");
    Ok(())
}
