//! The relay's backlog gauge (`outbox_pending_rows`, the "relay backlog" alert of
//! docs/DEPLOYMENT.md) shows the rows an unreachable broker holds back, and returns to 0 once
//! they are published. It used to be counted only after a drain, so it read 0 through a whole
//! outage (and the count cost a scan that grew with the outbox, per drain).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::broker::PrivateBroker;
use crate::support::cluster::{Cluster, ClusterOptions, unlimited_commands};
use crate::support::metrics::wait_for_metric;
use crate::support::{EU, wait_until};

/// Commands acknowledged while the broker cannot be reached.
const HELD_BACK: usize = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_gauge_counts_what_an_unreachable_broker_holds_back() {
    let (broker, proxy) = PrivateBroker::start_behind_proxy().await;
    let mut env = unlimited_commands();
    // Deliveries fail within a second or two of the cut, so the relay's step fails.
    env.push((
        "AIGO_KAFKA__MESSAGE_TIMEOUT_MS".to_owned(),
        "1500".to_owned(),
    ));
    let cluster = Cluster::start_with(
        &[EU],
        ClusterOptions {
            brokers: Some(broker.brokers()),
            env,
            ..ClusterOptions::default()
        },
    )
    .await;
    let register = |i: usize| {
        let id = format!("backlog/model-{i}");
        json!({"id": id, "provider": "acme", "name": {"en": id}})
    };
    cluster
        .command(EU, Method::POST, "/v1/models", Some(register(0)))
        .await;
    wait_until("the first model published and counted", || async {
        let counts = cluster.counts(EU).await?;
        (counts["total"] == json!(1))
            .then_some(())
            .ok_or(format!("total {}", counts["total"]))
    })
    .await;

    proxy.drop_connections();
    proxy.cut();
    for i in 1..=HELD_BACK {
        cluster
            .command(EU, Method::POST, "/v1/models", Some(register(i)))
            .await;
    }
    #[expect(clippy::cast_precision_loss, reason = "a small count")]
    let held_back = HELD_BACK as f64;
    wait_for_metric(
        &cluster,
        EU,
        "aigo_outbox_pending_rows",
        &[],
        held_back,
        "the gauge shows every row the cut broker holds back",
    )
    .await;

    proxy.heal();
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_for_metric(
        &cluster,
        EU,
        "aigo_outbox_pending_rows",
        &[],
        0.0,
        "the backlog published once the broker is back",
    )
    .await;
}
