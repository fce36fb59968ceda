use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use command_api::{Authenticator, CommandRateLimit, CommandService, CommandState};
use domain::RegionId;
use event_store::EventStore;
use metrics_exporter_prometheus::PrometheusHandle;
use outbox_relay::{RelayConfig, TopicSpec};
use projector::runtime::change_feed::ChangeFeed;
use projector::runtime::projection::Projection;
use query_api::{QueryState, StreamHub};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::streams::{self, StreamsPlan};
use crate::{database, http, withdrawals};

/// A built node, listening but not yet serving: `run_until_stopped` drives it.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    relay: RelayConfig,
    streams: StreamsPlan,
    service: CommandService,
    projection: Projection,
    feed: ChangeFeed,
    queries: QueryState,
    withdrawal_interval: Duration,
    pool: PgPool,
}

impl Application {
    /// Creates and migrates the node's database, then builds everything on it.
    pub async fn build(
        settings: &Settings,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        let pool = database::migrate(&settings.database).await?;
        Self::build_with_pool(settings, pool, metrics).await
    }

    /// Builds on an existing, migrated pool (tests hand in one database each).
    pub async fn build_with_pool(
        settings: &Settings,
        pool: PgPool,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        let region = RegionId::parse(&settings.region).context("configuration: region")?;
        let topic = settings.events_topic(region.as_str());
        let auth = Authenticator::new(&settings.tokens)
            .map_err(|e| anyhow::anyhow!("configuration: tokens: {e}"))?;
        let regions = settings
            .all_regions()
            .iter()
            .map(|r| RegionId::parse(r))
            .collect::<Result<Vec<_>, _>>()
            .context("configuration: regions")?;
        let streams = StreamsPlan::new(settings, &region);
        let projection = Projection::new();
        let store = EventStore::new(pool.clone(), region.clone(), topic.clone());
        let service = CommandService::new(store);
        let commands = CommandState {
            service: service.clone(),
            auth: Arc::new(auth),
            rate_limit: CommandRateLimit::new(
                settings.http.commands_per_second,
                settings.http.command_burst,
            ),
        };
        let queries = QueryState {
            pool: pool.clone(),
            metrics,
            projection: projection.clone(),
            region,
            regions,
            partitions: settings.kafka.partitions,
            stale_after: Duration::from_millis(settings.projector.stale_after_ms),
            read_wait: Duration::from_millis(settings.http.read_wait_ms),
            hub: StreamHub::new(settings.http.max_streams),
            stream_tick: Duration::from_millis(settings.http.stream_tick_ms.max(100)),
        };
        let mut relay = RelayConfig::new(settings.kafka.brokers.clone())
            .with_topic(TopicSpec::new(topic, settings.kafka.partitions));
        relay.message_timeout = Duration::from_millis(settings.kafka.message_timeout_ms);
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("binding {}", settings.http.listen))?;
        Ok(Self {
            listener,
            router: http::router(commands, queries.clone()),
            relay,
            streams,
            service,
            projection,
            feed: ChangeFeed::new(),
            queries,
            withdrawal_interval: Duration::from_millis(settings.projector.withdrawal_interval_ms),
            pool,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves HTTP and runs the outbox relay until `shutdown` resolves or a task fails; then
    /// stops the others gracefully and says how each ended.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let when_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let mut tasks = JoinSet::new();
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(when_stopped());
        tasks.spawn(async move { ("http server", serve.await.map_err(anyhow::Error::from)) });
        let relay = outbox_relay::run(self.relay, self.pool.clone(), when_stopped());
        tasks.spawn(async move { ("outbox relay", relay.await.map_err(anyhow::Error::from)) });
        let hub = query_api::run_hub(self.queries, self.feed.clone(), when_stopped());
        tasks.spawn(async move {
            hub.await;
            ("stream hub", Ok(()))
        });
        let retirements = Arc::new(Notify::new());
        let streaming = streams::run(
            self.streams,
            self.pool,
            self.projection,
            retirements.clone(),
            self.feed,
            when_stopped.clone(),
        );
        tasks.spawn(async move { ("streams", streaming.await) });
        let withdrawing = withdrawals::run(
            self.service,
            retirements,
            self.withdrawal_interval,
            when_stopped(),
        );
        tasks.spawn(async move {
            withdrawing.await;
            ("retirement withdrawals", Ok(()))
        });

        let mut failed = tokio::select! {
            () = shutdown => {
                tracing::info!("shutdown requested");
                false
            }
            Some(ended) = tasks.join_next() => report(ended),
        };
        let _ = stop.send(true);
        while let Some(ended) = tasks.join_next().await {
            failed |= report(ended);
        }
        if failed {
            anyhow::bail!("a task of the node failed");
        }
        Ok(())
    }
}

/// Logs how a task ended; true if it failed.
fn report(ended: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>) -> bool {
    match ended {
        Ok((task, Ok(()))) => {
            tracing::info!(task, "stopped");
            false
        }
        Ok((task, Err(error))) => {
            tracing::error!(task, error = format!("{error:#}"), "failed");
            true
        }
        Err(error) => {
            tracing::error!(%error, "a task panicked or was cancelled");
            true
        }
    }
}
