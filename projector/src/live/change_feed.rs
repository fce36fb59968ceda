//! Every event this node's catalogue takes in, from any region, announced once it is durable:
//! the "recent changes" a live client sees. Fire and forget: a slow listener is told it lagged
//! and the follower never waits for anyone.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::{EventEnvelope, LocalizedText, ModelId, RegionId, StreamId};
use serde::Serialize;
use tokio::sync::broadcast;

/// Notices a listener may fall behind before it is told it lagged.
const FEED_BUFFER: usize = 4096;

/// One event, as a client shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeNotice {
    /// The region whose node wrote the event.
    pub region: RegionId,
    /// Its position in that region's event store.
    pub position: u64,
    pub model_id: ModelId,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub occurred_at: DateTime<Utc>,
    /// For availability events: the region that started or stopped serving the model.
    pub served_region: Option<RegionId>,
    /// From the catalogue once the event is applied; absent for a model it does not know.
    pub provider: Option<String>,
    pub name: Option<LocalizedText>,
    /// The event itself, as stored.
    pub payload: serde_json::Value,
    /// The event's sequence in its stream (the model's lifecycle stream, or `served_region`'s
    /// availability stream): what a read-your-writes wait compares with its token. Not shown to
    /// clients, whose feed never promised it.
    #[serde(skip)]
    pub sequence: u64,
}

impl ChangeNotice {
    pub fn new(envelope: &EventEnvelope) -> Self {
        let served_region = match &envelope.stream {
            StreamId::Availability { region, .. } => Some(region.clone()),
            StreamId::Model(_) => None,
        };
        Self {
            region: envelope.origin_region.clone(),
            position: envelope.position,
            model_id: envelope.model_id.clone(),
            event_type: envelope.event.type_name(),
            occurred_at: envelope.occurred_at,
            served_region,
            provider: None,
            name: None,
            payload: serde_json::to_value(&envelope.event).unwrap_or_default(),
            sequence: envelope.sequence,
        }
    }

    /// True if this event is of `stream`, at `sequence` or later: once announced, the
    /// catalogue holds that stream at least at `sequence` (it keeps each stream's newest).
    pub fn reaches(&self, stream: &StreamId, sequence: u64) -> bool {
        let same_stream = match stream {
            StreamId::Model(model) => self.served_region.is_none() && self.model_id == *model,
            StreamId::Availability { region, model } => {
                self.served_region.as_ref() == Some(region) && self.model_id == *model
            }
        };
        same_stream && self.sequence >= sequence
    }

    /// True if the change concerns `region`: written there, or about what it serves.
    pub fn concerns(&self, region: &RegionId) -> bool {
        self.region == *region || self.served_region.as_ref() == Some(region)
    }
}

/// Shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<Arc<ChangeNotice>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeFeed {
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(FEED_BUFFER).0,
        }
    }

    pub fn announce(&self, notices: impl IntoIterator<Item = ChangeNotice>) {
        for notice in notices {
            // Nobody listening is fine.
            let _ = self.sender.send(Arc::new(notice));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeNotice>> {
        self.sender.subscribe()
    }
}
