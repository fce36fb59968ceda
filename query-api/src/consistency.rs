//! Read-your-writes: a read that names a command's consistency token (`?after=` or the
//! `Consistency-Token` header) waits, up to a bound, until what it reads includes that event.
//! Without a token a read never waits.

use axum::http::HeaderMap;
use domain::ConsistencyToken;
use projector::ActorId;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use event_store::catalogue;

use crate::problem::QueryError;
use crate::state::QueryState;

pub const HEADER: &str = "consistency-token";

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
        domain::partition_for(key, state.partitions),
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
///
/// One look at the catalogue, then the wait is driven by the catalogue follower's change feed
/// (it announces each event once its batch is committed): no query while waiting, whatever the
/// number of waiting reads. Subscribing before the look means an event committed between the
/// look and the wait is still heard. Only a listener that fell behind the feed (and so may have
/// missed the event) looks again.
pub async fn until_catalogued(
    state: &QueryState,
    token: &ConsistencyToken,
) -> Result<(), QueryError> {
    check_region(state, token)?;
    let deadline = Instant::now() + state.read_wait;
    let mut changes = state.feed.subscribe();
    if catalogued(state, token).await? {
        return Ok(());
    }
    loop {
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(notice)) => {
                if notice.reaches(&token.stream, token.sequence) {
                    return Ok(());
                }
            }
            Ok(Err(RecvError::Lagged(_))) => {
                if catalogued(state, token).await? {
                    return Ok(());
                }
            }
            Ok(Err(RecvError::Closed)) | Err(_) => return Err(timed_out(state, token)),
        }
    }
}

/// Whether the catalogue holds the token's stream at its sequence or later.
async fn catalogued(state: &QueryState, token: &ConsistencyToken) -> Result<bool, QueryError> {
    let version = catalogue::stream_version(&state.pool, &token.stream).await?;
    Ok(version.is_some_and(|v| u64::try_from(v).is_ok_and(|v| v >= token.sequence)))
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
