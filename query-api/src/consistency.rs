//! Read-your-writes: a read that names a command's consistency token (`?after=` or the
//! `Consistency-Token` header) waits, up to a bound, until what it reads includes that event.
//! Without a token a read never waits.

use std::time::Duration;

use axum::http::HeaderMap;
use domain::{ConsistencyToken, StreamId};
use projector::ActorId;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::problem::QueryError;
use crate::state::QueryState;

pub const HEADER: &str = "consistency-token";

/// How often the catalogue is re-read while waiting; a write reaches it through one topic.
const CATALOGUE_POLL: Duration = Duration::from_millis(15);

/// The token a read asks for: `?after=` wins over the header; neither means "don't wait".
pub fn requested(
    headers: &HeaderMap,
    after: Option<&str>,
) -> Result<Option<ConsistencyToken>, QueryError> {
    let raw = match after {
        Some(raw) => raw,
        None => match headers.get(HEADER) {
            None => return Ok(None),
            Some(value) => value
                .to_str()
                .map_err(|_| QueryError::InvalidConsistencyToken("<not text>".into()))?,
        },
    };
    raw.parse()
        .map(Some)
        .map_err(|_| QueryError::InvalidConsistencyToken(raw.chars().take(200).collect()))
}

/// Waits until the merged counts include the event: the actor folding the partition that
/// holds the model's events (key = model id) has folded the token's position.
pub async fn until_counted(state: &QueryState, token: &ConsistencyToken) -> Result<(), QueryError> {
    check_region(state, token)?;
    let key = token.stream.model_id().as_str().as_bytes();
    let actor = ActorId::new(
        token.region.clone(),
        outbox_relay::partition_for(key, state.partitions),
    );
    let deadline = Instant::now() + state.read_wait;
    // Subscribe before looking, so a change between the look and the wait still wakes us.
    let mut changes = state.projection.subscribe();
    loop {
        let folded = state
            .projection
            .watermark(&actor)
            .await
            .and_then(|mark| mark.last_event)
            .is_some_and(|event| event.position >= token.position);
        if folded {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) | Err(_) => return Err(timed_out(state, token)),
        }
    }
}

/// Waits until this node's catalogue has the stream at the token's sequence or later.
pub async fn until_catalogued(
    state: &QueryState,
    token: &ConsistencyToken,
) -> Result<(), QueryError> {
    check_region(state, token)?;
    let deadline = Instant::now() + state.read_wait;
    loop {
        let version: Option<i64> = match &token.stream {
            StreamId::Model(model) => {
                sqlx::query_scalar("SELECT version FROM catalogue_models WHERE model_id = $1")
                    .bind(model.as_str())
                    .fetch_optional(&state.pool)
                    .await?
            }
            StreamId::Availability { region, model } => sqlx::query_scalar(
                "SELECT version FROM catalogue_availability WHERE region = $1 AND model_id = $2",
            )
            .bind(region.as_str())
            .bind(model.as_str())
            .fetch_optional(&state.pool)
            .await?,
        };
        if version.is_some_and(|v| u64::try_from(v).is_ok_and(|v| v >= token.sequence)) {
            return Ok(());
        }
        if Instant::now() + CATALOGUE_POLL > deadline {
            return Err(timed_out(state, token));
        }
        tokio::time::sleep(CATALOGUE_POLL).await;
    }
}

fn check_region(state: &QueryState, token: &ConsistencyToken) -> Result<(), QueryError> {
    if state.regions.contains(&token.region) {
        Ok(())
    } else {
        Err(QueryError::InvalidConsistencyToken(token.to_string()))
    }
}

fn timed_out(state: &QueryState, token: &ConsistencyToken) -> QueryError {
    metrics::counter!("read_your_writes_timeouts_total").increment(1);
    QueryError::ConsistencyTimeout {
        token: token.to_string(),
        waited_ms: state.read_wait.as_millis(),
    }
}
