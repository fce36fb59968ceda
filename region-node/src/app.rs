//! Composing a node: the HTTP server, the relay, the projector, the exchange and the follower, supervised.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use command_api::{Authenticator, CommandRateLimit, CommandService, CommandState};
use event_store::EventStore;
use metrics_exporter_prometheus::PrometheusHandle;
use outbox_relay::RelayConfig;
use projector::ChangeFeed;
use projector::Projection;
use projector_runtime::retired::RetiredModels;
use query_api::history::index::{BlockPolicy, run_indexer};
use query_api::{HistoryGate, IndexUse, QueryState, StreamHub, TaskHealth};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::streams::{self, StreamsPlan};
use crate::supervisor::{Recovery, Supervisor};
use crate::{database, http, withdrawals};

/// Live streams never tick faster than this, whatever the settings say.
const MIN_STREAM_TICK: Duration = Duration::from_millis(100);

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
    /// A connection whose written data the client does not take for this long is closed.
    write_timeout: Duration,
    /// Longest a stop waits for the tasks and requests in flight before cutting them.
    shutdown_grace: Duration,
    /// How the history index cuts blocks; `None`: no index (history replays).
    history_index: Option<BlockPolicy>,
    pool: PgPool,
}

impl Application {
    /// Opens the node's database (creating and migrating it under
    /// `database.migrate_on_start`), then builds everything on it.
    pub async fn build(
        settings: &Settings,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        let pool = database::open(&settings.database).await?;
        Self::build_with_pool(settings, pool, metrics).await
    }

