//! The node's streaming side: topics, projector, counter-state exchange, catalogue follower.
//! Started once the broker answers, so commands are accepted even while it is down; each
//! task runs under the node's supervisor (restarted after a failure).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::RegionId;
use kafka_client::KafkaClient;
use outbox_relay::{Provisioning, TopicSpec, ensure_topics};
use projector::ChangeFeed;
use projector::Projection;
use projector_runtime::catalogue_follower::{FollowerConfig, follow_catalogue};
use projector_runtime::exchange::{
    EXCHANGE_PARTITIONS, ExchangeConfig, StatePublisher, run_exchange,
};
use projector_runtime::known_states;
use projector_runtime::partition_projector::{ProjectorConfig, run_projector};
use projector_runtime::retired::RetiredModels;
use sqlx::PgPool;

use crate::config::Settings;
use crate::supervisor::{Recovery, Supervisor};

/// How often the merged actor states are saved for the next start.
const KNOWN_STATES_SAVE_INTERVAL: Duration = Duration::from_secs(2);

/// Everything the streaming tasks need, derived from the settings once.
#[derive(Debug, Clone)]
pub struct StreamsPlan {
    pub kafka: KafkaClient,
    pub topics: Vec<TopicSpec>,
    pub provisioning: Provisioning,
    pub projector: ProjectorConfig,
    pub follower: FollowerConfig,
    pub exchange: ExchangeConfig,
}

impl StreamsPlan {
    pub fn new(settings: &Settings, region: &RegionId) -> Self {
        let partitions = settings.kafka.partitions;
        let kafka = settings.kafka.client();
        let region_topics: Vec<(RegionId, String)> = settings
            .all_regions()
            .into_iter()
            .map(|r| {
                let topic = settings.events_topic(&r);
                (r, topic)
            })
            .collect();
        let mut topics: Vec<TopicSpec> = settings
            .all_regions()
            .iter()
            .map(|r| events_topic_spec(settings, r))
            .collect();
        let (replication, min_insync) = (
            settings.kafka.replication_factor,
            settings.kafka.min_insync_replicas,
        );
        topics.push(
            TopicSpec::new(settings.exchange_topic(), EXCHANGE_PARTITIONS)
                .compacted()
                .replicated(replication, min_insync),
        );
        topics.push(
            TopicSpec::new(settings.dead_letter_topic(), 1).replicated(replication, min_insync),
        );
        let p = &settings.projector;
        Self {
            kafka,
            topics,
            provisioning: settings.kafka.provisioning(),
            projector: ProjectorConfig {
                kafka: settings.kafka.live_client(),
                catch_up_kafka: settings.kafka.catch_up_client(),
                region: region.clone(),
                events_topic: settings.events_topic(region),
                group: settings.group("projector"),
                commit_every: p.commit_every,
                commit_interval: p.commit_interval,
                heartbeat: p.heartbeat,
                undecodable: p.undecodable,
                dead_letter_topic: settings.dead_letter_topic(),
                idle: settings.kafka.idle_policy(),
            },
            follower: FollowerConfig {
                kafka: settings.kafka.catalogue_client(),
                catch_up_kafka: settings.kafka.catch_up_client(),
                group: settings.group("catalogue"),
                region_topics: region_topics.clone(),
                batch_size: 500,
                undecodable: p.undecodable,
                dead_letter_topic: settings.dead_letter_topic(),
                idle: settings.kafka.idle_policy(),
            },
            exchange: ExchangeConfig {
                kafka: settings.kafka.live_client(),
                topic: settings.exchange_topic(),
                // Never committed; unique per process so two processes never share assignments.
                group: format!("{}.{}", settings.group("exchange"), std::process::id()),
                region: region.clone(),
                // The deployment's regions are the only ones whose states it takes.
                region_topics: region_topics.iter().cloned().collect(),
                partitions,
                refresh: p.heartbeat,
                idle: settings.kafka.idle_policy(),
                idle_fetch_wait: settings.kafka.idle_fetch_wait,
            },
        }
    }
}

/// Region `region`'s events topic: the source of truth, kept forever.
pub fn events_topic_spec(settings: &Settings, region: &RegionId) -> TopicSpec {
    TopicSpec::new(settings.events_topic(region), settings.kafka.partitions)
        .events()
        .replicated(
            settings.kafka.replication_factor,
            settings.kafka.min_insync_replicas,
        )
}

/// Creates and checks the topics (retrying while the broker is down), then runs the
/// projector, the exchange, the catalogue follower and the known-states saver, each
/// supervised, until the node stops. Topics that are missing (when an operator provisions
/// them) or misconfigured end it with an error: the node stops.
pub async fn run(
    plan: StreamsPlan,
    pool: PgPool,
    projection: Projection,
    retirements: Arc<RetiredModels>,
    feed: ChangeFeed,
    supervisor: Supervisor,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = ensure_topics(
            &plan.kafka,
            &plan.topics,
            Duration::from_secs(5),
            plan.provisioning,
        );
        tokio::select! {
            () = supervisor.stopping().wait() => return Ok(()),
            result = attempt => match result {
                Ok(()) => break,
                Err(error) if error.is_misconfiguration() => {
                    return Err(error).context("the node's topics are not as it needs them");
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = delay.as_millis(), "topics not ready");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    // Before anything is heard: a region that is down now is still counted as last seen.
    if let Err(error) = known_states::restore(&pool, &projection, &plan.exchange.rules()).await {
        tracing::warn!(%error, "saved actor states not restored");
    }
    let healthy_run = Recovery::After(supervisor.healthy_run());
    let remembering = supervisor.run("known-states saver", healthy_run.clone(), |stopping| {
        let saving = known_states::keep(
            pool.clone(),
            projection.clone(),
            KNOWN_STATES_SAVE_INTERVAL,
            stopping.wait(),
        );
        async move {
            saving.await;
            Ok(())
        }
    });
    let caught_up = {
        let projection = projection.clone();
        Recovery::When(Arc::new(move || projection.is_caught_up()))
    };
    let projector = supervisor.run("projector", caught_up, |stopping| {
        // Every run starts behind: the node is ready again once this run has caught up.
        projection.mark_catching_up();
        let (config, pool, projection) = (plan.projector.clone(), pool.clone(), projection.clone());
        let (kafka, topic) = (plan.kafka.clone(), plan.exchange.topic.clone());
        async move {
            let publisher = StatePublisher::new(&kafka, topic)
                .context("state publisher")?
                .with_epoch_of(&projection);
            run_projector(config, pool, projection, publisher, stopping.wait()).await?;
            Ok(())
        }
    });
    let exchange = supervisor.run("state exchange", healthy_run.clone(), |stopping| {
        let (config, pool, projection) = (plan.exchange.clone(), pool.clone(), projection.clone());
        let kafka = plan.kafka.clone();
        async move {
            let publisher = StatePublisher::new(&kafka, config.topic.clone())
                .context("state publisher")?
                .with_epoch_of(&projection);
            run_exchange(config, pool, projection, publisher, stopping.wait()).await?;
            Ok(())
        }
    });
    let follower = supervisor.run("catalogue follower", healthy_run, |stopping| {
        let following = follow_catalogue(
            plan.follower.clone(),
            pool.clone(),
            projection.clone(),
            retirements.clone(),
            feed.clone(),
            stopping.wait(),
        );
        async move { Ok(following.await?) }
    });
    tokio::join!(projector, exchange, follower, remembering);
    Ok(())
}
