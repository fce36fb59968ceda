//! Catalogue rows as the read side lists and shows them.

use chrono::{DateTime, Utc};
use domain::{Lifecycle, LocalizedText, ModelId, OperationalStatus, ProviderId, RegionId};
use sqlx::PgExecutor;
use sqlx::types::Json;

/// One model with the regions that serve it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CatalogueRow {
    pub model_id: String,
    pub provider: String,
    pub home_region: String,
    pub name: Json<LocalizedText>,
    pub description: Option<Json<LocalizedText>>,
    pub lifecycle: String,
    pub status: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Regions serving it, in name order.
    pub available_in: Vec<String>,
}

/// Which models a listing page holds: all filters optional, `after` the keyset cursor.
#[derive(Debug, Clone, Default)]
pub struct ModelFilter {
    pub provider: Option<ProviderId>,
    pub lifecycle: Option<Lifecycle>,
    pub status: Option<OperationalStatus>,
    /// Only models this region serves.
    pub region: Option<RegionId>,
    /// Only ids after this one (byte order).
    pub after: Option<ModelId>,
}

/// A region's serving state of a model and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AvailabilityChange {
    pub region: String,
    pub served: bool,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT m.model_id, m.provider, m.home_region, m.name, m.description,
        m.lifecycle, m.status, m.version, m.updated_at,
        ARRAY(SELECT a.region FROM catalogue_availability a
              WHERE a.model_id = m.model_id AND a.served ORDER BY a.region) AS available_in
   FROM catalogue_models m";

/// Up to `limit` models matching `filter`, ordered by id. Keyset pagination on the id (byte
/// order): a page never repeats or skips a model that existed when the listing began, however
/// many are added meanwhile. The cursor is a bound (`''` before the first page) so the page is
/// read from the byte-order index (`catalogue_models_id_bytes`) from where the last one ended.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    filter: &ModelFilter,
    limit: i64,
) -> Result<Vec<CatalogueRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT}
          WHERE ($1::text IS NULL OR m.provider = $1)
            AND ($2::text IS NULL OR m.lifecycle = $2)
            AND ($3::text IS NULL OR m.status = $3)
            AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM catalogue_availability r
                 WHERE r.model_id = m.model_id AND r.region = $4 AND r.served))
            AND m.model_id COLLATE \"C\" > coalesce($5, '')
          ORDER BY m.model_id COLLATE \"C\"
          LIMIT $6"
    ))
    .bind(filter.provider.as_ref().map(ProviderId::as_str))
    .bind(filter.lifecycle.map(Lifecycle::as_str))
    .bind(filter.status.map(OperationalStatus::as_str))
    .bind(filter.region.as_ref().map(RegionId::as_str))
    .bind(filter.after.as_ref().map(ModelId::as_str))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One model's row.
pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    model: &ModelId,
) -> Result<Option<CatalogueRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE m.model_id = $1"))
        .bind(model.as_str())
        .fetch_optional(db)
        .await
}

/// Every region that ever served the model, with its current state.
pub async fn availability_of<'e>(
    db: impl PgExecutor<'e>,
    model: &ModelId,
) -> Result<Vec<AvailabilityChange>, sqlx::Error> {
    sqlx::query_as(
        "SELECT region, served, updated_at FROM catalogue_availability WHERE model_id = $1",
    )
    .bind(model.as_str())
    .fetch_all(db)
    .await
}
