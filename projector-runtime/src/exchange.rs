//! Counter-state exchange between regions: every actor's latest state on one compacted topic,
//! keyed by actor. Each node publishes its own actors' states after every checkpoint commit and
//! merges the states of the other regions' actors it reads, so all nodes converge on the same
//! totals.
//!
//! Trust (see [`projector::trust`]): a state read from the topic is merged only if it is of an
//! actor of another region of the deployment, not older than what is merged, and plausible
//! (counters within its offsets, offsets within its region topic's end); every refusal is
//! counted in `exchange_states_refused_total{reason, source}` and logged at warn once per actor
//! and reason. The node's own region's actors come from its own projector and its region's
//! checkpoints, re-read every `refresh` (other processes of the region fold other partitions).
//!
//! The way back is the epoch: `region-node reset-states` publishes an [`EpochMark`] (and records
//! it in its node's database). A node that sees a newer epoch, in a mark, in an accepted state
//! or in its database, drops every merged state of older epochs (in memory and saved), rebuilds
//! its region's actors from checkpoints and republishes them in the new epoch; older states
//! are refused from then on. Checkpoints are untouched, so nothing is lost; a forged epoch can
//! only force such a rebuild, never change a count.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::RegionId;
use event_store::ReadPoint;
use kafka_client::{KafkaClient, QuietProducer};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tracing::{debug, info, warn};

use crate::batch;
use crate::checkpoint;
use crate::doze::IdlePolicy;
use crate::exchange_readers::ExchangeReaders;
use crate::known_states;
use projector::Projection;
use projector::trust::{self, Refusal, TrustRules};
use projector::{ActorState, EPOCH_MARK_KEY, EpochMark, GlobalView};

/// The exchange topic has one partition: a handful of actors, read whole by every node.
pub const EXCHANGE_PARTITIONS: i32 = 1;

/// Distinct (actor, reason) pairs warned about; later refusals are logged at debug. Bounded, so
/// forged actor ids cannot grow it without end.
const WARNED_CAPACITY: usize = 4096;

/// How long fetching a region topic's high watermark may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// Publishes actor states; delivery failures are logged, the next commit publishes again.
///
/// Not an idempotent producer, on purpose: states are CRDTs, so a duplicate or reordered state
/// changes nothing when merged, and Nisshi's sqlite engine fails idempotent produce requests
/// under load (`producer_select_for_update` misuse) and after restarts. A [`QuietProducer`]:
/// rdkafka's `FutureProducer` spins ~1 % of a core while idle.
#[derive(Clone)]
pub struct StatePublisher {
    producer: QuietProducer,
    topic: String,
    /// Whose epoch published states are stamped with (none: as they are).
    epoch_of: Option<Projection>,
}

impl std::fmt::Debug for StatePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatePublisher")
            .field("topic", &self.topic)
            .finish()
    }
}

impl StatePublisher {
    pub fn new(kafka: &KafkaClient, topic: impl Into<String>) -> Result<Self, KafkaError> {
        let mut config = kafka.config(&[("linger.ms", "1"), ("message.timeout.ms", "10000")]);
        // States are CRDTs, duplicates are harmless; Nisshi's idempotent producer stalls
        // after a broker restart (docs/BROKER.md).
        config.set("enable.idempotence", "false").set("acks", "all");
        let producer = QuietProducer::create(&config)?;
        Ok(Self {
            producer,
            topic: topic.into(),
            epoch_of: None,
        })
    }

    /// Stamps every published state with `projection`'s current epoch.
    #[must_use]
    pub fn with_epoch_of(mut self, projection: &Projection) -> Self {
        self.epoch_of = Some(projection.clone());
        self
    }

