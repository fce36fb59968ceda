//! `GET /v1/stream`: a snapshot of the counts, then every change as it happens, over
//! Server-Sent Events.
//!
//! - `snapshot` and `counts` carry the counts body of `GET /v1/counts` (or of one region's
//!   view with `?region=`), `change` one event of any region; each has an increasing `id`.
//! - `Last-Event-ID` resumes: the missed events are sent, none twice; if they are no longer
//!   kept, a fresh `snapshot` is sent instead.
//! - `freshness` (no id) every tick tells how recently each region was heard from; it is also
//!   the heartbeat.
//! - A client that falls behind is resynced with a `snapshot`; it never slows anyone else.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use domain::RegionId;
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Interval, MissedTickBehavior};

use super::hub::{HubEvent, HubEventKind};
use super::slots::{Refused, StreamSlot};
use crate::counts::{freshness, render};
use crate::openapi::{NotFound, ResumeHeader, TooManyRequests, Unavailable, Unprocessable};
use crate::params::Params;
use crate::problem::QueryError;
use crate::state::QueryState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only this region's view of the counts, and only changes that concern it.
    #[param(value_type = RegionId, required = false)]
    pub region: Option<String>,
}

/// Server-Sent Events: a `snapshot` of the counts (the `GET /v1/counts` body), then a `counts`
/// event per change of the counts and a `change` event per event of any region, each with an
/// increasing `id`; a `freshness` event (no id) every tick.
#[utoipa::path(
    get, path = "/v1/stream", tag = "stream", operation_id = "stream",
    params(StreamQuery, ResumeHeader),
    responses(
        (status = 200, description = "The event stream; it does not end", content_type = "text/event-stream", body = String),
        NotFound, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn stream(
    State(state): State<QueryState>,
    Params(query): Params<StreamQuery>,
    connected: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let region = match query.region {
        None => None,
        Some(raw) => match RegionId::parse(&raw) {
            Ok(region) if state.regions.contains(&region) => Some(region),
            _ => return Err(QueryError::UnknownRegion(raw)),
        },
    };
    let host = connected.map(|Extension(ConnectInfo(peer))| peer.ip());
    let permit = state.hub.admit(host).map_err(|refused| {
        metrics::counter!("stream_refused_total").increment(1);
        match refused {
            Refused::NodeFull(max) => QueryError::TooManyStreams(max),
            Refused::HostFull(max) => QueryError::TooManyStreamsFromHost(max),
        }
    })?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let client = Client::start(state, region, last_event_id, permit).await;
    let mut response = Sse::new(client.into_stream())
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies must pass events through as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One connected client.
struct Client {
    state: QueryState,
    region: Option<RegionId>,
    live: broadcast::Receiver<Arc<HubEvent>>,
    pending: VecDeque<Event>,
    last_sent: u64,
    tick: Interval,
    _slot: StreamSlot,
    _connected: Connected,
}

impl Client {
    async fn start(
        state: QueryState,
        region: Option<RegionId>,
        last_event_id: Option<u64>,
        slot: StreamSlot,
    ) -> Self {
        let joined = state.hub.join(last_event_id);
        let mut tick = tokio::time::interval(state.stream_tick);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut client = Self {
            region,
            live: joined.live,
            pending: VecDeque::new(),
            last_sent: joined.latest,
            tick,
            _slot: slot,
            _connected: Connected::new(),
            state,
        };
        match joined.missed {
            Some(missed) => {
                metrics::counter!("stream_resumed_total").increment(1);
                client.last_sent = last_event_id.unwrap_or(joined.latest);
                for event in missed {
                    client.queue(&event);
                }
            }
            None => client.queue_snapshot(joined.latest).await,
        }
        client
    }

    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        let closing = self.state.hub.closing();
        let events = futures::stream::unfold(self, |mut client| async move {
            client.next().await.map(|event| (Ok(event), client))
        });
        futures::StreamExt::take_until(events, closing)
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                metrics::counter!("stream_events_sent_total").increment(1);
                return Some(event);
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(event) => self.queue(&event),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "stream client lagged; resyncing");
                        metrics::counter!("stream_resyncs_total").increment(1);
                        let latest = self.state.hub.latest();
                        self.queue_snapshot(latest).await;
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.tick.tick() => self.queue_freshness(),
            }
        }
    }

    fn queue(&mut self, event: &HubEvent) {
        if event.id <= self.last_sent {
            return;
        }
        self.last_sent = event.id;
        let data = match (&event.kind, &self.region) {
            (HubEventKind::Counts { global, .. }, None) => Some(("counts", global.as_str())),
            (HubEventKind::Counts { regions, .. }, Some(region)) => {
                regions.get(region).map(|json| ("counts", json.as_str()))
            }
            (HubEventKind::Change { notice, json }, region) => region
                .as_ref()
                .is_none_or(|region| notice.concerns(region))
                .then_some(("change", json.as_str())),
        };
        if let Some((name, json)) = data {
            self.pending.push_back(
                Event::default()
                    .event(name)
                    .id(event.id.to_string())
                    .data(json),
            );
        }
    }

    /// The counts as they are now, standing for every event up to `latest`.
    async fn queue_snapshot(&mut self, latest: u64) {
        let (state, region) = (&self.state, self.region.as_ref());
        let json = state
            .projection
            .with_view(|view, version| {
                serde_json::to_string(&render(state, view, version, region)).unwrap_or_default()
            })
            .await;
        self.last_sent = self.last_sent.max(latest);
        self.pending.push_back(
            Event::default()
                .event("snapshot")
                .id(self.last_sent.to_string())
                .data(json),
        );
    }

    fn queue_freshness(&mut self) {
        let body = freshness(&self.state, self.region.as_ref());
        let json = serde_json::to_string(&body).unwrap_or_default();
        self.pending
            .push_back(Event::default().event("freshness").data(json));
    }
}

