//! `GET /v1/changes`: every region's events in this node's log order, a page at a time. A
//! client follows the log by passing each page's `next_cursor` back as `?after=` (it misses and
//! repeats nothing); `?recent=N` gives the newest N, as the dashboard's feed shows at load.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use domain::{EventEnvelope, LocalizedText};
use event_store::event_log::{self, ChangeRow};
use projector::ChangeNotice;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, info_span, warn};

use crate::cursor;
use crate::openapi::{Unavailable, Unprocessable};
use crate::params::Params;
use crate::problem::QueryError;
use crate::state::QueryState;

/// Changes a page holds by default, and at most.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// `next_cursor` of the page before; absent: from the first event.
    #[param(required = false)]
    pub after: Option<String>,
    /// Changes per page, 1 to 1000 (default 100).
    #[param(required = false)]
    pub limit: Option<i64>,
    /// Instead of `after`: the newest this many changes, 1 to 1000.
    #[param(required = false)]
    pub recent: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ChangesPage {
    pub changes: Vec<Change>,
    /// Pass as `?after=` for what comes next; present even when nothing came, so a polling
    /// client always has where to go on from.
    pub next_cursor: String,
}

/// One event as the live stream's `change` event shows it, with its place in the log.
#[derive(Debug, Serialize)]
pub struct Change {
    #[serde(flatten)]
    pub notice: ChangeNotice,
    pub cursor: String,
}

/// Every region's events in this node's log order (the order its catalogue took them in),
/// each as the live stream's `change` event with its `cursor`.
#[utoipa::path(
    get, path = "/v1/changes", tag = "stream", operation_id = "changes",
    params(ChangesQuery),
    responses(
        (status = 200, description = "A page of changes, oldest first, and the cursor to go \
            on from", body = Object),
        Unprocessable, Unavailable,
    ),
)]
pub async fn changes(
    State(state): State<QueryState>,
    Params(query): Params<ChangesQuery>,
) -> Result<Response, QueryError> {
    let after = query.after.as_deref().map(decode).transpose()?;
    let rows = match (after, query.recent) {
        (Some(_), Some(_)) => {
            return Err(QueryError::invalid(
                "recent",
                "give either after (to follow the log) or recent (the newest changes), not both",
            ));
        }
        (_, Some(recent)) => {
            let recent = bounded("recent", recent)?;
            event_log::latest_changes(&state.pool, recent)
                .instrument(info_span!("latest_changes", recent))
                .await?
        }
        (after, None) => {
            let limit = bounded("limit", query.limit.unwrap_or(DEFAULT_PAGE))?;
            let after = after.unwrap_or(0);
            event_log::changes_after(&state.pool, after, limit)
                .instrument(info_span!("changes_after", after, limit))
                .await?
        }
    };
    let next = rows.last().map_or(after.unwrap_or(0), |row| row.arrival);
    Ok(axum::Json(ChangesPage {
        changes: rows.iter().filter_map(change).collect(),
        next_cursor: encode(next),
    })
    .into_response())
}

fn bounded(field: &'static str, n: i64) -> Result<i64, QueryError> {
    if (1..=MAX_PAGE).contains(&n) {
        Ok(n)
    } else {
        Err(QueryError::invalid(
            field,
            format!("must be between 1 and {MAX_PAGE}"),
        ))
    }
}

fn change(row: &ChangeRow) -> Option<Change> {
    let envelope = match EventEnvelope::decode(row.envelope.as_bytes()) {
        Ok(envelope) => envelope,
        // The follower only logs events it decoded: this is a newer build's row or a bug.
        Err(error) => {
            warn!(%error, arrival = row.arrival, "event log row not decodable; left out of changes");
            return None;
        }
    };
    let mut notice = ChangeNotice::new(&envelope);
    notice.provider.clone_from(&row.provider);
    notice.name = row
        .name
        .as_deref()
        .and_then(|json| serde_json::from_str::<LocalizedText>(json).ok());
    Some(Change {
        notice,
        cursor: encode(row.arrival),
    })
}

fn encode(arrival: i64) -> String {
    cursor::encode(&format!("a{arrival}"))
}

fn decode(raw: &str) -> Result<i64, QueryError> {
    cursor::decode(raw)?
        .strip_prefix('a')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| QueryError::invalid("cursor", "is not a cursor this API issued"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_changes_cursor_round_trips_and_others_are_refused() {
        assert_eq!(decode(&encode(0)).unwrap(), 0);
        assert_eq!(decode(&encode(1_234_567)).unwrap(), 1_234_567);
        // A model page's cursor, a negative arrival, garbage.
        for bad in [
            cursor::encode("openai/gpt-5"),
            cursor::encode("a-1"),
            "zz".into(),
        ] {
            assert!(decode(&bad).is_err(), "{bad}");
        }
    }
}
