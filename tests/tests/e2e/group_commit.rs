//! Group commit: many concurrent writers share transactions, and each still gets the answer
//! it would have got alone; positions stay dense and in commit order; the topic gets it all.

use std::collections::{BTreeMap, HashMap};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::kafka::read_all;
use crate::support::node::{ADMIN_TOKEN, PARTITIONS, TestNode};
use crate::support::outbox::wait_all_published;

/// A write's status and body.
type Answer = (StatusCode, Value);

const MODELS: usize = 20;
const WRITERS: usize = 200;

/// What one writer sends.
#[derive(Debug, Clone)]
struct Write {
    method: Method,
    path: String,
    body: Option<String>,
    key: Option<String>,
    if_match: Option<u64>,
}

fn model(i: usize) -> String {
    format!("acme/gc-{i}")
}

/// 200 writes: racing `If-Match` status changes per model (one may win each), pairs with one
/// idempotency key, new registrations, activations, and a key reused for another request.
fn writes() -> Vec<Write> {
    let mut writes = Vec::new();
    for i in 0..MODELS {
        // Four writers race on each of the first models with the version they all read (1).
        for n in 0..4 {
            let status = ["degraded", "outage", "degraded", "outage"][n];
            writes.push(Write {
                method: Method::PUT,
                path: format!("/v1/models/{}/status", model(i)),
                body: Some(json!({ "status": status }).to_string()),
                key: None,
                if_match: Some(1),
            });
        }
        // The same activation twice with one key: one event, two identical answers.
        for _ in 0..2 {
            writes.push(Write {
                method: Method::POST,
                path: format!("/v1/models/{}/activate", model(i)),
                body: None,
                key: Some(format!("activate-{i}")),
                if_match: None,
            });
        }
        // New models, registered twice each under one key.
        for _ in 0..2 {
            let id = format!("acme/gc-new-{i}");
            writes.push(Write {
                method: Method::POST,
                path: "/v1/models".into(),
                body: Some(
                    json!({ "id": id, "provider": "acme", "name": { "en": id } }).to_string(),
                ),
                key: Some(format!("register-new-{i}")),
                if_match: None,
            });
        }
        // A serve in the node's region, and the same key reused for another request.
        writes.push(Write {
            method: Method::PUT,
            path: format!("/v1/regions/eu-west/models/{}", model(i)),
            body: None,
            key: Some(format!("serve-{i}")),
            if_match: None,
        });
        writes.push(Write {
            method: Method::DELETE,
            path: format!("/v1/regions/eu-west/models/{}", model(i)),
            body: None,
            key: Some(format!("serve-{i}")),
            if_match: None,
        });
    }
    assert_eq!(writes.len(), WRITERS);
    writes
}

