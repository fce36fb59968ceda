//! Single facts the catalogue holds about models: what decisions, the change feed and
//! read-your-writes look up.

use std::collections::HashMap;

use domain::{LocalizedText, ModelId, RegionId, StreamId};
use sqlx::PgExecutor;
use sqlx::types::Json;

/// The model's lifecycle as the catalogue has it (`active`, ...), if any region registered it.
pub async fn lifecycle<'e>(
    db: impl PgExecutor<'e>,
    model: &ModelId,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT lifecycle FROM catalogue_models WHERE model_id = $1")
        .bind(model.as_str())
        .fetch_optional(db)
        .await
}

/// The home region the catalogue records for a model, if any region registered it.
pub async fn home_region<'e>(
    db: impl PgExecutor<'e>,
    model: &ModelId,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT home_region FROM catalogue_models WHERE model_id = $1")
        .bind(model.as_str())
        .fetch_optional(db)
        .await
}

/// Models `region` still serves although the catalogue says they are retired, by id.
pub async fn served_but_retired<'e>(
    db: impl PgExecutor<'e>,
    region: &RegionId,
) -> Result<Vec<String>, sqlx::Error> {
    // From the retired models (a partial index), each looked up by key: a join let the
    // planner hash every row the region serves, a cost that grew with the catalogue.
    sqlx::query_scalar(
        "SELECT m.model_id FROM catalogue_models m
          WHERE m.lifecycle = 'retired'
            AND (SELECT a.served FROM catalogue_availability a
                  WHERE a.region = $1 AND a.model_id = m.model_id)
          ORDER BY m.model_id",
    )
    .bind(region.as_str())
    .fetch_all(db)
    .await
}

/// Of `models`, those `region` still serves although the catalogue says they are retired.
pub async fn served_but_retired_among<'e>(
    db: impl PgExecutor<'e>,
    region: &RegionId,
    models: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT a.model_id FROM catalogue_availability a
           JOIN catalogue_models m USING (model_id)
          WHERE a.region = $1 AND a.model_id = ANY($2) AND a.served AND m.lifecycle = 'retired'
          ORDER BY a.model_id",
    )
    .bind(region.as_str())
    .bind(models)
    .fetch_all(db)
    .await
}

/// The version (last stream sequence applied) of a stream's catalogue row, if it has one.
pub async fn stream_version<'e>(
    db: impl PgExecutor<'e>,
    stream: &StreamId,
) -> Result<Option<i64>, sqlx::Error> {
    match stream {
        StreamId::Model(model) => {
            sqlx::query_scalar("SELECT version FROM catalogue_models WHERE model_id = $1")
                .bind(model.as_str())
                .fetch_optional(db)
                .await
        }
        StreamId::Availability { region, model } => {
            sqlx::query_scalar(
                "SELECT version FROM catalogue_availability WHERE region = $1 AND model_id = $2",
            )
            .bind(region.as_str())
            .bind(model.as_str())
            .fetch_optional(db)
            .await
        }
    }
}

/// Provider and names of each of `ids` the catalogue knows, by id.
pub async fn names<'e>(
    db: impl PgExecutor<'e>,
    ids: &[&str],
) -> Result<HashMap<String, (String, LocalizedText)>, sqlx::Error> {
    let rows: Vec<(String, String, Json<LocalizedText>)> = sqlx::query_as(
        "SELECT model_id, provider, name FROM catalogue_models WHERE model_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, provider, name)| (id, (provider, name.0)))
        .collect())
}
