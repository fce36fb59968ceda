//! The relay loop: wake on `NOTIFY` or a poll tick, publish until nothing remains, back off and
//! reconcile after any failure. Only a shutdown or an invalid configuration ends it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt;
use sqlx::PgPool;
use tracing::{info, warn};

use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::leadership::Leadership;
use crate::listener::{OUTBOX_CHANNEL, Wakeups};
use crate::outbox::pending_rows;
use crate::producer::Publisher;
use crate::publish::relay_once;
use crate::reconcile::reconcile_with;
use crate::topics::ensure_topics;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Runs the relay until `shutdown` resolves. Transient database and broker failures are logged
/// and retried with back-off; the errors returned are an unusable producer configuration and
/// a topic that is ahead of this event store ([`RelayError::TopicAheadOfStore`]).
///
/// The batch in flight when `shutdown` fires is finished (it is bounded by
/// `message_timeout`), so a clean stop leaves nothing to reconcile. Dropping the future at any
/// other point (task abort, crash) is safe too: the next start reconciles before publishing.
///
/// Exactly one relay runs per database: before publishing, it waits for the relay lock
/// ([`crate::leadership`]), so scaled-out processes of one region never send the same rows;
/// it checks the lock's session before every cycle and stands by again once it is gone.
pub async fn run(
    config: RelayConfig,
    pool: PgPool,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let wakeups = Wakeups::spawn(pool.clone(), OUTBOX_CHANNEL, config.max_backoff);
    loop {
        let mut leadership = tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            held = crate::leadership::acquire(&pool, config.max_backoff) => held,
        };
        match lead(&config, &pool, &wakeups, &mut leadership, shutdown.as_mut()).await? {
            Led::Stopped => return Ok(()),
            Led::LostLeadership => {
                metrics::gauge!("outbox_relay_leader").set(0.0);
                metrics::counter!("outbox_relay_leadership_lost_total").increment(1);
                warn!("outbox relay: the session holding the relay lock is gone; standing down");
            }
        }
    }
}

enum Led {
    Stopped,
    /// The lock's session ended (e.g. PostgreSQL restarted): another relay may publish now.
    LostLeadership,
}

/// Publishes while this process holds the relay lock, checking it before every cycle.
async fn lead(
    config: &RelayConfig,
    pool: &PgPool,
    wakeups: &Wakeups,
    leadership: &mut Leadership,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<Led, RelayError> {
    let mut publisher = Publisher::new(config)?;
    let mut state = State {
        topics_ready: config.topics.is_empty(),
        must_reconcile: true,
        backoff: FIRST_BACKOFF,
    };
    info!(brokers = %config.kafka.brokers(), "outbox relay started");

    let led = loop {
        if !leadership.still_held().await {
            break Led::LostLeadership;
        }
        let delay = match cycle(config, pool, &publisher, &mut state, shutdown.as_mut()).await {
            Ok(Cycle::Stopped) => break Led::Stopped,
            Ok(Cycle::Drained) => {
                state.backoff = FIRST_BACKOFF;
                None
            }
            // Not transient: publishing would hand out positions consumers already hold.
            Err(error @ RelayError::TopicAheadOfStore { .. }) => return Err(error),
            Err(error) => {
                let delay = state.backoff;
                warn!(%error, retry_in_ms = delay.as_millis(), "outbox relay step failed");
                metrics::counter!("outbox_relay_errors_total").increment(1);
                report_backlog(pool).await;
                state.must_reconcile = true;
                // A topic may be gone (a broker that keeps topics in memory restarted): the
                // next cycle creates what is missing before it publishes.
                state.topics_ready = config.topics.is_empty();
                state.backoff = (state.backoff * 2).min(config.max_backoff);
                if needs_fresh_producer(&error, &publisher) {
                    replace_producer(config, &mut publisher);
                }
                Some(delay)
            }
        };
        let wait = async {
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => {
                    tokio::select! {
                        () = wakeups.notified() => {}
                        () = tokio::time::sleep(config.poll_interval) => {}
                    }
                }
            }
        };
        tokio::select! {
            biased;
            () = shutdown.as_mut() => break Led::Stopped,
            () = wait => {}
        }
    };

    info!("outbox relay stopping");
    if let Err(error) = publisher.flush(config.message_timeout) {
        warn!(%error, "flushing the producer at shutdown");
    }
    Ok(led)
}

struct State {
    topics_ready: bool,
    must_reconcile: bool,
    backoff: Duration,
}

enum Cycle {
    /// Nothing left to publish.
    Drained,
    /// Shutdown was requested between two batches.
    Stopped,
}

async fn cycle(
    config: &RelayConfig,
    pool: &PgPool,
    publisher: &Publisher,
    state: &mut State,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<Cycle, RelayError> {
    if !state.topics_ready {
        ensure_topics(
            &config.kafka,
            &config.topics,
            config.request_timeout,
            config.provisioning,
        )
        .await?;
        state.topics_ready = true;
    }
    if state.must_reconcile {
        let owned: Vec<String> = config.topics.iter().map(|t| t.name.clone()).collect();
        reconcile_with(pool, publisher, &owned, config.republish_lost_topics).await?;
        state.must_reconcile = false;
    }
    loop {
        let outcome = relay_once(pool, publisher, config.batch_size).await?;
        if !outcome.more {
            break;
        }
        if shutdown.as_mut().now_or_never().is_some() {
            return Ok(Cycle::Stopped);
        }
    }
    // Drained: the last fetch found fewer rows than a batch and all of them are published, so
    // nothing committed before it is pending. Counting instead cost a scan per drain that
    // grew with the outbox (each published row leaves an entry in the partial index until
    // vacuum: 14 ms a count, 9 % of the soak's PostgreSQL time, three minutes in).
    metrics::gauge!("outbox_pending_rows").set(0.0);
    Ok(Cycle::Drained)
}

/// After a failed step: what is held back, so the backlog shows while the relay cannot
/// publish (once per back-off); skipped silently if the database fails too.
async fn report_backlog(pool: &PgPool) {
    if let Ok(pending) = pending_rows(pool).await {
        #[expect(clippy::cast_precision_loss, reason = "a gauge")]
        metrics::gauge!("outbox_pending_rows").set(pending as f64);
    }
}

/// After undelivered messages the producer's idempotence state may be stuck: Nisshi, restarted,
/// answers every send of the old producer id with an unknown error, and a fatal error (e.g. a
/// sequence desync) makes librdkafka refuse to send at all. A fresh producer (new id) is cheap
/// and reconcile runs before it sends, so nothing is duplicated.
fn needs_fresh_producer(error: &RelayError, publisher: &Publisher) -> bool {
    matches!(error, RelayError::Undelivered { .. }) || publisher.fatal_error().is_some()
}

fn replace_producer(config: &RelayConfig, publisher: &mut Publisher) {
    let reason = publisher.fatal_error();
    match Publisher::new(config) {
        Ok(fresh) => {
            info!(fatal_error = ?reason, "producer replaced after failed deliveries");
            *publisher = fresh;
        }
        Err(error) => warn!(%error, "replacing the producer failed; keeping the old one"),
    }
}