    pub fn publish(&self, state: &ActorState) {
        let stamped;
        let state = match &self.epoch_of {
            Some(projection) => {
                stamped = state.clone().with_epoch(projection.epoch());
                &stamped
            }
            None => state,
        };
        let bytes = match state.encode() {
            Ok(bytes) => bytes,
            Err(error) => {
                warn!(%error, actor = %state.actor(), "cannot encode actor state");
                return;
            }
        };
        let key = state.actor().to_string();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&bytes);
        match self.producer.send_result(record) {
            Ok(delivery) => {
                tokio::spawn(async move {
                    if let Ok(Err((error, _))) = delivery.await {
                        warn!(%error, actor = key, "actor state not delivered; the next commit resends");
                    }
                });
            }
            Err((error, _)) => warn!(%error, actor = key, "actor state not queued"),
        }
    }

    /// Publishes an epoch mark and waits until the broker has it.
    pub async fn announce_epoch(&self, epoch: u64) -> Result<(), ExchangeError> {
        let bytes = EpochMark { epoch }.encode()?;
        let record = FutureRecord::to(&self.topic)
            .key(EPOCH_MARK_KEY)
            .payload(&bytes);
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(error, _)| ExchangeError::Kafka(error))?;
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((error, _))) => Err(ExchangeError::Kafka(error)),
            Err(_canceled) => Err(ExchangeError::Kafka(KafkaError::Canceled)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Codec(#[from] projector::CodecError),
}

/// Where the exchange runs and whom it trusts.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    pub kafka: KafkaClient,
    pub topic: String,
    /// Never committed; unique per process.
    pub group: String,
    /// This node's region.
    pub region: RegionId,
    /// Every region of the deployment (this one included) and its events topic.
    pub region_topics: BTreeMap<RegionId, String>,
    /// Partitions of every region topic.
    pub partitions: i32,
    /// How often the region's checkpoints and the recorded epoch are re-read.
    pub refresh: Duration,
    /// When the short-wait consumer stops (the view has not changed for `idle.after`).
    pub idle: IdlePolicy,
    /// The fetch wait of the consumer that always reads ([`crate::exchange_readers`]).
    pub idle_fetch_wait: Duration,
}

impl ExchangeConfig {
    pub fn rules(&self) -> TrustRules {
        TrustRules::new(
            self.region.clone(),
            self.region_topics.keys().cloned(),
            self.partitions,
        )
    }
}

/// States merged per batch at most, and how long a batch waits for one more.
const BATCH_MAX: usize = 256;
const BATCH_LINGER: Duration = Duration::from_millis(1);

