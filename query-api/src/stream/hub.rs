//! The node's live event log for clients: every change of the counts and every event the
//! catalogue takes in, numbered in one increasing sequence, kept in a bounded ring so a client
//! that reconnects with `Last-Event-ID` gets exactly what it missed.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use domain::RegionId;
use projector::ChangeNotice;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::slots::{Refused, StreamSlot, StreamSlots};
use crate::counts::render;
use crate::state::QueryState;

/// Events kept for resumption; a client further behind gets a fresh snapshot instead.
const RING: usize = 4096;
/// Events a live client may fall behind before it is resynced with a snapshot.
const LIVE_BUFFER: usize = 1024;

/// One numbered stream event, rendered once for every client.
#[derive(Debug)]
pub struct HubEvent {
    pub id: u64,
    pub kind: HubEventKind,
}

#[derive(Debug)]
pub enum HubEventKind {
    /// The counts after a change: the whole deployment's and each region's view, as JSON.
    Counts {
        global: String,
        regions: BTreeMap<RegionId, String>,
    },
    /// One event of some region.
    Change {
        notice: Arc<ChangeNotice>,
        json: String,
    },
}

/// What a new client starts from.
#[derive(Debug)]
pub struct Joined {
    pub live: broadcast::Receiver<Arc<HubEvent>>,
    /// Events after the client's `Last-Event-ID`, or `None` if they cannot all be given.
    pub missed: Option<Vec<Arc<HubEvent>>>,
    /// The id of the newest event so far: a snapshot taken now stands for it.
    pub latest: u64,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Mutex<Log>,
    live: broadcast::Sender<Arc<HubEvent>>,
    slots: StreamSlots,
    closing: watch::Sender<bool>,
}

#[derive(Debug)]
struct Log {
    ring: VecDeque<Arc<HubEvent>>,
    latest: u64,
}

impl StreamHub {
    /// Ids continue from the boot time in milliseconds × 10⁶, so they keep increasing across
    /// restarts and an id from an earlier run is never mistaken for one of this run.
    pub fn new(max_streams: usize) -> Self {
        Self::with_per_host_cap(max_streams, 0)
    }

    /// [`StreamHub::new`], with at most `per_host` streams from one client address (0: no cap).
    pub fn with_per_host_cap(max_streams: usize, per_host: usize) -> Self {
        let boot = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        Self {
            inner: Arc::new(Inner {
                log: Mutex::new(Log {
                    ring: VecDeque::with_capacity(RING),
                    latest: boot.saturating_mul(1_000_000),
                }),
                live: broadcast::channel(LIVE_BUFFER).0,
                slots: StreamSlots::new(max_streams, per_host),
                closing: watch::channel(false).0,
            }),
        }
    }

    /// A slot for one more client from `host`, if the caps allow.
    pub fn admit(&self, host: Option<std::net::IpAddr>) -> Result<StreamSlot, Refused> {
        self.inner.slots.admit(host)
    }

    /// Joins the live stream; `after` is the client's `Last-Event-ID`.
    pub fn join(&self, after: Option<u64>) -> Joined {
        let log = self.lock();
        // Subscribing under the lock: nothing published after the copy below is missed.
        let live = self.inner.live.subscribe();
        let missed = after.and_then(|after| {
            if after == log.latest {
                return Some(Vec::new());
            }
            let start = log.ring.iter().position(|event| event.id == after)?;
            Some(log.ring.iter().skip(start + 1).cloned().collect())
        });
        Joined {
            live,
            missed,
            latest: log.latest,
        }
    }

    /// The id of the newest event so far.
    pub fn latest(&self) -> u64 {
        self.lock().latest
    }

    /// Resolves when the node is shutting down: every stream ends then.
    pub fn closing(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut closing = self.inner.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }

    fn publish(&self, kind: HubEventKind) {
        let mut log = self.lock();
        log.latest += 1;
        let event = Arc::new(HubEvent {
            id: log.latest,
            kind,
        });
        if log.ring.len() == RING {
            log.ring.pop_front();
        }
        log.ring.push_back(event.clone());
        // No client connected is fine.
        let _ = self.inner.live.send(event);
    }

    #[cfg(test)]
    pub(crate) fn publish_for_test(&self, kind: HubEventKind) {
        self.publish(kind);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the ring half-written: recover it.
        self.inner
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Feeds the hub until `shutdown`: renders the counts after every change (coalescing bursts)
/// and relays every catalogue event; then ends every client's stream.
pub async fn run_hub(state: QueryState, shutdown: impl Future<Output = ()>) {
    let hub = state.hub.clone();
    let mut changes = state.projection.subscribe();
    let mut events = state.feed.subscribe();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = shutdown.as_mut() => break,
            changed = changes.recv() => match changed {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    // Later notices in the queue are covered by reading the view now.
                    while changes.try_recv().is_ok() {}
                    hub.publish(counts_event(&state).await);
                }
                Err(RecvError::Closed) => break,
            },
            event = events.recv() => match event {
                Ok(notice) => {
                    let json = serde_json::to_string(&*notice).unwrap_or_default();
                    hub.publish(HubEventKind::Change { notice, json });
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "stream hub fell behind the change feed");
                    metrics::counter!("stream_changes_dropped_total").increment(missed);
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = hub.inner.closing.send(true);
}

async fn counts_event(state: &QueryState) -> HubEventKind {
    state
        .projection
        .with_view(|view, version| {
            let json = |only| {
                serde_json::to_string(&render(state, view, version, only)).unwrap_or_default()
            };
            HubEventKind::Counts {
                global: json(None),
                regions: state
                    .regions
                    .iter()
                    .map(|region| (region.clone(), json(Some(region))))
                    .collect(),
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> HubEventKind {
        HubEventKind::Counts {
            global: "{}".into(),
            regions: BTreeMap::new(),
        }
    }

    #[test]
    fn a_client_that_saw_everything_misses_nothing() {
        let hub = StreamHub::new(1);
        hub.publish(change());
        let latest = hub.join(None).latest;
        assert_eq!(hub.join(Some(latest)).missed.map(|m| m.len()), Some(0));
    }

    #[test]
    fn a_client_gets_exactly_the_events_after_its_last_id() {
        let hub = StreamHub::new(1);
        for _ in 0..5 {
            hub.publish(change());
        }
        let latest = hub.join(None).latest;
        let missed = hub.join(Some(latest - 3)).missed.unwrap();
        let ids: Vec<u64> = missed.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![latest - 2, latest - 1, latest]);
    }

    #[test]
    fn an_id_out_of_the_ring_or_from_another_run_gets_a_snapshot() {
        let hub = StreamHub::new(1);
        for _ in 0..(RING + 10) {
            hub.publish(change());
        }
        let latest = hub.join(None).latest;
        assert!(hub.join(Some(latest - RING as u64 - 5)).missed.is_none());
        assert!(hub.join(Some(7)).missed.is_none());
        assert!(hub.join(Some(latest + 1)).missed.is_none());
    }

    #[test]
    fn ids_increase_by_one_and_start_above_any_earlier_run() {
        let before = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap() * 1_000_000;
        let hub = StreamHub::new(1);
        let start = hub.join(None).latest;
        assert!(start >= before);
        hub.publish(change());
        assert_eq!(hub.join(None).latest, start + 1);
    }
}
