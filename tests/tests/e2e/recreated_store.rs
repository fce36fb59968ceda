//! A region database lost and recreated empty, while the region's topic keeps what the old
//! one wrote: the new store would hand out positions the topic already holds, which consumers
//! then drop as duplicates (history loses the events for good). The relay refuses to publish
//! there, loudly, instead of publishing over the old positions.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support;
use crate::support::cluster::Cluster;
use crate::support::{EU, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_region_database_never_publishes_over_its_old_positions() {
    support::init_tracing();
    let cluster = Cluster::start(&[EU]).await;
    for i in 0..5 {
        let body = json!({"id": format!("old/m-{i}"), "provider": "old", "name": {"en": "Old"}});
        cluster
            .command(EU, Method::POST, "/v1/models", Some(body))
            .await;
    }
    wait_until("the five models are counted", || async {
        let counts = cluster.counts(EU).await?;
        (counts["total"] == 5)
            .then_some(())
            .ok_or(format!("{counts}"))
    })
    .await;

    let stopped = cluster.stop(EU).await;
    assert!(stopped.success(), "{stopped}");
    cluster.recreate_database(EU).await;
    cluster.spawn(EU);

    // The new store accepts commands (its own database is fine) ...
    let body = json!({"id": "new/after-loss", "provider": "new", "name": {"en": "New"}});
    let accepted = wait_until("the recreated node accepts a command", || async {
        match cluster
            .send(
                EU,
                Method::POST,
                "/v1/models",
                Some(&body),
                Some("after-loss"),
            )
            .await
        {
            Ok(answer) if answer.status == StatusCode::CREATED => Ok(answer.body),
            Ok(answer) => Err(format!("{} {}", answer.status, answer.body)),
            Err(error) => Err(error),
        }
    })
    .await;
    assert_eq!(accepted["events"][0]["position"], 1, "{accepted}");

    // ... but its relay refuses to publish position 1 again, and says why.
    wait_until("the relay names the problem", || async {
        cluster
            .log_contains(EU, "is not the one that wrote the topic")
            .then_some(())
            .ok_or_else(|| "not in the log yet".to_owned())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pool = cluster.pool(EU).await;
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(unpublished, 1, "the new event must not have been published");
}
