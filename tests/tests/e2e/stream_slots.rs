//! Live streams are a shared resource: one client address holds at most its cap, and a client
//! that stops reading gives its slot back after the write timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use domain::{EventEnvelope, EventPayload, ModelId, RegionId, StreamId};
use projector::ChangeNotice;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use uuid::Uuid;

use crate::support::read_only::{ReadOnlyNode, ReadOnlyOptions};
use crate::support::{EU, wait_until};

/// Opens `/v1/stream` from `from`: the open response (kept open while held), or the refusal.
async fn open_from(base: &str, from: IpAddr) -> Result<reqwest::Response, (StatusCode, Value)> {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let response = client
        .get(format!("{base}/v1/stream"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    if response.status().is_success() {
        Ok(response)
    } else {
        let status = response.status();
        Err((status, response.json().await.unwrap_or(Value::Null)))
    }
}

fn ip(raw: &str) -> IpAddr {
    raw.parse().unwrap()
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn one_address_holds_at_most_its_cap_of_streams(db: PgPool) {
    let options = ReadOnlyOptions {
        max_streams_per_client: 2,
        ..ReadOnlyOptions::default()
    };
    let node = ReadOnlyNode::start(db, options).await;
    let first = open_from(&node.base, ip("127.0.0.1")).await.unwrap();
    let _second = open_from(&node.base, ip("127.0.0.1")).await.unwrap();
    let (status, problem) = open_from(&node.base, ip("127.0.0.1")).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["code"], "too-many-streams-from-host", "{problem}");
    // Another address still gets in: the node's slots are not exhausted by the first one.
    let _other = open_from(&node.base, ip("127.0.0.2")).await.unwrap();
    // A closed stream gives its slot back.
    drop(first);
    let base = &node.base;
    wait_until("127.0.0.1 gets a slot again", || async move {
        open_from(base, ip("127.0.0.1"))
            .await
            .map(drop)
            .map_err(|(status, body)| format!("{status} {body}"))
    })
    .await;
}

/// A change of a made-up model with a large payload: about 8 KiB on the wire.
fn bulky_notice(n: u64) -> ChangeNotice {
    let model = ModelId::parse(&format!("acme/bulk-{n}")).unwrap();
    let mut notice = ChangeNotice::new(&EventEnvelope {
        event_id: Uuid::now_v7(),
        schema_version: domain::CURRENT_SCHEMA_VERSION,
        stream: StreamId::Model(model.clone()),
        sequence: 2,
        position: n,
        model_id: model,
        origin_region: RegionId::parse(EU).unwrap(),
        occurred_at: chrono::Utc::now(),
        correlation_id: Uuid::nil(),
        causation_id: None,
        idempotency_key: None,
        actor: None,
        event: EventPayload::ModelActivated,
    });
    notice.payload = json!({ "padding": "x".repeat(8192) });
    notice
}

/// Opens a stream and never reads past the response head, with a small receive buffer so the
/// server's writes back up quickly.
async fn stalled_client(base: &str) -> TcpStream {
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /v1/stream HTTP/1.1\r\nhost: test\r\naccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0_u8; 64];
    let read = stream.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..read]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn a_client_that_stops_reading_loses_its_stream_after_the_write_timeout(db: PgPool) {
    let options = ReadOnlyOptions {
        max_streams_per_client: 1,
        write_timeout: Duration::from_secs(2),
        ..ReadOnlyOptions::default()
    };
    let node = ReadOnlyNode::start(db, options).await;
    let stalled = stalled_client(&node.base).await;
    let (status, problem) = open_from(&node.base, ip("127.0.0.1")).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");

    // Changes keep coming; the stalled client's buffers fill, its writes stop, and after the
    // write timeout its connection (and its slot) is gone, while it never closed anything.
    let (base, feed) = (&node.base, &node.feed);
    let sent = std::sync::atomic::AtomicU64::new(0);
    let sent = &sent;
    wait_until("the stalled client's slot is given back", || async move {
        let from = sent.fetch_add(64, std::sync::atomic::Ordering::Relaxed);
        feed.announce((from..from + 64).map(bulky_notice));
        tokio::time::sleep(Duration::from_millis(50)).await;
        open_from(base, ip("127.0.0.1"))
            .await
            .map(drop)
            .map_err(|(status, body)| format!("{status} {}", body["code"]))
    })
    .await;
    drop(stalled);
}
