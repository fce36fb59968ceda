//! Outbox relay against a real broker and a real PostgreSQL: every row reaches its topic exactly
//! once, intact and in per-key order, across crashes at any point.

use std::collections::HashMap;
use std::time::Duration;

use domain::partition_for;
use kafka_client::KafkaClient;
use outbox_relay::{
    Provisioning, Publisher, RelayConfig, RelayError, RelayOutcome, TopicError, TopicSpec,
    ensure_topics, fetch_unpublished, reconcile, relay_once, run,
};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support;
use crate::support::broker::PrivateBroker;
use crate::support::kafka::{self, Received};
use crate::support::outbox::{self, Appended};

const PARTITIONS: i32 = 3;

fn config(topic: &str) -> RelayConfig {
    let mut config =
        RelayConfig::new(kafka::brokers()).with_topic(TopicSpec::new(topic, PARTITIONS));
    config.poll_interval = Duration::from_millis(100);
    config.max_backoff = Duration::from_millis(500);
    config
}

async fn create_topic(topic: &str) {
    ensure_topics(
        &KafkaClient::new(kafka::brokers()),
        &[TopicSpec::new(topic, PARTITIONS).events()],
        Duration::from_secs(10),
        Provisioning::Create,
    )
    .await
    .unwrap();
}

/// A relay running in the background, stopped through its shutdown future.
struct Running {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), RelayError>>,
}

impl Running {
    fn start(config: RelayConfig, pool: &PgPool) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(run(config, pool.clone(), async {
            let _ = stopped.await;
        }));
        Self { stop, handle }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.handle.await.unwrap().unwrap();
    }
}

