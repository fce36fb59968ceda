//! Read-your-writes on the catalogue (`GET /v1/models/{id}?after=`) is driven by the catalogue
//! follower's change feed: a waiting read sends nothing to PostgreSQL until it is answered.
//! Proved by putting the read pool behind a fault proxy that holds back every byte while the
//! read waits: a poll would be counted as a held chunk.

use std::time::Duration;

use chrono::Utc;
use domain::{
    ConsistencyToken, EventEnvelope, EventPayload, LocalizedText, ModelId, OperationalStatus,
    ProviderId, RegionId, StreamId,
};
use projector::ChangeNotice;
use reqwest::StatusCode;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::support::fault_proxy::FaultProxy;
use crate::support::read_only::{ReadOnlyNode, ReadOnlyOptions};
use crate::support::{EU, wait_until};

const MODEL: &str = "acme/ryw";

fn registered(sequence: u64) -> EventEnvelope {
    let model = ModelId::parse(MODEL).unwrap();
    EventEnvelope {
        event_id: Uuid::now_v7(),
        schema_version: domain::CURRENT_SCHEMA_VERSION,
        stream: StreamId::Model(model.clone()),
        sequence,
        position: 1,
        model_id: model.clone(),
        origin_region: RegionId::parse(EU).unwrap(),
        occurred_at: Utc::now(),
        correlation_id: Uuid::nil(),
        causation_id: None,
        idempotency_key: None,
        actor: None,
        event: EventPayload::ModelRegistered {
            id: model,
            provider: ProviderId::parse("acme").unwrap(),
            home_region: RegionId::parse(EU).unwrap(),
            name: LocalizedText::english("RYW"),
            description: None,
            status: OperationalStatus::Operational,
        },
    }
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn a_waiting_read_sends_nothing_to_postgresql_and_is_answered_by_the_feed(db: PgPool) {
    let upstream = (*db.connect_options()).clone();
    let proxy = FaultProxy::start(
        format!("{}:{}", upstream.get_host(), upstream.get_port())
            .parse()
            .unwrap(),
    )
    .await
    .unwrap();
    // The read pool reaches PostgreSQL through the proxy; the test's own pool does not.
    let through_proxy = upstream
        .clone()
        .host(&proxy.addr().ip().to_string())
        .port(proxy.addr().port());
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(through_proxy)
        .await
        .unwrap();
    let node = ReadOnlyNode::start(pool, ReadOnlyOptions::default()).await;
    let (base, feed) = (node.base, node.feed);
    let event = registered(1);
    let token = ConsistencyToken {
        region: event.origin_region.clone(),
        position: event.position,
        sequence: event.sequence,
        stream: event.stream.clone(),
    };
    let url = format!("{base}/v1/models/{MODEL}?after={token}");
    let read = tokio::spawn(async move {
        let response = reqwest::get(url).await.unwrap();
        (response.status(), response.text().await.unwrap())
    });

    // The read looked once (the model is not catalogued yet) and now waits.
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&db)
        .await
        .unwrap();
    let db = &db;
    let name = &name;
    wait_until("the read looked at the catalogue", || async move {
        let looked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = $1 AND state = 'idle' AND query LIKE '%catalogue%'
                AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .fetch_one(db)
        .await
        .map_err(|e| e.to_string())?;
        if looked > 0 {
            Ok(())
        } else {
            Err("no look yet".to_owned())
        }
    })
    .await;
    // PostgreSQL reports the look idle before its last bytes (ReadyForQuery) have crossed the
    // proxy: wait until nothing has passed for a while, so the blackhole holds only new traffic.
    let mut forwarded = proxy.stats().forwarded_chunks;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = proxy.stats().forwarded_chunks;
        if now == forwarded {
            break;
        }
        forwarded = now;
    }
    proxy.blackhole();
    // Other streams' events and a second of waiting: a poll (every 15 ms before) would be held.
    let other = {
        let mut other = registered(1);
        other.stream = StreamId::Model(ModelId::parse("acme/other").unwrap());
        other.model_id = ModelId::parse("acme/other").unwrap();
        other
    };
    feed.announce([ChangeNotice::new(&other)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        proxy.stats().held_chunks,
        0,
        "the waiting read queried PostgreSQL"
    );
    assert!(!read.is_finished(), "answered before its event");

    // The follower commits the event and announces it: the read is answered with it.
    let mut tx = db.begin().await.unwrap();
    event_store::catalogue::apply_to_catalogue(&mut tx, &event)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    proxy.heal();
    feed.announce([ChangeNotice::new(&event)]);
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("answered once announced")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["id"], MODEL, "{body}");
}