/// Reads the exchange topic from its end, forever, merging the states the trust rules accept
/// into `projection`, and keeps the region's own actors current from its checkpoints.
pub async fn run_exchange(
    config: ExchangeConfig,
    pool: PgPool,
    projection: Projection,
    publisher: StatePublisher,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KafkaError> {
    let readers = ExchangeReaders::new(&config)?;
    let mut changes = projection.subscribe();
    let mut exchange = Exchange {
        rules: config.rules(),
        own: OwnRegion::new(&config, pool, projection.epoch()),
        log_ends: LogEnds::new(&config)?,
        projection,
        publisher,
        warned: HashSet::new(),
    };
    exchange
        .own
        .refresh(&exchange.projection, &exchange.publisher)
        .await;
    metrics::gauge!("exchange_epoch").set(exchange.projection.epoch() as f64);
    info!(topic = %config.topic, epoch = exchange.projection.epoch(), "state exchange started");
    let mut tick = tokio::time::interval(config.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (received, which) = tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            _ = tick.tick() => {
                exchange.refresh_own().await;
                readers.idle();
                continue;
            }
            // Any change, this node's own included: the other regions are likely to follow.
            _ = changes.recv() => {
                readers.stir();
                continue;
            }
            received = readers.recv() => received,
        };
        let consumer = readers.consumer(which);
        let first = match received {
            Ok(message) => message,
            Err(error) => {
                warn!(%error, "state exchange: consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let batch = batch::fill(consumer, first, BATCH_MAX, BATCH_LINGER).await;
        let mut states = Vec::with_capacity(batch.len());
        let mut marks = Vec::new();
        for message in &batch {
            let Some(payload) = message.payload() else {
                continue;
            };
            if EpochMark::is_mark(payload) {
                match EpochMark::decode(payload) {
                    Ok(mark) => marks.push(mark),
                    Err(error) => {
                        warn!(%error, offset = message.offset(), "undecodable epoch mark")
                    }
                }
                continue;
            }
            match ActorState::decode(payload) {
                Ok(state) => states.push(state),
                Err(error) => warn!(%error, offset = message.offset(), "undecodable actor state"),
            }
        }
        for mark in marks {
            exchange.follow_mark(mark).await;
        }
        exchange.admit(states).await;
    }
}

/// The exchange loop's state.
struct Exchange {
    rules: TrustRules,
    own: OwnRegion,
    log_ends: LogEnds,
    projection: Projection,
    publisher: StatePublisher,
    warned: HashSet<(String, &'static str)>,
}

impl Exchange {
    async fn follow_mark(&mut self, mark: EpochMark) {
        let current = self.projection.epoch();
        if let Err(refusal) = trust::check_epoch_step(current, mark.epoch) {
            self.refuse("epoch mark", &refusal);
            return;
        }
        if self.projection.enter_epoch(mark.epoch).await {
            info!(
                epoch = mark.epoch,
                "exchange epoch mark: moving to the new epoch"
            );
            self.refresh_own().await;
        }
    }

    async fn admit(&mut self, states: Vec<ActorState>) {
        let before = self.projection.epoch();
        let mut judged = Vec::with_capacity(states.len());
        for state in states {
            let region = &state.actor().region;
            let topic = self
                .own
                .region_topics
                .get(region)
                .filter(|_| self.rules.is_foreign_member(region))
                .cloned();
            if let Some(topic) = topic
                && let Err(refusal) = self.log_ends.check(&topic, &state).await
            {
                self.refuse(state.actor(), &refusal);
                continue;
            }
            judged.push(state);
        }
        let received: Vec<(String, RegionId)> = judged
            .iter()
            .map(|s| (s.actor().to_string(), s.actor().region.clone()))
            .collect();
        let refused = self.projection.admit(judged, &self.rules).await;
        // An own-region state the view lacks may be a sibling process's newer commit: read the
        // checkpoints again before calling it a refusal. It is never taken from the topic.
        let (own, mut other): (Vec<_>, Vec<_>) = refused
            .into_iter()
            .partition(|(_, refusal)| *refusal == Refusal::OwnRegion);
        if !own.is_empty() {
            self.own.refresh(&self.projection, &self.publisher).await;
            let again = own.into_iter().map(|(state, _)| state);
            other.extend(self.projection.admit(again, &self.rules).await);
        }
        let refused_actors: HashSet<String> =
            other.iter().map(|(s, _)| s.actor().to_string()).collect();
        for (state, refusal) in &other {
            self.refuse(state.actor(), refusal);
        }
        let now = chrono::Utc::now().timestamp() as f64;
        for (actor, region) in received {
            if !refused_actors.contains(&actor) && self.own.region_topics.contains_key(&region) {
                metrics::gauge!("exchange_last_state_received_seconds", "actor" => actor).set(now);
            }
        }
        if self.projection.epoch() > before {
            info!(
                epoch = self.projection.epoch(),
                "a state of a newer exchange epoch: moving to it"
            );
            self.refresh_own().await;
        }
    }

    /// Re-reads the region's checkpoints and the recorded epoch; rebuilds after an epoch move.
    async fn refresh_own(&mut self) {
        self.own.refresh(&self.projection, &self.publisher).await;
    }

    fn refuse(&mut self, subject: &(impl Display + ?Sized), refusal: &Refusal) {
        let key = (subject.to_string(), refusal.reason());
        let first = !self.warned.contains(&key) && self.warned.len() < WARNED_CAPACITY;
        if first {
            self.warned.insert(key);
        }
        count_refusal("topic", subject, refusal, first);
    }
}

/// Counts a refused state (`source`: `topic` or `saved`); logs at warn if `loud`, else debug.
pub(crate) fn count_refusal(
    source: &'static str,
    subject: &(impl Display + ?Sized),
    refusal: &Refusal,
    loud: bool,
) {
    metrics::counter!(
        "exchange_states_refused_total",
        "reason" => refusal.reason(),
        "source" => source
    )
    .increment(1);
    if loud {
        warn!(%subject, reason = refusal.reason(), %refusal, source, "actor state refused (logged once per actor and reason)");
    } else {
        debug!(%subject, reason = refusal.reason(), %refusal, source, "actor state refused");
    }
}

/// The node's own region's actors, from its database: the checkpoints every projector process
/// of the region commits, and the epoch recorded there.
struct OwnRegion {
    pool: PgPool,
    region: RegionId,
    region_topics: BTreeMap<RegionId, String>,
    /// Partition → read point of the checkpoint last read.
    seen: HashMap<i32, ReadPoint>,
    /// The epoch the region's actors were last rebuilt and republished in.
    rebuilt_in: u64,
}

impl OwnRegion {
    fn new(config: &ExchangeConfig, pool: PgPool, epoch: u64) -> Self {
        Self {
            pool,
            region: config.region.clone(),
            region_topics: config.region_topics.clone(),
            seen: HashMap::new(),
            rebuilt_in: epoch,
        }
    }

    /// Follows a newer recorded epoch; after any epoch move records it, forgets older saved
    /// states, and rebuilds every actor of the region from its checkpoint and republishes it.
    /// Otherwise merges the checkpoints that moved. Database errors are retried next time.
    async fn refresh(&mut self, projection: &Projection, publisher: &StatePublisher) {
        match known_states::recorded_epoch(&self.pool).await {
            Ok(recorded) => {
                if projection.enter_epoch(recorded).await {
                    info!(
                        epoch = recorded,
                        "exchange epoch recorded in the database: moving to it"
                    );
                }
            }
            Err(error) => {
                warn!(%error, "exchange: the recorded epoch is not readable; retrying");
                return;
            }
        }
        let epoch = projection.epoch();
        let rebuild = epoch > self.rebuilt_in;
        if rebuild {
            if let Err(error) = self.forget_before(epoch).await {
                warn!(%error, epoch, "exchange: the new epoch is not recorded yet; retrying");
                return;
            }
            self.seen.clear();
        }
        let Some(topic) = self.region_topics.get(&self.region) else {
            return;
        };
        let rows = match checkpoint::actor_states(&self.pool, &self.region, topic, &self.seen).await
        {
            Ok(rows) => rows,
            Err(error) => {
                warn!(%error, "exchange: the region's checkpoints are not readable; retrying");
                return;
            }
        };
        let mut states = Vec::with_capacity(rows.len());
        for row in rows {
            match row.state {
                Ok(state) => states.push(state),
                Err(error) => {
                    warn!(%error, partition = row.partition, "exchange: checkpoint not merged")
                }
            }
            self.seen.insert(row.partition, row.next);
        }
        if rebuild {
            for state in &states {
                publisher.publish(state);
            }
            self.rebuilt_in = epoch;
            metrics::gauge!("exchange_epoch").set(epoch as f64);
            metrics::counter!("exchange_epoch_rebuilds_total").increment(1);
            info!(
                epoch,
                actors = states.len(),
                "exchange epoch: region's actors rebuilt from checkpoints and republished"
            );
        }
        projection.observe(states).await;
    }

    async fn forget_before(&self, epoch: u64) -> Result<(), sqlx::Error> {
        known_states::record_epoch(&self.pool, epoch).await?;
        let forgotten = known_states::forget_before(&self.pool, epoch).await?;
        info!(
            epoch,
            forgotten, "exchange epoch: saved states of older epochs forgotten"
        );
        Ok(())
    }
}

/// The region topics' ends (high watermarks), fetched from the broker when a state claims an
/// offset beyond the last one fetched. Honest states never trigger more than one fetch per
/// [`trust::LOG_END_SLACK`] records; a forged one costs one `ListOffsets` request.
struct LogEnds {
    consumer: Arc<BaseConsumer>,
    ends: HashMap<(String, i32), i64>,
}

impl LogEnds {
    fn new(config: &ExchangeConfig) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = config
            .kafka
            .config(&[])
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(Self {
            consumer: Arc::new(consumer),
            ends: HashMap::new(),
        })
    }

    async fn check(&mut self, topic: &str, state: &ActorState) -> Result<(), Refusal> {
        let Some(offset) = state.watermark().offset else {
            return Ok(());
        };
        let key = (topic.to_owned(), state.actor().partition);
        if let Some(end) = self.ends.get(&key)
            && trust::check_log_end(state, *end).is_ok()
        {
            return Ok(());
        }
        let consumer = Arc::clone(&self.consumer);
        let (name, partition) = key.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&name, partition, WATERMARK_TIMEOUT)
        })
        .await;
        match fetched {
            Ok(Ok((_, high))) => {
                self.ends.insert(key, high);
                trust::check_log_end(state, high)
            }
            Ok(Err(error)) => {
                debug!(%error, topic, "exchange: high watermark not fetched");
                Err(Refusal::Unverified { offset })
            }
            Err(_) => Err(Refusal::Unverified { offset }),
        }
    }
}

