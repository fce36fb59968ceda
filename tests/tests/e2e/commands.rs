//! The write path end to end: HTTP command → event store + outbox → relay → Kafka topic.

use std::collections::BTreeSet;

use domain::{EventEnvelope, EventPayload};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

use crate::support::kafka::read_all;
use crate::support::node::{ADMIN_TOKEN, PARTITIONS, TestNode};
use crate::support::wait_until;

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn a_registered_model_is_stored_and_published_with_its_envelope(pool: PgPool) {
    let node = TestNode::start(pool, "eu-west").await;

    let answer = node.register("openai/gpt-5", "openai").await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert_eq!(answer.headers["etag"], "\"1\"");
    assert_eq!(answer.headers["location"], "/v1/models/openai/gpt-5");
    let answered: EventEnvelope = serde_json::from_value(answer.body["events"][0].clone()).unwrap();
    assert!(matches!(
        answered.event,
        EventPayload::ModelRegistered { .. }
    ));
    assert_eq!(answered.origin_region.as_str(), "eu-west");
    assert_eq!(answered.actor.as_deref(), Some("admin"));
    let token = answer.body["consistency_token"].as_str().unwrap();
    assert_eq!(
        token,
        format!("eu-west:{}:1:model:openai/gpt-5", answered.position)
    );

    let stored: String = sqlx::query_scalar("SELECT envelope::text FROM events")
        .fetch_one(&node.pool)
        .await
        .unwrap();
    assert_eq!(EventEnvelope::decode(stored.as_bytes()).unwrap(), answered);

    let messages = wait_until("the event on the region's topic", || async {
        let messages = read_all(&node.topic, PARTITIONS).await;
        match messages.len() {
            0 => Err("no message yet".to_owned()),
            _ => Ok(messages),
        }
    })
    .await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.key.as_deref(), Some("openai/gpt-5"));
    assert_eq!(message.position(), answered.position as i64);
    assert_eq!(EventEnvelope::decode(&message.payload).unwrap(), answered);
    node.stop().await;
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn the_same_idempotency_key_five_times_appends_one_event(pool: PgPool) {
    let node = TestNode::start(pool, "eu-west").await;
    let body = r#"{"id":"acme/one","provider":"acme","name":{"en":"One"}}"#;
    let headers = [("idempotency-key", "register-acme-one")];

    let mut answers = Vec::new();
    for _ in 0..5 {
        let answer = node
            .send(
                Method::POST,
                "/v1/models",
                Some(ADMIN_TOKEN),
                &headers,
                Some(body),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answers.push(answer.body);
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "every retry answers the first answer"
    );
    assert_eq!(node.event_count().await, 1);

    let other = r#"{"id":"acme/two","provider":"acme","name":{"en":"Two"}}"#;
    let reused = node
        .send(
            Method::POST,
            "/v1/models",
            Some(ADMIN_TOKEN),
            &headers,
            Some(other),
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["code"], "idempotency-key-reused");
    assert_eq!(node.event_count().await, 1);
    node.stop().await;
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn concurrent_idempotent_retries_append_once(pool: PgPool) {
    let node = TestNode::start(pool, "eu-west").await;
    let body = r#"{"id":"acme/race","provider":"acme","name":{"en":"Race"}}"#;
    let headers = [("idempotency-key", "register-acme-race")];
    let answers = futures::future::join_all((0..10).map(|_| {
        node.send(
            Method::POST,
            "/v1/models",
            Some(ADMIN_TOKEN),
            &headers,
            Some(body),
        )
    }))
    .await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::CREATED),
        "{answers:?}"
    );
    assert_eq!(node.event_count().await, 1);
    node.stop().await;
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn twenty_concurrent_writers_with_one_if_match_give_one_success(pool: PgPool) {
    let node = TestNode::start(pool, "eu-west").await;
    assert_eq!(
        node.register("acme/contended", "acme").await.status,
        StatusCode::CREATED
    );
    let before = node.event_count().await;

    let statuses = ["degraded", "outage"];
    let node = &node;
    let answers = futures::future::join_all((0..20).map(|i| {
        let body = format!(r#"{{"status":"{}"}}"#, statuses[i % 2]);
        async move {
            node.send(
                Method::PUT,
                "/v1/models/acme/contended/status",
                Some(ADMIN_TOKEN),
                &[("if-match", "\"1\"")],
                Some(&body),
            )
            .await
        }
    }))
    .await;

    let codes: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    let successes = codes.iter().filter(|s| **s == StatusCode::OK).count();
    let mismatches = codes
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((successes, mismatches), (1, 19), "{codes:?}");
    for answer in answers
        .iter()
        .filter(|a| a.status == StatusCode::PRECONDITION_FAILED)
    {
        assert_eq!(answer.body["code"], "version-mismatch");
        assert_eq!(answer.body["current_version"], 2);
    }
    assert_eq!(node.event_count().await, before + 1);
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn every_command_kind_appends_in_stream_order(pool: PgPool) {
    let node = TestNode::start(pool, "eu-west").await;
    let id = "meta/llama-3.1";
    assert_eq!(node.register(id, "meta").await.status, StatusCode::CREATED);
    assert_eq!(node.lifecycle(id, "activate").await.status, StatusCode::OK);
    let status = node
        .send(
            Method::PUT,
            &format!("/v1/models/{id}/status"),
            Some(ADMIN_TOKEN),
            &[],
            Some(r#"{"status":"degraded"}"#),
        )
        .await;
    assert_eq!(status.status, StatusCode::OK, "{:?}", status.body);
    let patched = node
        .send(
            Method::PATCH,
            &format!("/v1/models/{}", id.replace('/', "%2F")),
            Some(ADMIN_TOKEN),
            &[("if-match", "\"3\"")],
            Some(r#"{"name":{"en":"Llama 3.1","ko":"라마 3.1"}}"#),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let served = node
        .send(
            Method::PUT,
            &format!("/v1/regions/eu-west/models/{id}"),
            Some(ADMIN_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(served.status, StatusCode::OK, "{:?}", served.body);
    assert_eq!(
        node.lifecycle(id, "deactivate").await.status,
        StatusCode::OK
    );
    assert_eq!(node.lifecycle(id, "retire").await.status, StatusCode::OK);
    let withdrawn = node
        .send(
            Method::DELETE,
            &format!("/v1/regions/eu-west/models/{id}"),
            Some(ADMIN_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(withdrawn.status, StatusCode::OK, "{:?}", withdrawn.body);

    let types: Vec<String> = sqlx::query_scalar("SELECT event_type FROM events ORDER BY position")
        .fetch_all(&node.pool)
        .await
        .unwrap();
    assert_eq!(
        types,
        [
            "model_registered",
            "model_activated",
            "model_status_changed",
            "model_metadata_updated",
            "model_served",
            "model_deactivated",
            "model_retired",
            "model_withdrawn",
        ]
    );

    let messages = wait_until("all eight events on the topic", || async {
        let messages = read_all(&node.topic, PARTITIONS).await;
        match messages.len() {
            n if n >= 8 => Ok(messages),
            n => Err(format!("{n} messages")),
        }
    })
    .await;
    assert_eq!(messages.len(), 8);
    let partitions: BTreeSet<i32> = messages.iter().map(|m| m.partition).collect();
    assert_eq!(partitions.len(), 1, "one model, one key, one partition");
    let positions: Vec<i64> = messages.iter().map(|m| m.position()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    node.stop().await;
}