    /// Builds on an existing, migrated pool (tests hand in one database each).
    pub async fn build_with_pool(
        settings: &Settings,
        pool: PgPool,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        let region = settings.region.clone();
        let topic = settings.events_topic(&region);
        let auth = Authenticator::new(&settings.tokens)
            .map_err(|e| anyhow::anyhow!("configuration: tokens: {e}"))?;
        let regions = settings.all_regions();
        let streams = StreamsPlan::new(settings, &region);
        let projection = Projection::new();
        let feed = ChangeFeed::new();
        let store = EventStore::new(pool.clone(), region.clone(), topic.clone());
        let ownership = settings.ownership().context("configuration: ownership")?;
        tracing::info!(
            fingerprint = ownership.fingerprint(),
            "registry ownership (must be equal on every node)"
        );
        let service =
            CommandService::new(store, ownership, settings.database.group_commit_max.get());
        let commands = CommandState {
            service: service.clone(),
            auth: Arc::new(auth),
            rate_limit: CommandRateLimit::new(
                settings.http.commands_per_second,
                settings.http.command_burst,
            ),
        };
        let queries = QueryState {
            pool: database::read_pool(&pool, &settings.database),
            metrics,
            projection: projection.clone(),
            feed: feed.clone(),
            region,
            regions,
            partitions: settings.kafka.partitions,
            stale_after: settings.projector.stale_after,
            read_wait: settings.http.read_wait,
            hub: StreamHub::with_per_host_cap(
                settings.http.max_streams,
                settings.http.max_streams_per_client,
            ),
            history: {
                let gate = HistoryGate::new(settings.http.max_history_reads.get())
                    .with_budget(settings.http.history_reads_per_second);
                if settings.history.index {
                    gate.with_index(IndexUse {
                        wait: settings.history.index_wait,
                        replay_limit: settings.history.replay_limit_events,
                    })
                } else {
                    gate
                }
            },
            stream_tick: settings.http.stream_tick.max(MIN_STREAM_TICK),
            health: TaskHealth::new(),
        };
        let mut relay = RelayConfig::new(settings.kafka.client())
            .with_topic(streams::events_topic_spec(settings, &settings.region));
        relay.message_timeout = settings.kafka.message_timeout;
        relay.provisioning = settings.kafka.provisioning();
        relay.republish_lost_topics = settings.kafka.republish_lost_topics;
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("binding {}", settings.http.listen))?;
        Ok(Self {
            listener,
            router: http::router(commands, queries.clone(), &settings.http.cors_allow_origins)
                .context("configuration")?,
            relay,
            streams,
            service,
            projection,
            feed,
            queries,
            withdrawal_interval: settings.projector.withdrawal_interval,
            write_timeout: settings.http.write_timeout,
            shutdown_grace: settings.http.shutdown_grace,
            history_index: settings.history.index.then_some(BlockPolicy {
                block_events: settings.history.block_events.get(),
                fold_every_events: settings.history.fold_every_events,
            }),
            pool,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The node's routes, as `run_until_stopped` serves them (for in-process requests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves HTTP and runs the background tasks until `shutdown` resolves; then stops them
    /// gracefully and says how each ended. The background tasks run under a [`Supervisor`]
    /// (a failed one is reported by `/readyz` and restarted with backoff); only the HTTP
    /// server ending on its own stops the node early (with an error).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let supervisor = Supervisor::new(self.queries.health.clone(), stopped);
        let healthy_run = Recovery::After(supervisor.healthy_run());
        let mut tasks = JoinSet::new();
        let serve = crate::serve::serve(
            self.listener,
            self.router,
            self.write_timeout,
            supervisor.stopping().wait(),
        );
        tasks.spawn(async move { ("http server", serve.await.map_err(anyhow::Error::from)) });
        let (relay, pool) = (self.relay, self.pool.clone());
        let relaying = supervisor.clone();
        let recovery = healthy_run.clone();
        tasks.spawn(async move {
            let relay = relaying.run("outbox relay", recovery, |stopping| {
                let running = outbox_relay::run(relay.clone(), pool.clone(), stopping.wait());
                async move { Ok(running.await?) }
            });
            relay.await;
            ("outbox relay", Ok(()))
        });
        let queries = self.queries;
        let hub = supervisor.clone();
        let recovery = healthy_run.clone();
        tasks.spawn(async move {
            let hub = hub.run("stream hub", recovery, |stopping| {
                let running = query_api::run_hub(queries.clone(), stopping.wait());
                async move {
                    running.await;
                    Ok(())
                }
            });
            hub.await;
            ("stream hub", Ok(()))
        });
        let (index_pool, index_feed) = (self.pool.clone(), self.feed.clone());
        let retirements = Arc::new(RetiredModels::default());
        let streaming = streams::run(
            self.streams,
            self.pool,
            self.projection,
            retirements.clone(),
            self.feed,
            supervisor.clone(),
        );
        tasks.spawn(async move { ("streams", streaming.await) });
        if let Some(policy) = self.history_index {
            let (pool, feed) = (index_pool.clone(), index_feed.clone());
            let indexing = supervisor.clone();
            let recovery = healthy_run.clone();
            tasks.spawn(async move {
                let index = indexing.run("history index", recovery, |stopping| {
                    let running = run_indexer(pool.clone(), feed.clone(), policy, stopping.wait());
                    async move { Ok(running.await?) }
                });
                index.await;
                ("history index", Ok(()))
            });
        }
        let (service, interval) = (self.service, self.withdrawal_interval);
        let withdrawing = supervisor.clone();
        tasks.spawn(async move {
            let withdrawals = withdrawing.run("retirement withdrawals", healthy_run, |stopping| {
                let passes = withdrawals::run(
                    service.clone(),
                    retirements.clone(),
                    interval,
                    stopping.wait(),
                );
                async move {
                    passes.await;
                    Ok(())
                }
            });
            withdrawals.await;
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
        failed |= stop_within(&mut tasks, self.shutdown_grace).await;
        if failed {
            anyhow::bail!("a task of the node failed");
        }
        Ok(())
    }
}

/// Waits for every task to stop, for at most `grace`; then cuts the rest (the HTTP server with
/// the requests still in flight: their transactions roll back, clients re-send with their
/// idempotency keys), logging how many. Without the bound, one response or query that cannot finish
/// (an import waiting on a database out of reach) would hold the stop until the orchestrator's
/// SIGKILL. True if a task failed.
async fn stop_within(
    tasks: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
    grace: Duration,
) -> bool {
    let mut failed = false;
    let deadline = tokio::time::sleep(grace);
    let mut deadline = std::pin::pin!(deadline);
    loop {
        tokio::select! {
            ended = tasks.join_next() => match ended {
                Some(ended) => failed |= report(ended),
                None => return failed,
            },
            () = &mut deadline => {
                tracing::warn!(
                    tasks = tasks.len(),
                    grace_ms = grace.as_millis(),
                    "tasks still running after the shutdown grace: cut"
                );
                tasks.abort_all();
                while let Some(ended) = tasks.join_next().await {
                    if let Err(error) = &ended
                        && error.is_cancelled()
                    {
                        continue;
                    }
                    failed |= report(ended);
                }
                return failed;
            }
        }
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
