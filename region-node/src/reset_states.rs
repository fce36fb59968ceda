//! `region-node reset-states`: starts a new epoch of the counter-state exchange, the way back
//! from a bad state some node merged. Every node that sees the new epoch drops the states it
//! merged in older ones (in memory and saved), rebuilds its region's actors from their
//! checkpoints and republishes them; checkpoints are untouched, so nothing is lost.

use std::time::Duration;

use anyhow::Context;
use projector::trust::MAX_EPOCH;
use projector_runtime::exchange::{StatePublisher, latest_epoch};
use projector_runtime::known_states;

use crate::config::Settings;
use crate::database;

/// How long the command listens to the exchange for the epoch in use, in heartbeats: every
/// running node republishes its actors' states once per heartbeat.
const LISTEN_HEARTBEATS: u32 = 3;

/// The epoch before and after the reset.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Reset {
    pub previous: u64,
    pub epoch: u64,
}

/// Bumps the epoch past both the one this node's database recorded and the highest heard on
/// the exchange topic, records it, and announces it on the topic.
pub async fn run(settings: &Settings) -> anyhow::Result<Reset> {
    let pool = database::migrate(&settings.database).await?;
    let recorded = known_states::recorded_epoch(&pool)
        .await
        .context("reading the recorded epoch")?;
    let window = settings
        .projector
        .heartbeat
        .saturating_mul(LISTEN_HEARTBEATS)
        .max(Duration::from_secs(1));
    let group = format!("{}.{}", settings.group("reset-states"), std::process::id());
    let kafka = settings.kafka.client();
    let heard = latest_epoch(&kafka, &settings.exchange_topic(), &group, window)
        .await
        .context("listening to the exchange topic")?;
    let previous = recorded.max(heard);
    let epoch = previous
        .checked_add(1)
        .filter(|epoch| *epoch <= MAX_EPOCH)
        .context("the exchange epoch cannot grow any further")?;
    known_states::record_epoch(&pool, epoch)
        .await
        .context("recording the new epoch")?;
    StatePublisher::new(&kafka, settings.exchange_topic())
        .context("state publisher")?
        .announce_epoch(epoch)
        .await
        .context("announcing the new epoch on the exchange topic")?;
    pool.close().await;
    Ok(Reset { previous, epoch })
}