/// Every appended row is on the topic exactly once, with its key, payload and headers, in the
/// partition Kafka's partitioner assigns to its key; with `in_order`, positions strictly
/// increase within each partition (hence per key).
fn assert_exactly_once(received: &[Received], appended: &[Appended], in_order: bool) {
    assert_eq!(
        received.len(),
        appended.len(),
        "messages on the topic vs rows appended"
    );
    let by_position: HashMap<i64, &Appended> = appended.iter().map(|a| (a.position, a)).collect();
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut last_in_partition: HashMap<i32, i64> = HashMap::new();
    for message in received {
        let position = message.position();
        *seen.entry(position).or_default() += 1;
        let row = by_position
            .get(&position)
            .unwrap_or_else(|| panic!("position {position} on the topic was never appended"));
        assert_eq!(
            message.key.as_deref(),
            Some(row.key.as_str()),
            "key of {position}"
        );
        assert_eq!(message.payload, row.payload, "payload of {position}");
        assert_eq!(
            message.headers.get("content-type").map(Vec::as_slice),
            Some(b"application/json".as_slice()),
            "content-type of {position}"
        );
        assert_eq!(
            message.partition,
            partition_for(row.key.as_bytes(), PARTITIONS),
            "partition of {position}"
        );
        if in_order && let Some(previous) = last_in_partition.insert(message.partition, position) {
            assert!(
                previous < position,
                "partition {}: {position} after {previous}",
                message.partition
            );
        }
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "published more than once: {duplicated:?}"
    );
    assert_eq!(
        seen.len(),
        appended.len(),
        "distinct positions on the topic"
    );
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn relay_publishes_each_row_once_intact_and_in_key_order(pool: PgPool) {
    let topic = kafka::unique_topic("relay-basic");
    let mut appended = outbox::append(&pool, &topic, 200, 7).await;

    let relay = Running::start(config(&topic), &pool);
    outbox::wait_all_published(&pool).await;
    // Rows committed while the relay runs arrive through NOTIFY (or the poll).
    appended.extend(outbox::append(&pool, &topic, 50, 7).await);
    outbox::wait_all_published(&pool).await;
    relay.stop().await;

    let received = kafka::read_all(&topic, PARTITIONS).await;
    assert_exactly_once(&received, &appended, true);
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn relay_once_publishes_batch_by_batch_and_says_when_done(pool: PgPool) {
    let topic = kafka::unique_topic("relay-once");
    create_topic(&topic).await;
    let appended = outbox::append(&pool, &topic, 250, 5).await;
    let publisher = Publisher::new(&config(&topic)).unwrap();

    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(relay_once(&pool, &publisher, 100).await.unwrap());
    }
    let outcome = |published, more| RelayOutcome { published, more };
    assert_eq!(
        outcomes,
        [
            outcome(100, true),
            outcome(100, true),
            outcome(50, false),
            outcome(0, false)
        ]
    );
    assert_eq!(outbox::unpublished(&pool).await, 0);
    let received = kafka::read_all(&topic, PARTITIONS).await;
    assert_exactly_once(&received, &appended, true);
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn crash_between_publish_and_mark_is_reconciled_without_duplicates(pool: PgPool) {
    let topic = kafka::unique_topic("relay-crash");
    create_topic(&topic).await;
    let appended = outbox::append(&pool, &topic, 120, 5).await;

    // The dying relay: sends the first 80 rows, the broker acknowledges, nothing is marked.
    let dying = Publisher::new(&config(&topic)).unwrap();
    let batch = fetch_unpublished(&pool, 80).await.unwrap();
    let report = dying.send_all(&batch).await.unwrap();
    assert_eq!(report.delivered.len(), 80);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    drop(dying);
    assert_eq!(outbox::unpublished(&pool).await, 120);
    assert_eq!(kafka::read_all(&topic, PARTITIONS).await.len(), 80);

    // A fresh relay first finds those 80 on the topic...
    let fresh = Publisher::new(&config(&topic)).unwrap();
    assert_eq!(reconcile(&pool, &fresh).await.unwrap(), 80);
    assert_eq!(outbox::unpublished(&pool).await, 40);
    // ...and reconciling again finds nothing more.
    assert_eq!(reconcile(&pool, &fresh).await.unwrap(), 0);

    // Then the whole relay (which reconciles at start too) publishes the rest.
    let relay = Running::start(config(&topic), &pool);
    outbox::wait_all_published(&pool).await;
    relay.stop().await;

    let received = kafka::read_all(&topic, PARTITIONS).await;
    assert_exactly_once(&received, &appended, true);
}

/// librdkafka's idempotent producer can leave a gap (a queued message times out, the epoch is
/// bumped, later ones go through). Reconcile must not take the gap's row for delivered, nor
/// the rows after it: they overtook it, so they are sent again after it, and the partition
/// then holds every row in order after the gap (the fold drops the early copies' re-sends by
/// stream sequence, or holds an early copy until its predecessor comes).
#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn reconcile_marks_only_the_rows_before_a_gap(pool: PgPool) {
    let topic = kafka::unique_topic("relay-gap");
    create_topic(&topic).await;
    // One key: every row in the same partition.
    let appended = outbox::append(&pool, &topic, 30, 1).await;
    let positions: Vec<i64> = appended.iter().map(|a| a.position).collect();
    let missing = positions[10];

    let dying = Publisher::new(&config(&topic)).unwrap();
    let mut batch = fetch_unpublished(&pool, 20).await.unwrap();
    batch.retain(|row| row.position != missing);
    let report = dying.send_all(&batch).await.unwrap();
    assert_eq!(report.delivered.len(), 19);
    drop(dying);

    let fresh = Publisher::new(&config(&topic)).unwrap();
    assert_eq!(reconcile(&pool, &fresh).await.unwrap(), 10);
    let still_unpublished: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM outbox WHERE published_at IS NULL ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(still_unpublished, positions[10..].to_vec());

    while relay_once(&pool, &fresh, 100).await.unwrap().published > 0 {}
    let received = kafka::read_all(&topic, PARTITIONS).await;
    let on_topic: Vec<i64> = received.iter().map(Received::position).collect();
    let mut expected_order: Vec<i64> = positions[..10].to_vec();
    expected_order.extend(&positions[11..20]);
    expected_order.extend(&positions[10..]);
    assert_eq!(on_topic, expected_order);
    // From the gap's row on, every row once and in order: no row is ever behind a successor.
    let from_gap = on_topic.iter().position(|p| *p == missing).unwrap();
    assert_eq!(on_topic[from_gap..], positions[10..]);
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn relay_aborted_at_random_points_publishes_every_row_once_in_order(pool: PgPool) {
    support::init_tracing();
    let topic = kafka::unique_topic("relay-abort");
    let mut relay_config = config(&topic);
    // Small batches: more batch boundaries for an abort to land between send and mark.
    relay_config.batch_size = 100;
    let mut appended = outbox::append(&pool, &topic, 1000, 11).await;

    for round in 0..8 {
        let (_stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(run(relay_config.clone(), pool.clone(), async {
            let _ = stopped.await;
        }));
        // Crash while it is publishing: once a batch is marked, a few milliseconds later (a
        // batch of 100 takes ~15 ms, most of it between first send and mark).
        let before = outbox::unpublished(&pool).await;
        support::wait_until("the relay publishes something", || async {
            let left = outbox::unpublished(&pool).await;
            (left < before)
                .then_some(())
                .ok_or(format!("{left} unpublished"))
        })
        .await;
        let crash_after = Duration::from_millis(rand::random_range(0..40));
        tokio::time::sleep(crash_after).await;
        handle.abort();
        let ended = handle.await;
        assert!(
            ended
                .as_ref()
                .is_err_and(tokio::task::JoinError::is_cancelled),
            "round {round}: relay ended by itself: {ended:?}"
        );
        // Appends keep coming between crashes.
        appended.extend(outbox::append(&pool, &topic, 400, 11).await);
    }

    let relay = Running::start(relay_config, &pool);
    outbox::wait_all_published(&pool).await;
    relay.stop().await;

    assert_eq!(appended.len(), 4200);
    let received = kafka::read_all(&topic, PARTITIONS).await;
    assert_exactly_once(&received, &appended, true);
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn relay_rides_out_a_broker_outage(pool: PgPool) {
    support::init_tracing();
    let mut broker = PrivateBroker::start().await;
    let topic = kafka::unique_topic("relay-outage");
    let mut relay_config =
        RelayConfig::new(broker.brokers()).with_topic(TopicSpec::new(&topic, PARTITIONS));
    relay_config.poll_interval = Duration::from_millis(100);
    relay_config.max_backoff = Duration::from_millis(500);
    relay_config.message_timeout = Duration::from_secs(2);
    relay_config.request_timeout = Duration::from_secs(2);
    let relay = Running::start(relay_config, &pool);
    let mut appended = outbox::append(&pool, &topic, 100, 5).await;
    outbox::wait_all_published(&pool).await;

    broker.kill();
    appended.extend(outbox::append(&pool, &topic, 200, 5).await);
    // Not an assertion: gives the relay time to send, time out and back off at least once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        outbox::unpublished(&pool).await,
        200,
        "nothing can be marked published while the broker is down"
    );
    broker.restart().await;
    outbox::wait_all_published(&pool).await;
    relay.stop().await;

    let received = kafka::read_all_from(&broker.brokers(), &topic, PARTITIONS).await;
    assert_exactly_once(&received, &appended, true);
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn relay_resumes_after_its_database_connections_are_killed(pool: PgPool) {
    let topic = kafka::unique_topic("relay-db-loss");
    let mut relay_config = config(&topic);
    relay_config.batch_size = 100;
    let relay = Running::start(relay_config, &pool);

    let mut appended = Vec::new();
    let mut killed = 0;
    for _ in 0..5 {
        appended.extend(outbox::append(&pool, &topic, 300, 7).await);
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..40))).await;
        // Every other session on this test database: the relay's pool and its listener.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        killed += n;
    }
    assert!(
        killed > 0,
        "no connection was terminated: the test proved nothing"
    );
    outbox::wait_all_published(&pool).await;
    relay.stop().await;

    let received = kafka::read_all(&topic, PARTITIONS).await;
    assert_exactly_once(&received, &appended, true);
}

#[tokio::test]
async fn ensure_topics_creates_once_and_accepts_existing_topics() {
    let events = kafka::unique_topic("relay-topics");
    let state = kafka::unique_topic("relay-state");
    let specs = [
        TopicSpec::new(&events, 4).events(),
        TopicSpec::new(&state, 2).compacted(),
    ];
    let timeout = Duration::from_secs(10);
    let kafka_client = KafkaClient::new(kafka::brokers());
    ensure_topics(&kafka_client, &specs, timeout, Provisioning::Create)
        .await
        .unwrap();
    // Already existing: still success, and an operator's topics pass the check alone.
    ensure_topics(&kafka_client, &specs, timeout, Provisioning::Create)
        .await
        .unwrap();
    ensure_topics(&kafka_client, &specs, timeout, Provisioning::CheckOnly)
        .await
        .unwrap();
    assert_eq!(kafka::partition_count(&events).await, 4);
    assert_eq!(kafka::partition_count(&state).await, 2);
    assert_eq!(
        kafka::cleanup_policy(&state).await.as_deref(),
        Some("compact")
    );
    assert_ne!(
        kafka::cleanup_policy(&events).await.as_deref(),
        Some("compact")
    );
    for setting in ["retention.ms", "retention.bytes"] {
        assert_eq!(
            kafka::topic_setting(&events, setting).await.as_deref(),
            Some("-1"),
            "{setting}"
        );
    }
}

/// Topics an operator made wrong (or not at all) are refused, naming topic and setting.
#[tokio::test]
async fn ensure_topics_refuses_missing_and_misconfigured_topics() {
    let timeout = Duration::from_secs(10);
    let kafka_client = KafkaClient::new(kafka::brokers());
    let refusal = |spec: TopicSpec, provisioning| {
        let kafka_client = kafka_client.clone();
        async move {
            ensure_topics(&kafka_client, &[spec], timeout, provisioning)
                .await
                .unwrap_err()
        }
    };

    let missing = kafka::unique_topic("relay-missing");
    let error = refusal(
        TopicSpec::new(&missing, 3).events(),
        Provisioning::CheckOnly,
    )
    .await;
    assert!(error.is_misconfiguration(), "{error}");
    assert!(error.to_string().contains(&missing), "{error}");
    assert_eq!(
        kafka::partition_count(&missing).await,
        0,
        "checking created it"
    );

    let narrow = kafka::unique_topic("relay-narrow");
    kafka::create_topic(
        &narrow,
        2,
        &[("retention.ms", "-1"), ("retention.bytes", "-1")],
    )
    .await;
    let error = refusal(TopicSpec::new(&narrow, 3).events(), Provisioning::Create).await;
    assert!(
        matches!(&error, TopicError::Misconfigured { setting: "partitions", found, .. } if found == "2"),
        "{error}"
    );

    let week = kafka::unique_topic("relay-week");
    kafka::create_topic(&week, 3, &[("retention.ms", "604800000")]).await;
    let error = refusal(TopicSpec::new(&week, 3).events(), Provisioning::Create).await;
    assert!(
        matches!(&error, TopicError::Misconfigured { setting: "retention.ms", found, .. } if found == "604800000"),
        "{error}"
    );
    assert!(error.to_string().contains(&week), "{error}");

    let defaults = kafka::unique_topic("relay-defaults");
    kafka::create_topic(&defaults, 3, &[]).await;
    let error = refusal(TopicSpec::new(&defaults, 3).events(), Provisioning::Create).await;
    assert!(
        matches!(
            &error,
            TopicError::Misconfigured {
                setting: "retention.ms",
                ..
            }
        ),
        "{error}"
    );
}
