//! A reader far behind changes to its catching-up consumer (the long fetch wait) and back to
//! the tail consumer near the end, handing its partitions over at its own positions: nothing
//! is skipped or counted twice across the changes. A burst is produced straight to the topic
//! while the node's readers idle (nothing tells them), then every 16 KiB the broker sends is
//! held 50 ms by the fault proxy (about 800 records a second) and a command wakes them: both
//! readers are thousands of records behind at their next statistics.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::partition_for;
use event_store::catalogue;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use reqwest::Method;
use serde_json::json;

use crate::support::broker::PrivateBroker;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::events::{self, Generator, Outgoing};
use crate::support::kafka::unique_topic;
use crate::support::metrics::{metric, wait_for_metric};
use crate::support::ownership::id_owned_by;
use crate::support::{EU, wait_until};

/// Partitions of the cluster's events topics (the harness's configuration).
const PARTITIONS: i32 = 3;

async fn gear_changes(cluster: &Cluster, reader: &str, to: &str) -> f64 {
    let (reader, to) = (format!("reader=\"{reader}\""), format!("to=\"{to}\""));
    metric(
        cluster,
        EU,
        "aigo_reader_gear_changes_total",
        &[&reader, &to],
    )
    .await
}

/// A producer of batches of at most 100 records. A fetch answer holds at least one whole batch
/// whatever its byte bound, so with the bulk producer's batches (up to 10,000 records) one answer
/// could bring a partition's whole burst, and a reader could fold it between two statistics
/// reports without ever being seen behind.
fn small_batch_producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "100")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap()
}

/// Waits until `reader`'s gauge `name` is `want`.
async fn wait_for_reader(cluster: &Cluster, name: &str, reader: &str, want: f64, what: &str) {
    let label = format!("reader=\"{reader}\"");
    wait_for_metric(cluster, EU, name, &[&label], want, what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_far_behind_catches_up_in_large_answers_and_returns_to_the_tail() {
    let (broker, proxy) = PrivateBroker::start_behind_proxy().await;
    let prefix = unique_topic("gears");
    let topic = format!("{prefix}.events.{EU}");
    let cluster = Cluster::start_with(
        &[EU],
        ClusterOptions {
            brokers: Some(broker.brokers()),
            topic_prefix: Some(prefix),
            env: vec![
                ("AIGO_KAFKA__IDLE_AFTER_MS".to_owned(), "300".to_owned()),
                ("AIGO_KAFKA__IDLE_LOOK_MS".to_owned(), "3600000".to_owned()),
            ],
            ..ClusterOptions::default()
        },
    )
    .await;
    // A node starts in the catching-up gear and, on an empty topic, changes to the tail one.
    for reader in ["projector", "catalogue"] {
        let what = format!("the {reader} reads the tail");
        wait_for_reader(&cluster, "aigo_reader_catching_up", reader, 0.0, &what).await;
    }
    let before: BTreeMap<&str, f64> = BTreeMap::from([
        (
            "projector",
            gear_changes(&cluster, "projector", "bulk").await,
        ),
        (
            "catalogue",
            gear_changes(&cluster, "catalogue", "bulk").await,
        ),
    ]);

    for reader in ["projector", "catalogue"] {
        let what = format!("the {reader} idles");
        wait_for_reader(&cluster, "aigo_reader_asleep", reader, 1.0, &what).await;
    }
    let mut generator = Generator::new(EU, 0x6ea2);
    let burst: Vec<Outgoing> = generator.take(6_000).iter().map(Outgoing::from).collect();
    let producer = small_batch_producer(&broker.brokers());
    let delivered = events::produce(&producer, &topic, PARTITIONS, &burst).await;

    proxy.latency(Duration::from_millis(50));
    let slowed = std::time::Instant::now();
    // The relay's NOTIFY wakes the projector, whose merged state then wakes the follower.
    let id = id_owned_by(&[EU], EU, "gears/wake");
    cluster
        .command(
            EU,
            Method::POST,
            "/v1/models",
            Some(json!({ "id": id, "provider": "openai", "name": { "en": "Wake" } })),
        )
        .await;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset) in delivered {
        let end = ends.entry(partition).or_default();
        *end = (*end).max(offset + 1);
    }
    // The registration, after the burst in its partition (the relay keys records by model).
    *ends
        .entry(partition_for(id.as_bytes(), PARTITIONS))
        .or_default() += 1;
    // The burst's models and the registered one (inactive until activated).
    let mut expected = generator.recount();
    expected.total += 1;
    expected.inactive += 1;
    wait_until("the projector counts the whole burst", || async {
        let counts = cluster.counts(EU).await?;
        let got = ["total", "active", "inactive", "retired"].map(|k| counts[k].as_i64());
        let want = [
            expected.total,
            expected.active,
            expected.inactive,
            expected.retired,
        ]
        .map(Some);
        if got == want {
            Ok(())
        } else {
            Err(format!("counts {got:?}, expected {want:?}"))
        }
    })
    .await;
    eprintln!("counted {:.1?} after the wake-up command", slowed.elapsed());
    let pool = cluster.pool(EU).await;
    wait_until("the catalogue applied the whole burst", || async {
        let offsets = catalogue::load_offsets(&pool)
            .await
            .map_err(|e| e.to_string())?;
        let reached: BTreeMap<i32, i64> = offsets
            .into_iter()
            .filter(|((t, _), _)| *t == topic)
            .map(|((_, partition), next)| (partition, next.next_offset))
            .collect();
        if reached == ends {
            Ok(())
        } else {
            Err(format!(
                "catalogue offsets {reached:?}, partition ends {ends:?}"
            ))
        }
    })
    .await;
    eprintln!("applied {:.1?} after the wake-up command", slowed.elapsed());
    let (models, retired): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE lifecycle = 'retired') FROM catalogue_models",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (models, retired),
        (
            i64::try_from(generator.models() + 1).unwrap(),
            expected.retired
        ),
        "models and retired models in the catalogue"
    );

    for reader in ["projector", "catalogue"] {
        assert!(
            gear_changes(&cluster, reader, "bulk").await > before[reader],
            "the {reader} changed to its catching-up consumer for the burst"
        );
        let what = format!("the {reader} reads the tail");
        wait_for_reader(&cluster, "aigo_reader_catching_up", reader, 0.0, &what).await;
    }
    proxy.heal();
}
