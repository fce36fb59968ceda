//! The node's live view of the counts: every actor state it has seen, merged, plus a change
//! feed. Written by the local projector and the state exchange, read by the query API.
//!
//! Two ways in: [`Projection::observe`] for states this node vouches for (its own projector,
//! its region's checkpoints), stamped with the current epoch; [`Projection::admit`] for states
//! read from the exchange topic, judged by the trust rules first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use domain::RegionId;
use tokio::sync::{RwLock, broadcast};

use crate::trust::{Refusal, TrustRules, Verdict};
use crate::{ActorId, ActorState, GlobalView, Observed, Watermark};

/// How many change notices a subscriber may fall behind before it is told it lagged (and must
/// resync from a fresh snapshot); the fold never waits for a subscriber.
const CHANGE_BUFFER: usize = 1024;

/// Sent after every change of the merged view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountsChanged {
    /// Increases by one per change; also the ETag of the counts.
    pub version: u64,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct Projection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    view: RwLock<GlobalView>,
    /// When a state of each region's actors last arrived, changed or not (freshness).
    heard: std::sync::Mutex<BTreeMap<RegionId, DateTime<Utc>>>,
    version: AtomicU64,
    /// The view's exchange epoch, readable without the lock (publishers stamp states with it).
    epoch: AtomicU64,
    changes: broadcast::Sender<CountsChanged>,
    /// Set once the local projector has folded its partitions up to where they stood.
    caught_up: AtomicBool,
}

impl Default for Projection {
    fn default() -> Self {
        Self::new()
    }
}

