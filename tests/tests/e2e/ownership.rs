//! One model, one count: the same id registered on two regions at the same instant is
//! accepted by exactly one of them, its registry owner, with the broker up and with the broker
//! down during the race; every node counts it once, never twice at any moment, and the
//! catalogue, `?at=now` and `region-node audit` agree.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;
use crate::support::broker::PrivateBroker;
use crate::support::cli::region_node;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::ownership::owner_of;
use crate::support::{Answer, EU, US, wait_until};

const ROUNDS: i64 = 50;

/// Registers `twins/<prefix>-<n>` on both nodes at once, `ROUNDS` times; each time exactly
/// one answers 201 and the other 409 `wrong-owner` naming the first.
async fn race(cluster: &Cluster, prefix: &str, started: &AtomicI64) {
    for n in 0..ROUNDS {
        let id = format!("twins/{prefix}-{n}");
        let body = json!({"id": id, "provider": "twins", "name": {"en": "X", "ko": "엑스"}});
        started.fetch_add(1, Ordering::SeqCst);
        let (eu, us) = tokio::join!(
            cluster.send(EU, Method::POST, "/v1/models", Some(&body), None),
            cluster.send(US, Method::POST, "/v1/models", Some(&body), None),
        );
        let answers: [(&str, Answer); 2] = [(EU, eu.unwrap()), (US, us.unwrap())];
        let accepted: Vec<&str> = answers
            .iter()
            .filter(|(_, a)| a.status == StatusCode::CREATED)
            .map(|(region, _)| *region)
            .collect();
        assert_eq!(
            accepted.len(),
            1,
            "{id}: exactly one region must accept it: {answers:?}"
        );
        let owner = accepted[0];
        assert_eq!(
            owner,
            owner_of(&[EU, US], &id),
            "{id}: accepted by its owner"
        );
        let (_, refused) = answers.iter().find(|(r, _)| *r != owner).unwrap();
        assert_eq!(refused.status, StatusCode::CONFLICT, "{id}: {refused:?}");
        assert_eq!(refused.body["code"], "wrong-owner", "{id}: {refused:?}");
        assert_eq!(refused.body["owner_region"], owner, "{id}: {refused:?}");
    }
}

fn twins(counts: &Value) -> i64 {
    counts["by_provider"]["twins"]["total"]
        .as_i64()
        .unwrap_or(0)
}

/// Polls both nodes while a race runs: a node never counts more twins than ids raced so far.
fn watch_never_twice(
    cluster: Arc<Cluster>,
    started: Arc<AtomicI64>,
    stop: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut observations = 0;
        loop {
            for region in [EU, US] {
                if let Ok(counts) = cluster.counts(region).await {
                    let raced = started.load(Ordering::SeqCst);
                    assert!(
                        twins(&counts) <= raced && counts["total"].as_i64().unwrap() <= raced,
                        "{region} counts {} twins (total {}) after {raced} ids were raced",
                        twins(&counts),
                        counts["total"]
                    );
                    observations += 1;
                }
            }
            tokio::select! {
                () = stop.notified() => return observations,
                () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
        }
    })
}

/// Every node counts `expected` models, once each, and its catalogue, `?at=now` and audit
/// agree.
async fn assert_counted_once(cluster: &Cluster, expected: i64) {
    for region in [EU, US] {
        wait_until(
            &format!("{region} counts {expected} twins"),
            || async move {
                let counts = cluster.counts(region).await?;
                let (total, provider) = (counts["total"].as_i64().unwrap_or(-1), twins(&counts));
                if total == expected && provider == expected {
                    Ok(())
                } else {
                    Err(format!("total {total}, twins {provider}"))
                }
            },
        )
        .await;
        let listed = wait_until(&format!("{region} lists {expected} twins"), || async move {
            let answer = cluster
                .get(region, "/v1/models?provider=twins&limit=500", &[])
                .await;
            let items = answer.body["items"].as_array().cloned().unwrap_or_default();
            if items.len() as i64 == expected {
                Ok(items)
            } else {
                Err(format!("{} listed", items.len()))
            }
        })
        .await;
        for item in &listed {
            let id = item["id"].as_str().unwrap();
            assert_eq!(item["home_region"], owner_of(&[EU, US], id), "{item}");
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let at = cluster
            .get(
                region,
                &format!("/v1/counts?at={}", now.replace('+', "%2B")),
                &[],
            )
            .await;
        assert_eq!(at.status, StatusCode::OK, "{region} ?at=now: {}", at.body);
        assert_eq!(at.body["total"], expected, "{region} ?at=now: {}", at.body);
        assert_eq!(twins(&at.body), expected, "{region} ?at=now: {}", at.body);
    }
    for region in [EU, US] {
        let ran = region_node(cluster.node(region).config_path(), &["audit", "--quiet"]).await;
        assert!(
            ran.success,
            "audit of {region} failed:\n{}\n{}",
            ran.stdout, ran.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_raced_on_two_regions_is_counted_once_with_the_broker_up_and_down() {
    support::init_tracing();
    let mut broker = PrivateBroker::start().await;
    let options = ClusterOptions {
        brokers: Some(broker.brokers()),
        ..ClusterOptions::default()
    };
    let cluster = Arc::new(Cluster::start_with(&[EU, US], options).await);
    let started = Arc::new(AtomicI64::new(0));

    let stop = Arc::new(tokio::sync::Notify::new());
    let watcher = watch_never_twice(cluster.clone(), started.clone(), stop.clone());
    race(&cluster, "up", &started).await;
    assert_counted_once(&cluster, ROUNDS).await;

    // The same race while no node can reach the broker: each region decides alone.
    broker.kill();
    race(&cluster, "down", &started).await;
    broker.restart().await;
    assert_counted_once(&cluster, 2 * ROUNDS).await;
    stop.notify_one();
    let observations = watcher.await.unwrap();
    assert!(
        observations > 10,
        "the watcher saw too little: {observations}"
    );
}
