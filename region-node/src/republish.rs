//! `region-node republish`: fills this region's events topic again from its event store, the
//! source of truth, after the topic lost records (deleted and created again, a broker that
//! keeps topics in memory restarted).
//!
//! Every outbox row of the topic is marked unpublished, so the region's relay sends the whole
//! history once more, in position order, before anything appended later. Readers notice the
//! topic's new incarnation and read it from its start; applying is idempotent per stream
//! sequence, so a node that already holds an event drops the copy, and a new node folds it.

use std::time::{Duration, Instant};

use anyhow::Context;
use outbox_relay::{mark_unpublished, pending_rows};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::Settings;
use crate::database;
use crate::replay::progress_bar;

/// How often the command looks at the outbox while the relay sends.
const POLL: Duration = Duration::from_millis(500);
/// How long without progress before the command says that no relay seems to be sending.
const STALL_HINT: Duration = Duration::from_secs(30);

/// What the command did.
#[derive(Debug, Clone, Serialize)]
pub struct Republished {
    pub topic: String,
    /// Events marked to be sent again.
    pub events: u64,
    /// Whether the command waited until the relay had sent them all.
    pub sent: bool,
}

/// Marks the region's events for sending again and, if `wait`, follows the relay until the
/// outbox is drained (a progress bar unless `progress` is false).
pub async fn run(settings: &Settings, wait: bool, progress: bool) -> anyhow::Result<Republished> {
    let pool = database::migrate(&settings.database).await?;
    let topic = settings.events_topic(&settings.region);
    let events = mark_unpublished(&pool, &topic)
        .await
        .context("marking the region's outbox rows for sending again")?;
    tracing::info!(topic, events, "outbox rows marked to be sent again");
    if wait {
        follow(&pool, events, progress, &topic).await?;
    }
    pool.close().await;
    Ok(Republished {
        topic,
        events,
        sent: wait,
    })
}

/// Waits until no outbox row is unpublished.
async fn follow(pool: &PgPool, events: u64, progress: bool, topic: &str) -> anyhow::Result<()> {
    let bar = progress_bar(events, progress)?;
    let mut last_pending = i64::MAX;
    let mut last_progress = Instant::now();
    let mut hinted = false;
    loop {
        let pending = pending_rows(pool)
            .await
            .context("counting the rows still to send")?;
        let pending_events = u64::try_from(pending).unwrap_or(0);
        bar.set_position(events.saturating_sub(pending_events));
        if pending == 0 {
            bar.finish();
            return Ok(());
        }
        if pending < last_pending {
            last_pending = pending;
            last_progress = Instant::now();
        } else if !hinted && last_progress.elapsed() >= STALL_HINT {
            hinted = true;
            bar.suspend(|| {
                tracing::warn!(
                    topic,
                    pending,
                    "nothing sent for {}s: is a node of this region running its relay?",
                    STALL_HINT.as_secs()
                );
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