impl Projection {
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        Self {
            inner: Arc::new(Inner {
                view: RwLock::new(GlobalView::new()),
                heard: std::sync::Mutex::new(BTreeMap::new()),
                version: AtomicU64::new(0),
                epoch: AtomicU64::new(0),
                changes,
                caught_up: AtomicBool::new(false),
            }),
        }
    }

    /// Merges states this node vouches for (its own projector's, its region's checkpoints'),
    /// stamped with the current epoch; notifies subscribers if anything moved.
    pub async fn observe(&self, states: impl IntoIterator<Item = ActorState>) {
        let now = Utc::now();
        let mut view = self.inner.view.write().await;
        let epoch = view.epoch();
        let mut changed = false;
        for state in states {
            self.heard_from(&state, now);
            changed |= view.observe(state.with_epoch(epoch)) != Observed::Unchanged;
        }
        self.changed(view, changed);
    }

    /// Merges states remembered from an earlier run (already judged by their loader): counted,
    /// but their regions are not marked as heard from (they may be down).
    pub async fn restore(&self, states: impl IntoIterator<Item = ActorState>) {
        let mut view = self.inner.view.write().await;
        let mut changed = false;
        for state in states {
            changed |= view.observe(state) != Observed::Unchanged;
        }
        self.changed(view, changed);
    }

    /// Merges the states read from the exchange topic that `rules` accept; answers the
    /// refused ones with why. A state of a newer epoch moves the view there (dropping every
    /// older state): [`Projection::epoch`] tells the caller, which must rebuild its region's
    /// actors in it.
    pub async fn admit(
        &self,
        states: impl IntoIterator<Item = ActorState>,
        rules: &TrustRules,
    ) -> Vec<(ActorState, Refusal)> {
        let now = Utc::now();
        let mut view = self.inner.view.write().await;
        let mut changed = false;
        let mut refused = Vec::new();
        for state in states {
            match rules.judge(&view, &state) {
                Verdict::Take => {
                    self.heard_from(&state, now);
                    changed |= view.observe(state) != Observed::Unchanged;
                }
                Verdict::Echo => {}
                Verdict::Refuse(refusal) => refused.push((state, refusal)),
            }
        }
        self.changed(view, changed);
        refused
    }

    /// Moves the view to `epoch` if it is newer, dropping every state of an older one; true
    /// if it moved.
    pub async fn enter_epoch(&self, epoch: u64) -> bool {
        let mut view = self.inner.view.write().await;
        let moved = view.enter_epoch(epoch);
        self.changed(view, moved);
        moved
    }

    /// The view's exchange epoch.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }

    fn heard_from(&self, state: &ActorState, now: DateTime<Utc>) {
        if let Ok(mut heard) = self.inner.heard.lock() {
            heard.insert(state.actor().region.clone(), now);
        }
    }

    /// After a write under the lock: publishes the epoch, and notifies if anything changed.
    fn changed(&self, view: tokio::sync::RwLockWriteGuard<'_, GlobalView>, changed: bool) {
        self.inner.epoch.store(view.epoch(), Ordering::SeqCst);
        if changed {
            let version = self.inner.version.fetch_add(1, Ordering::SeqCst) + 1;
            drop(view);
            // No subscriber is fine: nobody is watching.
            let _ = self.inner.changes.send(CountsChanged { version });
        }
    }

    /// Runs `f` on the merged view and its version, under the read lock: readers render
    /// from the view in place instead of copying it (`f` must not block).
    pub async fn with_view<R>(&self, f: impl FnOnce(&GlobalView, u64) -> R) -> R {
        let view = self.inner.view.read().await;
        f(&view, self.inner.version.load(Ordering::SeqCst))
    }

    /// When each region was last heard from.
    pub fn heard(&self) -> BTreeMap<RegionId, DateTime<Utc>> {
        self.inner
            .heard
            .lock()
            .map(|heard| heard.clone())
            .unwrap_or_default()
    }

    /// How far one actor's merged state has folded (read without copying the view).
    pub async fn watermark(&self, actor: &ActorId) -> Option<Watermark> {
        let view = self.inner.view.read().await;
        view.actor(actor).map(|state| *state.watermark())
    }

    pub fn mark_caught_up(&self) {
        self.inner.caught_up.store(true, Ordering::SeqCst);
    }

    /// True once the local projector has caught up with its partitions (readiness).
    pub fn is_caught_up(&self) -> bool {
        self.inner.caught_up.load(Ordering::SeqCst)
    }

    /// The local projector (re)starts: not caught up until it says so again.
    pub fn mark_catching_up(&self) {
        self.inner.caught_up.store(false, Ordering::SeqCst);
    }

    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::SeqCst)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CountsChanged> {
        self.inner.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use domain::RegionId;
    use tokio::sync::broadcast::error::RecvError;

    use super::*;
    use crate::{ActorId, ActorState};

    fn state(partition: i32) -> ActorState {
        ActorState::empty(ActorId::new(RegionId::parse("eu-west").unwrap(), partition))
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged_and_never_blocks_the_fold() {
        let projection = Projection::new();
        let mut slow = projection.subscribe();
        // Every new actor is a change; far more changes than the buffer holds.
        for partition in 0..(CHANGE_BUFFER as i32 + 10) {
            projection.observe([state(partition)]).await;
        }
        assert_eq!(projection.version(), CHANGE_BUFFER as u64 + 10);
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(10))));
        // After the lag notice it resumes with the oldest change still buffered.
        assert_eq!(slow.recv().await.unwrap().version, 11);
    }

    #[tokio::test]
    async fn an_unchanged_state_is_not_a_change_but_is_heard() {
        let projection = Projection::new();
        projection.observe([state(0)]).await;
        let mut watcher = projection.subscribe();
        projection.observe([state(0)]).await;
        assert_eq!(projection.version(), 1);
        assert!(watcher.try_recv().is_err());
        assert!(
            projection
                .heard()
                .contains_key(&RegionId::parse("eu-west").unwrap())
        );
    }

    #[tokio::test]
    async fn local_states_are_stamped_and_exchanged_ones_judged() {
        let eu = RegionId::parse("eu-west").unwrap();
        let us = RegionId::parse("us-east").unwrap();
        let rules = TrustRules::new(eu.clone(), [us.clone()], 3);
        let projection = Projection::new();
        assert!(projection.enter_epoch(2).await);
        assert_eq!(projection.epoch(), 2);
        projection.observe([state(0)]).await;
        let ours = ActorId::new(eu.clone(), 0);
        let stamped = projection
            .with_view(|view, _| view.actor(&ours).map(ActorState::epoch))
            .await;
        assert_eq!(stamped, Some(2), "a local state joins the current epoch");

        let unknown = ActorState::empty(ActorId::new(RegionId::parse("zz-north").unwrap(), 0));
        let foreign = ActorState::empty(ActorId::new(us.clone(), 0)).with_epoch(3);
        let refused = projection
            .admit([state(1).with_epoch(2), unknown, foreign], &rules)
            .await;
        let reasons: Vec<&str> = refused.iter().map(|(_, r)| r.reason()).collect();
        assert_eq!(reasons, ["own_region", "unknown_region"]);
        assert_eq!(
            projection.epoch(),
            3,
            "a foreign state of a newer epoch moves the view"
        );
        assert!(
            !projection
                .heard()
                .contains_key(&RegionId::parse("zz-north").unwrap())
        );
        assert!(projection.heard().contains_key(&us));
        let actors = projection.with_view(|view, _| view.actors().count()).await;
        assert_eq!(
            actors, 1,
            "the older epoch's own state is gone until it is rebuilt"
        );
    }
}