async fn send(node: &TestNode, write: &Write) -> Answer {
    let if_match = write.if_match.map(|v| format!("\"{v}\""));
    let mut headers = Vec::new();
    if let Some(key) = &write.key {
        headers.push(("idempotency-key", key.as_str()));
    }
    if let Some(version) = &if_match {
        headers.push(("if-match", version.as_str()));
    }
    let answer = node
        .send(
            write.method.clone(),
            &write.path,
            Some(ADMIN_TOKEN),
            &headers,
            write.body.as_deref(),
        )
        .await;
    (answer.status, answer.body)
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn concurrent_writers_share_commits_and_each_gets_its_own_answer(pool: PgPool) {
    let node = TestNode::start(pool.clone(), "eu-west").await;
    for i in 0..MODELS {
        assert_eq!(
            node.register(&model(i), "acme").await.status,
            StatusCode::CREATED
        );
    }
    let before: i64 = node.event_count().await;

    let writes = writes();
    let answers = join_all(writes.iter().map(|w| send(&node, w))).await;

    // No write failed for the store's sake.
    let mut statuses = BTreeMap::<u16, usize>::new();
    for (status, _) in &answers {
        *statuses.entry(status.as_u16()).or_default() += 1;
    }
    assert!(
        answers
            .iter()
            .all(|(s, _)| s.is_success() || s.is_client_error()),
        "{statuses:?}"
    );

    // If-Match races: per model exactly one status change won, the others were told the version.
    for i in 0..MODELS {
        let path = format!("/v1/models/{}/status", model(i));
        let raced: Vec<&Answer> = writes
            .iter()
            .zip(&answers)
            .filter(|(w, _)| w.path == path)
            .map(|(_, a)| a)
            .collect();
        let won = raced.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        assert_eq!(won, 1, "{path}: {raced:?}");
        for (status, body) in raced.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_eq!(*status, StatusCode::PRECONDITION_FAILED, "{body}");
            assert_eq!(body["code"], "version-mismatch", "{body}");
        }
    }

    // Twins under one key answer alike (one event), and a key reused for another request is 422.
    let mut by_key: HashMap<&str, Vec<(&Write, &Answer)>> = HashMap::new();
    for (write, answer) in writes.iter().zip(&answers) {
        if let Some(key) = &write.key {
            by_key.entry(key).or_default().push((write, answer));
        }
    }
    for (key, sent) in &by_key {
        let [(first_write, first), (second_write, second)] = sent.as_slice() else {
            panic!("{key}: {} writes", sent.len());
        };
        if (&first_write.method, &first_write.path) == (&second_write.method, &second_write.path) {
            assert!(first.0.is_success(), "{key}: {first:?}");
            assert_eq!(first, second, "{key}: twins answered differently");
        } else {
            // Serve and withdraw under one key: the serve applies; the withdraw is refused,
            // as a reused key once the serve holds it (422), or as not served before (409).
            let (serve, withdraw) = if first_write.method == Method::PUT {
                (first, second)
            } else {
                (second, first)
            };
            assert!(serve.0.is_success(), "{key}: {serve:?}");
            let refusal = withdraw.1["code"].as_str();
            assert!(
                matches!(refusal, Some("idempotency-key-reused" | "not-served")),
                "{key}: {withdraw:?}"
            );
        }
    }

    // Every accepted answer's events are in the store, once; nothing else was appended.
    let mut answered: BTreeMap<i64, Value> = BTreeMap::new();
    for (status, body) in &answers {
        if status.is_success() {
            for event in body["events"].as_array().unwrap() {
                answered.insert(event["position"].as_i64().unwrap(), event.clone());
            }
        }
    }
    let stored: Vec<(i64, String, i64, Value)> = sqlx::query_as(
        "SELECT position, stream, sequence, envelope FROM events WHERE position > $1 ORDER BY position",
    )
    .bind(before)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), answered.len(), "events stored vs answered");
    for (position, _, _, envelope) in &stored {
        assert_eq!(
            answered.get(position),
            Some(envelope),
            "position {position}"
        );
    }

    // Positions are dense, and each stream's sequences rise with them (commit order).
    let (min, max, count): (i64, i64, i64) =
        sqlx::query_as("SELECT min(position), max(position), count(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((min, max), (1, count), "positions are 1..=count");
    let all: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT position, stream, sequence FROM events ORDER BY position")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut last_sequence: HashMap<&str, i64> = HashMap::new();
    for (position, stream, sequence) in &all {
        let last = last_sequence.insert(stream, *sequence).unwrap_or(0);
        assert_eq!(*sequence, last + 1, "{stream} at position {position}");
    }

    // The writes shared transactions (rows of one transaction share xmin): the point of it.
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM events WHERE position > $1")
            .bind(before)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        transactions < i64::try_from(stored.len()).unwrap(),
        "{} events in {transactions} transactions: no group commit",
        stored.len()
    );
    println!(
        "{} events in {transactions} transactions; answers {statuses:?}",
        stored.len()
    );

    // Nothing lost on the way to the topic: every event, once, at its position.
    wait_all_published(&pool).await;
    let received = read_all(&node.topic, PARTITIONS).await;
    let mut positions: Vec<i64> = received.iter().map(|m| m.position()).collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=count).collect::<Vec<_>>());
    node.stop().await;
}
