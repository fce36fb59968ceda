//! A region's topic lost and created again (an in-memory broker restarted: every topic gone):
//! every node reads the new incarnation from its start instead of resuming at offsets of the
//! old one, so the events published there are counted; then `region-node republish` fills it
//! again from the region's event store and every copy of what the nodes hold is dropped.
//! Nothing counted twice, nothing skipped, in the region and across the exchange. And a relay
//! that finds its topic created again sends the history again by itself.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;
use crate::support::broker::{BrokerOptions, PrivateBroker};
use crate::support::cli::region_node;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::metrics::metric;
use crate::support::ownership::id_owned_by;
use crate::support::ports::free_addr;
use crate::support::{EU, US, wait_until};

const REGIONS: [&str; 2] = [EU, US];

/// Registers `n` EU models named `{base}-{i}` and activates every other one.
async fn register(cluster: &Cluster, base: &str, n: usize) {
    for i in 0..n {
        let id = id_owned_by(&REGIONS, EU, &format!("{base}-{i}"));
        let body = json!({"id": id, "provider": "incarnation", "name": {"en": "Model"}});
        cluster
            .command(EU, Method::POST, "/v1/models", Some(body))
            .await;
        if i % 2 == 0 {
            let path = format!("/v1/models/{id}/activate");
            cluster.command(EU, Method::POST, &path, None).await;
        }
    }
}

/// Waits until `region`'s node counts `total` models, `active` of them active.
async fn wait_for_counts(cluster: &Cluster, region: &str, total: i64, active: i64) {
    let what = format!("{region} counts {total} models, {active} active");
    wait_until(&what, || async {
        let counts: Value = cluster.counts(region).await?;
        let got = (counts["total"].as_i64(), counts["active"].as_i64());
        if got == (Some(total), Some(active)) {
            Ok(())
        } else {
            Err(format!("{counts}"))
        }
    })
    .await;
}

/// `region-node audit` on `region`'s node passes: every actor equals a replay of the topic,
/// the catalogue's recount equals the fold's counts and history's. Asked again while it fails:
/// the node saves its merged states every 2 s and its own events are in the catalogue from
/// the moment they are appended, so an audit right after a change can catch the fold behind.
async fn wait_for_audit(cluster: &Cluster, region: &str) {
    let what = format!("the audit of {region} passes");
    wait_until(&what, || async {
        let ran = region_node(cluster.node(region).config_path(), &["audit", "--quiet"]).await;
        if ran.success {
            Ok(())
        } else {
            Err(format!("{}\n{}", ran.stdout, ran.stderr))
        }
    })
    .await;
}