/// The highest epoch heard on the exchange topic within `window`, reading from its end (marks
/// and states alike): what `reset-states` bumps.
pub async fn latest_epoch(
    kafka: &KafkaClient,
    topic: &str,
    group: &str,
    window: Duration,
) -> Result<u64, KafkaError> {
    let consumer: StreamConsumer = kafka
        .config(&[("fetch.wait.max.ms", "10")])
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..EXCHANGE_PARTITIONS {
        assignment.add_partition_offset(topic, partition, Offset::End)?;
    }
    consumer.assign(&assignment)?;
    let mut highest = 0;
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(received) = tokio::time::timeout_at(deadline, consumer.recv()).await {
        let Ok(message) = received else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let payload = message.payload().unwrap_or_default();
        let epoch = if EpochMark::is_mark(payload) {
            EpochMark::decode(payload).ok().map(|mark| mark.epoch)
        } else {
            ActorState::decode(payload).ok().map(|state| state.epoch())
        };
        if let Some(epoch) = epoch.filter(|e| *e <= trust::MAX_EPOCH) {
            highest = highest.max(epoch);
        }
    }
    Ok(highest)
}

/// Merges states without a running node (tests, audits).
pub fn merge_all(states: impl IntoIterator<Item = ActorState>) -> GlobalView {
    let mut view = GlobalView::new();
    for state in states {
        view.observe(state);
    }
    view
}
