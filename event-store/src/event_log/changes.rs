//! The event log in this node's arrival order (`arrival`), every region's events together, a
//! page at a time, with each model's provider and names as the catalogue has them now.

use sqlx::PgExecutor;

/// One logged event and what the catalogue says of its model.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChangeRow {
    /// Where the event stands in this node's log (a cursor's key).
    pub arrival: i64,
    /// The envelope as stored.
    pub envelope: String,
    /// Absent for a model the catalogue does not hold.
    pub provider: Option<String>,
    /// The model's names as JSON (`{"en": ...}`).
    pub name: Option<String>,
}

const COLUMNS: &str = "l.arrival, l.envelope::text AS envelope, c.provider, c.name::text AS name
   FROM event_log AS l LEFT JOIN catalogue_models AS c ON c.model_id = l.model_id";

/// Up to `limit` events after arrival `after` (0: from the first), in arrival order.
pub async fn changes_after<'e>(
    db: impl PgExecutor<'e>,
    after: i64,
    limit: i64,
) -> Result<Vec<ChangeRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} WHERE l.arrival > $1 ORDER BY l.arrival LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The newest `limit` events, in arrival order (the oldest of them first).
pub async fn latest_changes<'e>(
    db: impl PgExecutor<'e>,
    limit: i64,
) -> Result<Vec<ChangeRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT * FROM (SELECT {COLUMNS} ORDER BY l.arrival DESC LIMIT $1) AS newest
          ORDER BY arrival"
    ))
    .bind(limit)
    .fetch_all(db)
    .await
}
