//! A model's history is paged by cursor: a model with 10,000 events from two regions, with
//! ties on the event time, is visited page by page exactly once each, in history order
//! (event time, then region, then position); bad cursors and limits are refused.

use chrono::{DateTime, TimeDelta, Utc};
use domain::{
    CURRENT_SCHEMA_VERSION, EventEnvelope, EventPayload, ModelId, OperationalStatus, RegionId,
    StreamId,
};
use event_store::event_log::{self, LoggedEvent};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

use crate::support::node::TestNode;
use crate::support::{EU, US};

const EVENTS: usize = 10_000;
const MODEL: &str = "acme/long-lived";

/// Event `i`: two of every three from eu-west; two events share each millisecond, so the
/// order within a millisecond is decided by region, then position.
fn event(i: usize, base: DateTime<Utc>, positions: &mut [u64; 2]) -> LoggedEvent {
    let (slot, region) = if i.is_multiple_of(3) {
        (1, US)
    } else {
        (0, EU)
    };
    positions[slot] += 1;
    let model = ModelId::parse(MODEL).unwrap();
    let status = if i.is_multiple_of(2) {
        OperationalStatus::Degraded
    } else {
        OperationalStatus::Operational
    };
    let envelope = EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        schema_version: CURRENT_SCHEMA_VERSION,
        stream: StreamId::Model(model.clone()),
        sequence: i as u64 + 1,
        position: positions[slot],
        model_id: model,
        origin_region: RegionId::parse(region).unwrap(),
        occurred_at: base + TimeDelta::milliseconds((i / 2) as i64),
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        actor: None,
        event: EventPayload::ModelStatusChanged { status },
    };
    LoggedEvent {
        partition: 0,
        offset: i as i64,
        envelope,
    }
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn ten_thousand_events_are_paged_each_once_in_history_order(pool: PgPool) {
    let base = Utc::now() - TimeDelta::days(1);
    let mut positions = [0_u64; 2];
    let logged: Vec<LoggedEvent> = (0..EVENTS)
        .map(|i| event(i, base, &mut positions))
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    event_log::insert(&mut conn, &logged).await.unwrap();
    drop(conn);
    let mut expected: Vec<(DateTime<Utc>, String, u64)> = logged
        .iter()
        .map(|l| {
            let e = &l.envelope;
            (e.occurred_at, e.origin_region.to_string(), e.position)
        })
        .collect();
    expected.sort();

    let node = TestNode::start(pool, EU).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/models/{MODEL}/history?limit=1000&cursor={cursor}"),
            None => format!("/v1/models/{MODEL}/history?limit=1000"),
        };
        let answer = node.send(Method::GET, &path, None, &[], None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        pages += 1;
        for event in answer.body["events"].as_array().unwrap() {
            let at = DateTime::parse_from_rfc3339(event["occurred_at"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc);
            let region = event["region"].as_str().unwrap().to_owned();
            let position = event["position"].as_u64().unwrap();
            seen.push((at, region, position));
        }
        match answer.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages <= EVENTS / 1000 + 1, "more pages than events allow");
    }
    assert_eq!(pages, EVENTS / 1000);
    assert_eq!(seen.len(), EVENTS);
    assert_eq!(
        seen, expected,
        "pages visit every event once, in history order"
    );

    // The default page, then bad input: a precise 422 naming the parameter.
    let first = node
        .send(
            Method::GET,
            &format!("/v1/models/{MODEL}/history"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(first.body["events"].as_array().unwrap().len(), 500);
    assert!(first.body["next_cursor"].is_string());
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=zz", "cursor"),
        ("cursor=6f70656e6169", "cursor"),
        ("limit=many", "query"),
    ] {
        let answer = node
            .send(
                Method::GET,
                &format!("/v1/models/{MODEL}/history?{query}"),
                None,
                &[],
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(answer.body["code"], "invalid-parameter", "{query}");
        assert_eq!(answer.body["field"], field, "{query}");
    }
    node.stop().await;
}
