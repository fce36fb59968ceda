//! The node's streaming side: topics, projector, counter-state exchange, catalogue follower.
//! Started once the broker answers, so commands are accepted even while it is down.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::RegionId;
use outbox_relay::{TopicSpec, ensure_topics};
use projector::runtime::catalogue_follower::{FollowerConfig, follow_catalogue};
use projector::runtime::change_feed::ChangeFeed;
use projector::runtime::exchange::{EXCHANGE_PARTITIONS, StatePublisher, run_exchange};
use projector::runtime::known_states;
use projector::runtime::partition_projector::{ProjectorConfig, run_projector};
use projector::runtime::projection::Projection;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::config::Settings;

/// How often the merged actor states are saved for the next start.
const KNOWN_STATES_SAVE_INTERVAL: Duration = Duration::from_secs(2);

/// Everything the streaming tasks need, derived from the settings once.
#[derive(Debug, Clone)]
pub struct StreamsPlan {
    pub brokers: String,
    pub topics: Vec<TopicSpec>,
    pub projector: ProjectorConfig,
    pub follower: FollowerConfig,
    pub exchange_topic: String,
    pub exchange_group: String,
}

impl StreamsPlan {
    pub fn new(settings: &Settings, region: &RegionId) -> Self {
        let partitions = settings.kafka.partitions;
        let region_topics: Vec<String> = settings
            .all_regions()
            .iter()
            .map(|r| settings.events_topic(r))
            .collect();
        let mut topics: Vec<TopicSpec> = region_topics
            .iter()
            .map(|t| TopicSpec::new(t.clone(), partitions))
            .collect();
        topics.push(TopicSpec::new(settings.exchange_topic(), EXCHANGE_PARTITIONS).compacted());
        let p = &settings.projector;
        Self {
            brokers: settings.kafka.brokers.clone(),
            topics,
            projector: ProjectorConfig {
                brokers: settings.kafka.brokers.clone(),
                region: region.clone(),
                events_topic: settings.events_topic(region.as_str()),
                group: settings.group("projector"),
                commit_every: p.commit_every,
                commit_interval: Duration::from_millis(p.commit_interval_ms),
                heartbeat: Duration::from_millis(p.heartbeat_ms),
            },
            follower: FollowerConfig {
                brokers: settings.kafka.brokers.clone(),
                group: settings.group("catalogue"),
                topics: region_topics,
                batch_size: 500,
            },
            exchange_topic: settings.exchange_topic(),
            // Never committed; unique per process so two processes never share assignments.
            exchange_group: format!("{}.{}", settings.group("exchange"), std::process::id()),
        }
    }
}

/// Creates the topics (retrying while the broker is down), then runs the projector, the
/// exchange and the catalogue follower until `shutdown`.
pub async fn run<F>(
    plan: StreamsPlan,
    pool: PgPool,
    projection: Projection,
    retirements: Arc<Notify>,
    feed: ChangeFeed,
    shutdown: impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = ensure_topics(&plan.brokers, &plan.topics, Duration::from_secs(5));
        tokio::select! {
            () = shutdown() => return Ok(()),
            result = attempt => match result {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = delay.as_millis(), "topics not ready");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    // Before anything is heard: a region that is down now is still counted as last seen.
    if let Err(error) = known_states::restore(&pool, &projection).await {
        tracing::warn!(%error, "saved actor states not restored");
    }
    let publisher = StatePublisher::new(&plan.brokers, plan.exchange_topic.clone())
        .context("state publisher")?;
    let remembering = known_states::keep(
        pool.clone(),
        projection.clone(),
        KNOWN_STATES_SAVE_INTERVAL,
        shutdown(),
    );
    let projector = run_projector(
        plan.projector,
        pool.clone(),
        projection.clone(),
        publisher,
        shutdown(),
    );
    let exchange = run_exchange(
        &plan.brokers,
        &plan.exchange_topic,
        &plan.exchange_group,
        projection,
        shutdown(),
    );
    let follower = follow_catalogue(plan.follower, pool, retirements, feed, shutdown());
    let (projected, exchanged, followed, ()) =
        tokio::join!(projector, exchange, follower, remembering);
    projected.context("projector")?;
    exchanged.context("state exchange")?;
    followed.context("catalogue follower")?;
    Ok(())
}