/// Keeps the open-streams gauge right however a stream ends.
struct Connected;

impl Connected {
    fn new() -> Self {
        metrics::gauge!("stream_clients").increment(1.0);
        Self
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!("stream_clients").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use projector::Projection;
    use projector::{ActorId, ActorState};

    use super::*;
    use crate::stream::hub::StreamHub;

    fn state() -> QueryState {
        let region = RegionId::parse("eu-west").unwrap();
        QueryState {
            // Never connected: these tests touch no database.
            pool: sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap(),
            metrics: None,
            projection: Projection::new(),
            feed: projector::ChangeFeed::new(),
            region: region.clone(),
            regions: vec![region],
            partitions: 3,
            stale_after: Duration::from_secs(5),
            read_wait: Duration::from_secs(1),
            hub: StreamHub::new(4),
            stream_tick: Duration::from_secs(3600),
            health: crate::readiness::TaskHealth::new(),
            history: crate::history::HistoryGate::new(4),
        }
    }

    fn counts() -> HubEventKind {
        HubEventKind::Counts {
            global: "{\"total\":1}".into(),
            regions: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_resynced_with_a_snapshot() {
        let state = state();
        let slot = state.hub.admit(None).unwrap();
        let mut client = Client::start(state.clone(), None, None, slot).await;
        let first = client.next().await.unwrap();
        assert!(
            format!("{first:?}").contains("event: snapshot"),
            "{first:?}"
        );
        // The client reads nothing while far more events pass than it may buffer.
        state
            .projection
            .observe([ActorState::empty(ActorId::new(
                RegionId::parse("eu-west").unwrap(),
                0,
            ))])
            .await;
        for _ in 0..3000 {
            state.hub.publish_for_test(counts());
        }
        let next = client.next().await.unwrap();
        assert!(format!("{next:?}").contains("event: snapshot"), "{next:?}");
        // Then it continues live from the newest event, not the backlog.
        state.hub.publish_for_test(counts());
        let live = client.next().await.unwrap();
        assert!(
            format!("{live:?}").contains(&state.hub.latest().to_string()),
            "{live:?}"
        );
    }

    #[tokio::test]
    async fn a_resuming_client_gets_the_missed_events_and_no_snapshot() {
        let state = state();
        state.hub.publish_for_test(counts());
        let seen = state.hub.latest();
        state.hub.publish_for_test(counts());
        state.hub.publish_for_test(counts());
        let slot = state.hub.admit(None).unwrap();
        let mut client = Client::start(state.clone(), None, Some(seen), slot).await;
        for expected in [seen + 1, seen + 2] {
            let event = format!("{:?}", client.next().await.unwrap());
            assert!(!event.contains("snapshot"), "{event}");
            assert!(
                event.contains(&format!("id: {expected}")) || event.contains(&expected.to_string()),
                "{event}"
            );
        }
    }
}
