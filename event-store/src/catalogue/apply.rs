//! Keeping the catalogue: each event folded into its model's row or availability row.

use chrono::{DateTime, Utc};
use domain::{EventEnvelope, EventPayload, Lifecycle};
use sqlx::PgConnection;

/// Folds one event into the catalogue. Idempotent: each row remembers the last stream
/// sequence applied and ignores anything not newer, so re-delivered events change nothing.
///
/// A row belongs to the registration that created it: lifecycle events change it only when
/// they come from that registration's home region, so a second registration of the same id
/// (which registry ownership prevents, but an old deployment may hold) can never overwrite it.
pub async fn apply_to_catalogue(
    conn: &mut PgConnection,
    envelope: &EventEnvelope,
) -> Result<(), sqlx::Error> {
    let model = envelope.model_id.as_str();
    let sequence = i64::try_from(envelope.sequence).unwrap_or(i64::MAX);
    let at = envelope.occurred_at;
    let origin = envelope.origin_region.as_str();
    match &envelope.event {
        EventPayload::ModelRegistered {
            provider,
            home_region,
            name,
            description,
            status,
            ..
        } => {
            sqlx::query(
                "INSERT INTO catalogue_models (model_id, provider, home_region, name, description,
                                               lifecycle, status, version, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (model_id) DO NOTHING",
            )
            .bind(model)
            .bind(provider.as_str())
            .bind(home_region.as_str())
            .bind(sqlx::types::Json(name))
            .bind(description.as_ref().map(sqlx::types::Json))
            .bind(Lifecycle::Inactive.as_str())
            .bind(status.as_str())
            .bind(sequence)
            .bind(at)
            .execute(conn)
            .await?;
        }
        EventPayload::ModelActivated => {
            set_column(
                conn,
                model,
                Column::Lifecycle,
                Lifecycle::Active.as_str(),
                Change {
                    origin,
                    sequence,
                    at,
                },
            )
            .await?
        }
        EventPayload::ModelDeactivated => {
            set_column(
                conn,
                model,
                Column::Lifecycle,
                Lifecycle::Inactive.as_str(),
                Change {
                    origin,
                    sequence,
                    at,
                },
            )
            .await?
        }
        EventPayload::ModelRetired => {
            set_column(
                conn,
                model,
                Column::Lifecycle,
                Lifecycle::Retired.as_str(),
                Change {
                    origin,
                    sequence,
                    at,
                },
            )
            .await?
        }
        EventPayload::ModelStatusChanged { status } => {
            let change = Change {
                origin,
                sequence,
                at,
            };
            set_column(conn, model, Column::Status, status.as_str(), change).await?
        }
        EventPayload::ModelMetadataUpdated { name, description } => {
            sqlx::query(
                "UPDATE catalogue_models
                    SET name = COALESCE($2, name), description = COALESCE($3, description),
                        version = $4, updated_at = $5
                  WHERE model_id = $1 AND version < $4 AND home_region = $6",
            )
            .bind(model)
            .bind(name.as_ref().map(sqlx::types::Json))
            .bind(description.as_ref().map(sqlx::types::Json))
            .bind(sequence)
            .bind(at)
            .bind(origin)
            .execute(conn)
            .await?;
        }
        EventPayload::ModelServed { region } | EventPayload::ModelWithdrawn { region, .. } => {
            let served = matches!(envelope.event, EventPayload::ModelServed { .. });
            sqlx::query(
                "INSERT INTO catalogue_availability (region, model_id, served, version, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (region, model_id) DO UPDATE
                    SET served = excluded.served, version = excluded.version,
                        updated_at = excluded.updated_at
                  WHERE catalogue_availability.version < excluded.version",
            )
            .bind(region.as_str())
            .bind(model)
            .bind(served)
            .bind(sequence)
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The catalogue columns a single event replaces. A closed set, so the SQL stays static.
#[derive(Clone, Copy)]
enum Column {
    Lifecycle,
    Status,
}

/// Which event changes a row: its origin region, stream sequence and time.
#[derive(Clone, Copy)]
struct Change<'a> {
    origin: &'a str,
    sequence: i64,
    at: DateTime<Utc>,
}

async fn set_column(
    conn: &mut PgConnection,
    model: &str,
    column: Column,
    value: &str,
    change: Change<'_>,
) -> Result<(), sqlx::Error> {
    let sql = match column {
        Column::Lifecycle => {
            "UPDATE catalogue_models SET lifecycle = $2, version = $3, updated_at = $4
              WHERE model_id = $1 AND version < $3 AND home_region = $5"
        }
        Column::Status => {
            "UPDATE catalogue_models SET status = $2, version = $3, updated_at = $4
              WHERE model_id = $1 AND version < $3 AND home_region = $5"
        }
    };
    sqlx::query(sql)
        .bind(model)
        .bind(value)
        .bind(change.sequence)
        .bind(change.at)
        .bind(change.origin)
        .execute(conn)
        .await?;
    Ok(())
}
