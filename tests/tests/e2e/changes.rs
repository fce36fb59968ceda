//! `GET /v1/changes`: every region's events in the node's log order, by cursor. From the start
//! it equals the event log in order; followed while commands arrive it misses and repeats
//! nothing; `?recent=` gives the newest; bad input is refused precisely.

use std::collections::BTreeSet;

use chrono::{TimeDelta, Utc};
use domain::{
    CURRENT_SCHEMA_VERSION, EventEnvelope, EventPayload, ModelId, OperationalStatus, RegionId,
    StreamId,
};
use event_store::event_log::{self, LoggedEvent};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

use crate::support::node::TestNode;
use crate::support::{EU, US, wait_until};

/// Event `i` of a made-up log: regions alternate, each with its own positions.
fn logged(i: usize, positions: &mut [u64; 2]) -> LoggedEvent {
    let (slot, region) = if i.is_multiple_of(2) {
        (0, EU)
    } else {
        (1, US)
    };
    positions[slot] += 1;
    let model = ModelId::parse(&format!("acme/m-{}", i % 17)).unwrap();
    LoggedEvent {
        partition: 0,
        offset: i as i64,
        envelope: EventEnvelope {
            event_id: uuid::Uuid::now_v7(),
            schema_version: CURRENT_SCHEMA_VERSION,
            stream: StreamId::Model(model.clone()),
            sequence: i as u64 + 1,
            position: positions[slot],
            model_id: model,
            origin_region: RegionId::parse(region).unwrap(),
            occurred_at: Utc::now() - TimeDelta::hours(1),
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
            actor: None,
            event: EventPayload::ModelStatusChanged {
                status: OperationalStatus::Degraded,
            },
        },
    }
}

/// (region, position) of each change of a page, and its `next_cursor`.
fn page_of(body: &Value) -> (Vec<(String, u64)>, String) {
    let changes = body["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {body}"))
        .iter()
        .map(|c| {
            (
                c["region"].as_str().unwrap().to_owned(),
                c["position"].as_u64().unwrap(),
            )
        })
        .collect();
    (changes, body["next_cursor"].as_str().unwrap().to_owned())
}

async fn get(node: &TestNode, path: &str) -> (StatusCode, Value) {
    let answer = node.send(Method::GET, path, None, &[], None).await;
    (answer.status, answer.body)
}

/// The node's event log in arrival order.
async fn log_order(pool: &PgPool) -> Vec<(String, u64)> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT region, position FROM event_log ORDER BY arrival")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().map(|(r, p)| (r, p as u64)).collect()
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn changes_from_the_start_equal_the_log_in_order(pool: PgPool) {
    let mut positions = [0_u64; 2];
    let events: Vec<LoggedEvent> = (0..2_500).map(|i| logged(i, &mut positions)).collect();
    // Four follower batches; the third re-delivers part of the second (logged once).
    let mut conn = pool.acquire().await.unwrap();
    for batch in [&events[..900], &events[600..1_700], &events[1_700..]] {
        event_log::insert(&mut conn, batch).await.unwrap();
    }
    drop(conn);
    let expected: Vec<(String, u64)> = events
        .iter()
        .map(|e| (e.envelope.origin_region.to_string(), e.envelope.position))
        .collect();
    assert_eq!(log_order(&pool).await, expected, "arrival is batch order");

    let node = TestNode::start(pool, EU).await;
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let path = match &cursor {
            Some(after) => format!("/v1/changes?limit=1000&after={after}"),
            None => "/v1/changes?limit=1000".to_owned(),
        };
        let (status, body) = get(&node, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (changes, next) = page_of(&body);
        pages += 1;
        if changes.is_empty() {
            assert_eq!(
                cursor.as_deref(),
                Some(next.as_str()),
                "an empty page keeps the cursor"
            );
            break;
        }
        seen.extend(changes);
        cursor = Some(next);
        assert!(pages <= 4, "more pages than the log holds");
    }
    assert_eq!(seen, expected, "every event once, in the log's order");

    // The newest five, oldest first; their cursor goes on from the end.
    let (status, body) = get(&node, "/v1/changes?recent=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (recent, next) = page_of(&body);
    assert_eq!(recent, expected[expected.len() - 5..]);
    let (_, body) = get(&node, &format!("/v1/changes?after={next}")).await;
    assert_eq!(page_of(&body).0, Vec::new());
    // A change has the live stream's `change` shape.
    let first = &get(&node, "/v1/changes?limit=1").await.1["changes"][0];
    assert_eq!(first["type"], "model_status_changed", "{first}");
    assert_eq!(first["model_id"], "acme/m-0", "{first}");
    assert_eq!(first["payload"]["status"], "degraded", "{first}");
    assert!(first["cursor"].is_string(), "{first}");

    // Bad input: a precise 422 naming the parameter.
    for (path, field) in [
        ("/v1/changes?limit=0", "limit"),
        ("/v1/changes?limit=1001", "limit"),
        ("/v1/changes?recent=0", "recent"),
        ("/v1/changes?after=zz", "cursor"),
        ("/v1/changes?after=6f70656e6169", "cursor"),
        ("/v1/changes?after=6130&recent=3", "recent"),
        ("/v1/changes?limit=x", "query"),
        ("/v1/changes?afer=6130", "query"),
    ] {
        let (status, body) = get(&node, path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    node.stop().await;
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn following_the_changes_while_commands_arrive_misses_and_repeats_nothing(pool: PgPool) {
    const MODELS: usize = 60;
    let node = TestNode::start(pool.clone(), EU).await;
    let node = &node;
    let writing = async {
        for i in 0..MODELS {
            let id = format!("acme/follow-{i}");
            assert_eq!(node.register(&id, "acme").await.status, StatusCode::CREATED);
            assert_eq!(node.lifecycle(&id, "activate").await.status, StatusCode::OK);
        }
    };
    let following = async {
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        // Small pages, polled while the writer goes on, until every event was seen.
        while seen.len() < 2 * MODELS {
            let path = match &cursor {
                Some(after) => format!("/v1/changes?limit=7&after={after}"),
                None => "/v1/changes?limit=7".to_owned(),
            };
            let (status, body) = get(node, &path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (changes, next) = page_of(&body);
            if changes.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            seen.extend(changes);
            cursor = Some(next);
        }
        seen
    };
    let following = async {
        tokio::time::timeout(crate::support::DEADLINE, following)
            .await
            .expect("the follower saw every event within the deadline")
    };
    let ((), seen) = tokio::join!(writing, following);
    let pool = &pool;
    wait_until("every event is logged", || async move {
        let logged = log_order(pool).await.len();
        if logged == 2 * MODELS {
            Ok(())
        } else {
            Err(format!("{logged} logged"))
        }
    })
    .await;
    let unique: BTreeSet<&(String, u64)> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a change was repeated");
    assert_eq!(
        seen,
        log_order(pool).await,
        "the follower saw the log in order"
    );
    let positions: BTreeSet<u64> = seen.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        positions,
        (1..=2 * MODELS as u64).collect(),
        "every event, none missed"
    );
}
