//! A Server-Sent Events client for tests: connects, then yields parsed events.

use std::time::Duration;

use eventsource_stream::{EventStream, Eventsource};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

/// One event as the server framed it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<u64>,
    pub data: Value,
}

pub struct SseClient {
    events: EventStream<BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
}

impl std::fmt::Debug for SseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SseClient")
    }
}

/// What opening a stream answered.
#[derive(Debug)]
pub enum Opened {
    Stream(SseClient),
    Refused(reqwest::StatusCode, Value),
}

impl SseClient {
    pub async fn open(url: &str, last_event_id: Option<u64>) -> Opened {
        Self::try_open(url, last_event_id)
            .await
            .expect("opening the stream")
    }

    /// As [`SseClient::open`]; `Err` if no answer came (the node is down).
    pub async fn try_open(url: &str, last_event_id: Option<u64>) -> reqwest::Result<Opened> {
        let mut request = reqwest::Client::new()
            .get(url)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Ok(Opened::Refused(
                status,
                serde_json::from_str(&text).unwrap_or(Value::Null),
            ));
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Ok(Opened::Stream(Self {
            events: response.bytes_stream().boxed().eventsource(),
        }))
    }

    pub async fn connect(url: &str, last_event_id: Option<u64>) -> Self {
        match Self::open(url, last_event_id).await {
            Opened::Stream(client) => client,
            Opened::Refused(status, body) => panic!("stream refused: {status} {body}"),
        }
    }

    /// The next event, or `None` if the stream ended or `within` passed.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let event = tokio::time::timeout(within, self.events.next())
            .await
            .ok()??
            .ok()?;
        Some(SseEvent {
            id: event.id.parse().ok(),
            data: serde_json::from_str(&event.data).unwrap_or(Value::String(event.data)),
            event: event.event,
        })
    }

    /// The next event named one of `names`, skipping others (freshness ticks and the like).
    pub async fn next_named(&mut self, names: &[&str], within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            if names.contains(&event.event.as_str()) {
                return Some(event);
            }
        }
    }
}
