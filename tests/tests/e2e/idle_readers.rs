//! An idle node does not poll the broker: its projector and catalogue follower stop fetching
//! once they read nothing for `idle_after_ms`, and so does the state exchange's short-wait
//! consumer once the counts stop changing; a command still reaches every node, each reader
//! woken by what it is told (the region's relay for the projector, the merged actor states for
//! the follower, a changed state read by the long-wait consumer for the exchange), not by its
//! own periodic look, which these nodes never reach. They stay awake until what they were
//! told of arrives, however slow the broker is to answer.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::broker::PrivateBroker;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::metrics::{metric, wait_for_metric};
use crate::support::ownership::id_owned_by;
use crate::support::{EU, US, wait_until};

/// Longer than the test: a reader that fetched again did so because it was told.
const LOOK_MS: u64 = 3_600_000;

fn options() -> ClusterOptions {
    ClusterOptions {
        env: vec![
            ("AIGO_KAFKA__IDLE_AFTER_MS".to_owned(), "300".to_owned()),
            ("AIGO_KAFKA__IDLE_LOOK_MS".to_owned(), LOOK_MS.to_string()),
        ],
        ..ClusterOptions::default()
    }
}

async fn wait_asleep(cluster: &Cluster, region: &str) {
    for reader in ["projector", "catalogue", "exchange"] {
        let label = format!("reader=\"{reader}\"");
        let what = format!("{region}: the {reader} idles");
        wait_for_metric(cluster, region, "aigo_reader_asleep", &[&label], 1.0, &what).await;
    }
}

/// Registers a model on eu-west and waits until both regions count it and us-east's catalogue
/// has it.
async fn register_and_see_everywhere(cluster: &Cluster, id_hint: &str) {
    let id = id_owned_by(&[EU, US], EU, id_hint);
    cluster
        .command(
            EU,
            Method::POST,
            "/v1/models",
            Some(json!({ "id": id, "provider": "openai", "name": { "en": "Woken" } })),
        )
        .await;
    // Counted by the home region's projector, then by the other region through the exchange.
    for region in [EU, US] {
        wait_until(&format!("{region} counts the model"), || async {
            let counts = cluster.counts(region).await?;
            match counts["total"].as_i64() {
                Some(1) => Ok(()),
                _ => Err(format!("counts: {counts}")),
            }
        })
        .await;
    }
    // In the other region's catalogue: its follower read the home region's topic.
    let path = format!("/v1/models/{id}");
    wait_until("us-east's catalogue has the model", || async {
        let answer = cluster.get(US, &path, &[]).await;
        match answer.status {
            StatusCode::OK => Ok(()),
            status => Err(format!("{status}: {}", answer.body)),
        }
    })
    .await;
}

async fn told(cluster: &Cluster, region: &str, reader: &str) -> f64 {
    let reader = format!("reader=\"{reader}\"");
    metric(
        cluster,
        region,
        "aigo_reader_wakeups_total",
        &[&reader, "cause=\"told\""],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_readers_stop_fetching_and_are_woken_by_a_command() {
    let cluster = Cluster::start_with(&[EU, US], options()).await;
    for region in [EU, US] {
        wait_asleep(&cluster, region).await;
    }
    let (eu_projector, us_catalogue, us_exchange) = (
        told(&cluster, EU, "projector").await,
        told(&cluster, US, "catalogue").await,
        told(&cluster, US, "exchange").await,
    );

    register_and_see_everywhere(&cluster, "idle/woken").await;
    assert!(
        told(&cluster, EU, "projector").await > eu_projector,
        "eu-west's projector was woken by its relay"
    );
    assert!(
        told(&cluster, US, "catalogue").await > us_catalogue,
        "us-east's follower was woken by eu-west's actor state"
    );
    assert!(
        told(&cluster, US, "exchange").await > us_exchange,
        "us-east's short-wait exchange consumer was woken by the changed state"
    );

    // And they idle again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for region in [EU, US] {
        wait_asleep(&cluster, region).await;
    }
}

/// A broker slower to answer a fetch than a reader's idle time (every chunk 400 ms late each
/// way, against `idle_after_ms` 300): a woken reader must wait for the records it was told of.
/// Put back to sleep before the answer came, it unassigned its partitions (librdkafka drops
/// the answer of a fetch in flight then), was told again, and never read anything: the
/// durable-broker soak's stall (docs/RELIABILITY.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woken_readers_wait_for_a_slow_broker_to_answer() {
    let (broker, proxy) = PrivateBroker::start_behind_proxy().await;
    let cluster = Cluster::start_with(
        &[EU, US],
        ClusterOptions {
            brokers: Some(broker.brokers()),
            ..options()
        },
    )
    .await;
    for region in [EU, US] {
        wait_asleep(&cluster, region).await;
    }
    proxy.latency(Duration::from_millis(400));

    register_and_see_everywhere(&cluster, "idle/slow").await;
}
