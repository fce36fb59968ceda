//! A history read while the index is behind the log (a real node; the indexer held back by a
//! lock on its progress row): the read waits `index_wait_ms`, then replays a log of at most
//! `replay_limit_events` events, and beyond that is refused with 503 `index-catching-up`
//! instead of replaying the whole log; once the indexer moves again, the index answers.

use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::{EU, wait_until};

/// Registers `id` at eu-west (its provider's home).
async fn register(cluster: &Cluster, id: &str) {
    let body = json!({"id": id, "provider": "openai", "name": {"en": id}});
    cluster
        .command(EU, Method::POST, "/v1/models", Some(body))
        .await;
}

/// `GET /v1/counts?at=<now>`.
async fn counts_now(cluster: &Cluster) -> support::Answer {
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    cluster
        .get(
            EU,
            &format!("/v1/counts?at={}", at.replace('+', "%2B")),
            &[],
        )
        .await
}

/// Waits until the node's event log holds `events` events.
async fn logged(cluster: &Cluster, events: i64) {
    let pool = cluster.pool(EU).await;
    wait_until(&format!("{events} events logged"), || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
            if n == events {
                Ok(())
            } else {
                Err(format!("{n} logged"))
            }
        }
    })
    .await;
}

fn total(answer: &support::Answer) -> &Value {
    &answer.body["total"]
}

/// Waits until `?at=<now>` answers 200 with `models` in all.
async fn counted_at_now(cluster: &Cluster, models: i64) {
    wait_until(&format!("?at=now counts {models} models"), || async {
        let answer = counts_now(cluster).await;
        if answer.status == StatusCode::OK && *total(&answer) == json!(models) {
            Ok(())
        } else {
            Err(format!("{} {}", answer.status, answer.body))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_replays_only_a_small_log_while_the_index_catches_up() {
    support::init_tracing();
    let options = ClusterOptions {
        extra_toml: format!("[ownership]\nproviders = {{ openai = \"{EU}\" }}\n"),
        env: vec![
            ("AIGO_HISTORY__INDEX_WAIT_MS".into(), "300".into()),
            ("AIGO_HISTORY__REPLAY_LIMIT_EVENTS".into(), "5".into()),
        ],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_with(&[EU], options).await;
    for n in 0..3 {
        register(&cluster, &format!("openai/catch-up-{n}")).await;
    }
    logged(&cluster, 3).await;
    counted_at_now(&cluster, 3).await;

    // The indexer records its progress in this row: while the test holds it, the index
    // reaches no further than the three events.
    let pool = cluster.pool(EU).await;
    let mut held = pool.begin().await.unwrap();
    sqlx::query("SELECT indexed_through FROM history_index_state FOR UPDATE")
        .execute(&mut *held)
        .await
        .unwrap();

    register(&cluster, "openai/catch-up-3").await;
    logged(&cluster, 4).await;
    let small = counts_now(&cluster).await;
    assert_eq!(small.status, StatusCode::OK, "{}", small.body);
    assert_eq!(
        *total(&small),
        json!(4),
        "4 events (at most the limit of 5) are replayed: {}",
        small.body
    );

    for n in 4..7 {
        register(&cluster, &format!("openai/catch-up-{n}")).await;
    }
    logged(&cluster, 7).await;
    let large = counts_now(&cluster).await;
    assert_eq!(
        large.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "7 events are past the replay limit of 5: {}",
        large.body
    );
    assert_eq!(large.body["code"], "index-catching-up", "{}", large.body);
    assert!(
        large.headers.contains_key("retry-after"),
        "{:?}",
        large.headers
    );

    held.rollback().await.unwrap();
    counted_at_now(&cluster, 7).await;
}
