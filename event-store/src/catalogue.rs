use chrono::{DateTime, Utc};
use domain::{EventEnvelope, EventPayload, Lifecycle};
use sqlx::PgConnection;

/// A row of the catalogue read model, as the query side reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CatalogueModel {
    pub model_id: String,
    pub provider: String,
    pub home_region: String,
    pub name: serde_json::Value,
    pub description: Option<serde_json::Value>,
    pub lifecycle: String,
    pub status: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// Folds one event into the catalogue. Idempotent: each row remembers the last stream
/// sequence applied and ignores anything not newer, so re-delivered events change nothing.
pub async fn apply_to_catalogue(
    conn: &mut PgConnection,
    envelope: &EventEnvelope,
) -> Result<(), sqlx::Error> {
    let model = envelope.model_id.as_str();
    let sequence = i64::try_from(envelope.sequence).unwrap_or(i64::MAX);
    let at = envelope.occurred_at;
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
                sequence,
                at,
            )
            .await?
        }
        EventPayload::ModelDeactivated => {
            set_column(
                conn,
                model,
                Column::Lifecycle,
                Lifecycle::Inactive.as_str(),
                sequence,
                at,
            )
            .await?
        }
        EventPayload::ModelRetired => {
            set_column(
                conn,
                model,
                Column::Lifecycle,
                Lifecycle::Retired.as_str(),
                sequence,
                at,
            )
            .await?
        }
        EventPayload::ModelStatusChanged { status } => {
            set_column(conn, model, Column::Status, status.as_str(), sequence, at).await?
        }
        EventPayload::ModelMetadataUpdated { name, description } => {
            sqlx::query(
                "UPDATE catalogue_models
                    SET name = COALESCE($2, name), description = COALESCE($3, description),
                        version = $4, updated_at = $5
                  WHERE model_id = $1 AND version < $4",
            )
            .bind(model)
            .bind(name.as_ref().map(sqlx::types::Json))
            .bind(description.as_ref().map(sqlx::types::Json))
            .bind(sequence)
            .bind(at)
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

async fn set_column(
    conn: &mut PgConnection,
    model: &str,
    column: Column,
    value: &str,
    sequence: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let sql = match column {
        Column::Lifecycle => {
            "UPDATE catalogue_models SET lifecycle = $2, version = $3, updated_at = $4
              WHERE model_id = $1 AND version < $3"
        }
        Column::Status => {
            "UPDATE catalogue_models SET status = $2, version = $3, updated_at = $4
              WHERE model_id = $1 AND version < $3"
        }
    };
    sqlx::query(sql)
        .bind(model)
        .bind(value)
        .bind(sequence)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}