/// Starts again, as a supervisor would, every node that died, until each is ready. librdkafka
/// 2.12 crashes (SIGSEGV in `rd_kafka_metadata_update_op`) when a fetch answer names a leader
/// change for a topic by the zero topic id, which Nisshi sends for topics it lost
/// (docs/BROKER.md); a node started again can die the same way until its topics exist again.
async fn restart_crashed(cluster: &Cluster) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    for region in REGIONS {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if !cluster.running(region) {
                eprintln!("{region} died when the broker lost its topics; starting it again");
                // Reaps the dead process first.
                cluster.kill(region);
                cluster.spawn(region);
            } else if cluster
                .try_get(region, "/readyz", &[])
                .await
                .is_ok_and(|answer| answer.status == StatusCode::OK)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{region} did not stay up and ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A broker that keeps its topics in memory: killed, it loses them all.
async fn memory_broker() -> PrivateBroker {
    let options = BrokerOptions {
        in_memory: true,
        ..BrokerOptions::default()
    };
    PrivateBroker::start_with(free_addr(), options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_again_and_republished_is_read_again_from_its_start() {
    support::init_tracing();
    let mut broker = memory_broker().await;
    // The relay leaves the new topic as it finds it: the readers alone must cope, then
    // `republish` refills it.
    let env = vec![(
        "AIGO_KAFKA__REPUBLISH_LOST_TOPICS".to_owned(),
        "false".to_owned(),
    )];
    let cluster = Cluster::start_with(
        &REGIONS,
        ClusterOptions {
            brokers: Some(broker.brokers()),
            env,
            ..ClusterOptions::default()
        },
    )
    .await;
    register(&cluster, "before", 12).await;
    for region in REGIONS {
        wait_for_counts(&cluster, region, 12, 6).await;
    }

    // Every topic is gone: the readers' offsets point past the end of the new, empty ones.
    broker.kill();
    broker.restart().await;
    restart_crashed(&cluster).await;
    // Published to the new incarnation at offsets below where the readers stood: counted only
    // by a reader that starts the partition over.
    // (Other regions refuse these actors' new states until the republished history passes
    // the old topic's offsets: their watermarks are behind.)
    register(&cluster, "after", 4).await;
    wait_for_counts(&cluster, EU, 16, 8).await;

    let config = cluster.node(EU).config_path();
    let ran = region_node(config, &["republish", "--quiet"]).await;
    assert!(
        ran.success,
        "republish failed:\n{}\n{}",
        ran.stdout, ran.stderr
    );
    let republished: Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    // Every event of the store: 12 + 4 registrations, 6 + 2 activations.
    assert_eq!(republished["events"], 24, "{republished}");

    // The whole history again, after what the readers hold: every copy dropped.
    for region in REGIONS {
        wait_for_counts(&cluster, region, 16, 8).await;
    }
    // The follower's check may still be waiting for the new topic's metadata (it asks again
    // at every claims review).
    for reader in ["projector", "catalogue"] {
        let label = format!("reader=\"{reader}\"");
        let what = format!("the {reader} notices the new incarnation");
        wait_until(&what, || async {
            let started_over =
                metric(&cluster, EU, "aigo_topic_incarnations_total", &[&label]).await;
            (started_over >= 1.0)
                .then_some(())
                .ok_or_else(|| format!("aigo_topic_incarnations_total = {started_over}"))
        })
        .await;
    }
    for region in REGIONS {
        wait_for_audit(&cluster, region).await;
    }

    // A restart resumes in the new incarnation: nothing read again, nothing missed.
    let stopped = cluster.stop(EU).await;
    assert!(stopped.success(), "{stopped}");
    cluster.restart(EU).await;
    register(&cluster, "later", 2).await;
    for region in REGIONS {
        wait_for_counts(&cluster, region, 18, 9).await;
    }
    for reader in ["projector", "catalogue"] {
        let label = format!("reader=\"{reader}\"");
        let started_over = metric(&cluster, EU, "aigo_topic_incarnations_total", &[&label]).await;
        assert!(
            started_over < 1.0,
            "the restarted {reader} took its own topic for a new one: {started_over}"
        );
    }
    wait_for_audit(&cluster, EU).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_finds_its_topic_created_again_sends_the_history_again() {
    support::init_tracing();
    let mut broker = memory_broker().await;
    let cluster = Cluster::start_with(
        &REGIONS,
        ClusterOptions {
            brokers: Some(broker.brokers()),
            ..ClusterOptions::default()
        },
    )
    .await;
    register(&cluster, "before", 12).await;
    for region in REGIONS {
        wait_for_counts(&cluster, region, 12, 6).await;
    }

    broker.kill();
    broker.restart().await;
    restart_crashed(&cluster).await;
    register(&cluster, "after", 4).await;

    // Nobody runs `republish`: the other region takes the new states only once the new topic
    // holds more than the old one did, and a replay of the topic finds every event.
    for region in REGIONS {
        wait_for_counts(&cluster, region, 16, 8).await;
    }
    let republished = metric(&cluster, EU, "aigo_outbox_topics_republished_total", &[]).await;
    assert!(
        republished >= 1.0,
        "the relay never sent the lost history again: {republished}"
    );
    for region in REGIONS {
        wait_for_audit(&cluster, region).await;
    }
}
